"""The snapshot a share link shows: the branch of a conversation on screen when the link
was made, as JSON in ``SharedLink.snapshot``.

The document (version 1)::

    {
      "version": 1,
      "provider": "openai", "model": "gpt-4o",   # the conversation's model then
      "messages": [                               # the branch, root first
        {
          "role": "user" | "assistant",
          "content": "the text as written (Markdown for a reply)",
          "html": "the reply's sanitized HTML (chat.markdown); empty for a user message",
          "provider": "openai", "model": "gpt-4o", "model_label": "OpenAI · gpt-4o",
          "status": "complete" | "incomplete" | "error" | "stopped",
          "finish_reason": "stop" | "length" | ... | "",
          "error": "the plain sentence a person saw for a failed reply",
          "created_at": "2025-05-01T10:00:00+00:00",
          "compare": false,     # true: one of several replies to the question before it
                                # (a comparison not decided yet ends the branch)
          "files": [{"name": "photo.jpg", "kind": "image" | "pdf" | "text",
                     "image": 12 | null}]   # a SharedImage id (images only)
        }
      ]
    }

Only what the thread shows is kept: no system prompt, no settings, no token counts or
costs, no error details for staff, no reasoning, and no owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from chat.models import Message
from chat.outcomes import incomplete_notice
from chat.providers import PROVIDER_REGISTRY

VERSION = 1
ROLES = {Message.Role.USER, Message.Role.ASSISTANT}
STATUSES = {
    Message.Status.COMPLETE,
    Message.Status.INCOMPLETE,
    Message.Status.ERROR,
    Message.Status.STOPPED,
}


def provider_label(name: str) -> str:
    """The provider's name as the model menu shows it ("OpenAI"); the raw name for one
    no longer registered."""
    cls = PROVIDER_REGISTRY.get(name)
    return str(getattr(cls, "label", "") or name) if cls else name


def message_entry(message: Message, *, compare: bool = False) -> dict[str, Any]:
    """One message of the snapshot (see the module docstring); its ``files`` name the
    attachments, with ``image`` None until the image's copy is made."""
    html = ""
    if message.role == Message.Role.ASSISTANT:
        html = message.content_html
        if not html and message.content:
            # A reply saved before its HTML was written: rendered by the same sanitizer.
            from chat.markdown import render_markdown

            html = render_markdown(message.content)
    label = ""
    if message.role == Message.Role.ASSISTANT and message.model:
        label = f"{provider_label(message.provider)} · {message.model}"
    return {
        "role": message.role,
        "content": message.content,
        "html": html,
        "provider": message.provider,
        "model": message.model,
        "model_label": label,
        "status": message.status,
        "finish_reason": message.finish_reason,
        "error": message.error if message.status == Message.Status.ERROR else "",
        "created_at": message.created_at.isoformat(),
        "compare": compare,
        "files": [
            {"name": a.name, "kind": a.kind, "image": None} for a in message.attachments.all()
        ],
    }


@dataclass
class SharedFile:
    """A file of a shared message as the page shows it: an image (``image_id`` set,
    served through the link) or a name only."""

    name: str
    kind: str
    image_id: int | None


@dataclass
class SharedMessage:
    """A snapshot message ready for the template."""

    role: str
    content: str
    html: str
    model_label: str
    status: str
    notice: str
    error: str
    created_at: datetime | None
    compare: bool
    files: list[SharedFile] = field(default_factory=list)

    @property
    def is_reply(self) -> bool:
        return self.role == Message.Role.ASSISTANT


def messages_for_page(snapshot: dict[str, Any]) -> list[SharedMessage]:
    """The snapshot's messages for the shared page, in order; entries that are not
    messages (a damaged snapshot) are left out rather than failing the page."""
    out: list[SharedMessage] = []
    for entry in snapshot.get("messages", []):
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            continue
        status = entry.get("status", "")
        reason = str(entry.get("finish_reason") or "")
        out.append(
            SharedMessage(
                role=entry["role"],
                content=str(entry.get("content") or ""),
                html=str(entry.get("html") or ""),
                model_label=str(entry.get("model_label") or ""),
                status=status,
                notice=incomplete_notice(reason)
                if status == Message.Status.INCOMPLETE and reason
                else "",
                error=str(entry.get("error") or ""),
                created_at=parse_datetime(str(entry.get("created_at") or "")),
                compare=bool(entry.get("compare")),
                files=[
                    SharedFile(
                        name=str(f.get("name") or ""),
                        kind=str(f.get("kind") or ""),
                        image_id=f.get("image") if isinstance(f.get("image"), int) else None,
                    )
                    for f in entry.get("files", [])
                    if isinstance(f, dict)
                ],
            )
        )
    return out
