"""Conversations as files: JSON (the app's own shape) and Markdown for people.

The Markdown keeps its structure whatever the messages contain: the export's own
headings are the only top-level ones, and each message's text sits in a fenced block
(CommonMark 0.31, section 4.5) whose fence is longer than any run of backticks inside
it, so a message's own headings, fences or lists cannot break out.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet

from .models import Conversation

_BACKTICKS = re.compile(r"`{3,}")


def conversations_export_rows(queryset: QuerySet[Conversation]) -> list[dict[str, Any]]:
    """Each conversation of ``queryset`` as a JSON-ready dict: its settings, owner, and
    every message in order with its model, status, finish reason, reasoning, usage (in
    tokens) and times (ISO 8601). Two queries."""
    conversations = queryset.select_related("owner").prefetch_related("messages")
    return [
        {
            "id": c.pk,
            "title": c.title,
            "owner": c.owner.get_username(),
            "provider": c.provider,
            "model": c.model,
            "system_prompt": c.system_prompt,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat(),
            "messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "reasoning": m.reasoning,
                    "provider": m.provider,
                    "model": m.model,
                    "status": m.status,
                    "finish_reason": m.finish_reason,
                    "error": m.error,
                    "input_tokens": m.input_tokens,
                    "output_tokens": m.output_tokens,
                    "reasoning_tokens": m.reasoning_tokens,
                    "created_at": m.created_at.isoformat(),
                }
                for m in sorted(c.messages.all(), key=lambda m: (m.created_at, m.pk))
            ],
        }
        for c in conversations
    ]


def fenced(text: str, info: str = "markdown") -> str:
    """``text`` in a fenced code block that nothing inside it can close: the fence is
    one backtick longer than the longest run of three or more backticks in ``text``."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def conversations_to_markdown(rows: list[dict[str, Any]]) -> str:
    """Rows from ``conversations_export_rows`` as one Markdown document: ``#`` per
    conversation, ``##`` per message (who, model, status), the text fenced."""
    lines: list[str] = []
    for conv in rows:
        title = " ".join((conv["title"] or "Untitled").split())
        lines += [f"# {title}", ""]
        lines += [f"- Owner: {conv['owner']}", f"- Updated: {conv['updated_at']}", ""]
        if conv["system_prompt"]:
            lines += ["## System prompt", "", fenced(conv["system_prompt"]), ""]
        for m in conv["messages"]:
            who = "User" if m["role"] == "user" else f"Assistant ({m['provider']} / {m['model']})"
            status = "" if m["status"] in ("complete", "") else f" [{m['status']}]"
            lines += [f"## {who}{status}", ""]
            if m.get("reasoning"):
                lines += ["Reasoning:", "", fenced(m["reasoning"], "text"), ""]
            lines += [fenced(m["content"]), ""]
            if m["error"]:
                lines += [f"Error: {' '.join(m['error'].split())}", ""]
    return "\n".join(lines)
