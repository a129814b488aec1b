"""Conversations as files: JSON (the app's own shape) and Markdown for people.

The Markdown keeps its structure whatever the messages contain: the export's own
headings are the only top-level ones, and each message's text sits in a fenced block
(CommonMark 0.31, section 4.5) whose fence is longer than any run of backticks inside
it, so a message's own headings, fences or lists cannot break out.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from .models import Conversation, Folder, Message
from .tree import ConversationTree

_BACKTICKS = re.compile(r"`{3,}")


def conversations_export_rows(queryset: QuerySet[Conversation]) -> list[dict[str, Any]]:
    """Each conversation of ``queryset`` as a JSON-ready dict: its settings, owner,
    ``folder`` (``{"name", "system_prompt", "provider", "model"}``: the folder's name and
    what new chats in it start with; None outside any folder), ``pinned_at`` and
    ``archived_at`` (ISO 8601; None when not pinned, not archived), and every message
    of every branch with its model, status, finish reason, reasoning, usage (in tokens)
    and times (ISO 8601). Messages come branch by branch (depth first) with ``id``,
    ``parent_id`` (the tree), ``version`` (``{"index", "count"}`` among its siblings, or
    None) and ``on_branch_shown``; ``branch_shown`` is the last message of the branch
    the owner looks at. Attachments are listed (name, kind, type, size in bytes, stored
    path). A reply's ``cost_usd`` is its usage record's cost in US dollars (a decimal
    string; None when no price was known). Four queries."""
    conversations = list(
        queryset.select_related("owner", "folder").prefetch_related(
            "messages", "messages__attachments"
        )
    )
    costs = _reply_costs([c.pk for c in conversations])
    return [_conversation_row(c, costs) for c in conversations]


def _reply_costs(conversation_ids: list[int]) -> dict[int, str]:
    """Reply id -> its cost in US dollars (a decimal string), for the replies of these
    conversations that have a cost. One query."""
    from usage.models import UsageRecord

    rows = UsageRecord.objects.filter(
        reply__conversation_id__in=conversation_ids, cost__isnull=False
    ).values_list("reply_id", "cost")
    # Fixed-point text ("0.0000", "0.0123"), never the exponent form ("0E-10").
    return {reply_id: format(cost.normalize(), "f") if cost else "0" for reply_id, cost in rows}


def _conversation_row(c: Conversation, costs: dict[int, str]) -> dict[str, Any]:
    messages = {m.pk: m for m in c.messages.all()}
    tree = ConversationTree.from_rows([(m.pk, m.parent_id, m.role) for m in messages.values()])
    shown = set(tree.thread(c.current_leaf_id))
    return {
        "id": c.pk,
        "title": c.title,
        "owner": c.owner.get_username(),
        "provider": c.provider,
        "model": c.model,
        "system_prompt": c.system_prompt,
        "temperature": c.temperature,
        "max_tokens": c.max_tokens,
        "reasoning_effort": c.reasoning_effort,
        "thinking_budget": c.thinking_budget,
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
        "folder": _folder(c.folder),
        "pinned_at": c.pinned_at.isoformat() if c.pinned_at else None,
        "archived_at": c.archived_at.isoformat() if c.archived_at else None,
        "branch_shown": c.current_leaf_id,
        "messages": [
            {
                "id": m.pk,
                "parent_id": tree.parent[m.pk],
                "version": _version(tree, m.pk),
                "on_branch_shown": m.pk in shown,
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
                "cost_usd": costs.get(m.pk),
                "time_to_first_token_ms": m.time_to_first_token_ms,
                "duration_ms": m.duration_ms,
                "reasoning_ms": m.reasoning_ms,
                "created_at": m.created_at.isoformat(),
                "attachments": [
                    {
                        "name": a.name,
                        "kind": a.kind,
                        "content_type": a.content_type,
                        "size": a.size,
                        "path": a.file.name,
                    }
                    for a in m.attachments.all()
                ],
            }
            for m in (messages[i] for i in tree.depth_first())
        ],
    }


def _folder(folder: Folder | None) -> dict[str, str] | None:
    """The folder a conversation is in, as an export names it (None: in none)."""
    if folder is None:
        return None
    return {
        "name": folder.name,
        "system_prompt": folder.system_prompt,
        "provider": folder.provider,
        "model": folder.model,
    }


def _version(tree: ConversationTree, message_id: int) -> dict[str, int] | None:
    """``{"index": 2, "count": 3}`` for a message with siblings (edits, regenerated or
    compared replies), else None."""
    placed = tree.siblings(message_id)
    return {"index": placed.index, "count": placed.count} if placed.count > 1 else None


def fenced(text: str, info: str = "markdown") -> str:
    """``text`` in a fenced code block that nothing inside it can close: the fence is
    one backtick longer than the longest run of three or more backticks in ``text``."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def human_datetime(iso: str) -> str:
    """An ISO 8601 time (a row's ``updated_at``) for people: in the current time zone,
    in the active language's ``DATETIME_FORMAT`` ("30 ноября 2026 г. 12:46", "Nov. 30,
    2026, 12:46 p.m."), as the admin shows times. Text that is not such a time comes
    back as it is."""
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso
    if timezone.is_aware(when):
        when = timezone.localtime(when)
    return date_format(when, "DATETIME_FORMAT")


def _status_label(status: str) -> str:
    """A message status in the active language ("stopped" -> "остановлен"); an unknown
    one as it is."""
    try:
        return str(Message.Status(status).label)
    except ValueError:
        return status


def conversations_to_markdown(rows: list[dict[str, Any]]) -> str:
    """Rows from ``conversations_export_rows`` as one Markdown document for people, in
    the active language: ``#`` per conversation (its owner and the time it was last
    updated, localized), ``##`` per message (who, model, status), the text fenced."""
    lines: list[str] = []
    for conv in rows:
        title = " ".join((conv["title"] or _("Untitled")).split())
        lines += [f"# {title}", ""]
        lines += [
            _("- Owner: %(owner)s") % {"owner": conv["owner"]},
            _("- Updated: %(date)s") % {"date": human_datetime(conv["updated_at"])},
            "",
        ]
        if conv["system_prompt"]:
            lines += [_("## System prompt"), "", fenced(conv["system_prompt"]), ""]
        for m in conv["messages"]:
            who = (
                _("User")
                if m["role"] == "user"
                else _("Assistant (%(provider)s / %(model)s)")
                % {"provider": m["provider"], "model": m["model"]}
            )
            status = "" if m["status"] in ("complete", "") else f" [{_status_label(m['status'])}]"
            version = m.get("version")
            if version:
                status += " " + _("(version %(index)d of %(count)d)") % version
            lines += [f"## {who}{status}", ""]
            if m.get("reasoning"):
                lines += [_("Reasoning:"), "", fenced(m["reasoning"], "text"), ""]
            lines += [fenced(m["content"]), ""]
            for a in m.get("attachments", ()):
                name = " ".join(a["name"].split())
                lines += [
                    _("- Attached: %(name)s (%(type)s, %(size)d bytes)")
                    % {"name": name, "type": a["content_type"], "size": a["size"]}
                ]
            if m.get("attachments"):
                lines += [""]
            usage = _usage_line(m)
            if usage:
                lines += [usage, ""]
            if m["error"]:
                lines += [_("Error: %(error)s") % {"error": " ".join(m["error"].split())}, ""]
    return "\n".join(lines)


def _usage_line(m: dict[str, Any]) -> str:
    """ "- Usage: 12 input tokens, 40 output tokens (8 reasoning), $0.0012" for a message
    with token counts (the cost when known), else ""."""
    parts = []
    if m.get("input_tokens") is not None:
        parts.append(_("%(count)s input tokens") % {"count": m["input_tokens"]})
    if m.get("output_tokens") is not None:
        reasoning = m.get("reasoning_tokens")
        output = {"count": m["output_tokens"], "reasoning": reasoning}
        parts.append(
            _("%(count)s output tokens (%(reasoning)s reasoning)") % output
            if reasoning
            else _("%(count)s output tokens") % output
        )
    if m.get("cost_usd") is not None:
        parts.append(f"${m['cost_usd']}")
    return _("- Usage: %(parts)s") % {"parts": ", ".join(parts)} if parts else ""
