"""Claude's data export (claude.ai, Settings > Privacy > Export data): ``conversations.json``,
alone or in the export's ZIP archive (beside ``users.json`` and ``projects.json``).

Written from the shape of that file as publicly documented and observed by the tools
that read it (Anthropic publishes no schema; this was not checked against a live
export): a list of conversations, each ``{"uuid", "name", "created_at", "updated_at"
(ISO 8601), "chat_messages": [...]}``; each message ``{"uuid", "sender": "human" |
"assistant", "text", "content": [{"type": "text", "text"} | {"type": "thinking",
"thinking"} | {"type": "tool_use" | "tool_result", ...}], "created_at", "attachments":
[{"file_name", "file_type", "file_size", "extracted_content"}], "files": [{"file_name"}]}``.

The export holds the branch that was shown, in order; newer ones may also give each
message ``parent_message_uuid`` and the conversation ``current_leaf_message_uuid``: then
every branch is kept. Text parts are the message's text (``text`` when there are none),
``thinking`` parts its reasoning; tool calls and results are left out. An attachment's
``extracted_content`` (the text Claude read from it) becomes a text file; images and
other files (``files``) are only named in the export, so they are left out.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat.services.attachments import TEXT_TYPES

from .base import (
    ASSISTANT,
    USER,
    Archive,
    Problems,
    SourceAttachment,
    SourceConversation,
    SourceMessage,
    first_conversation,
    order_tree,
    text_of,
    time_of,
    title_from,
)

PROVIDER = "anthropic"
_SENDERS = {"human": USER, "user": USER, "assistant": ASSISTANT}
# The parent of a first message in Claude's tree.
_ROOT_PARENT = "00000000-0000-4000-8000-000000000000"


def matches(document: Any) -> bool:
    """A list of conversations with ``chat_messages``, or one such conversation."""
    conversation = first_conversation(document)
    return conversation is not None and "chat_messages" in conversation


def parse(
    document: Any, *, problems: Problems, archive: Archive | None = None
) -> list[SourceConversation]:
    """The conversations of ``document`` (see the module's docstring)."""
    rows = [document] if isinstance(document, dict) else document
    conversations = []
    tools = 0
    for index, row in enumerate(rows, start=1):
        parsed = _conversation(row, index=index, problems=problems)
        if parsed is not None:
            conversation, skipped = parsed
            tools += skipped
            conversations.append(conversation)
    if tools:
        problems.note(
            ngettext(
                "%(count)d tool call or tool result was left out.",
                "%(count)d tool calls or tool results were left out.",
                tools,
            )
            % {"count": tools}
        )
    return conversations


def _conversation(
    row: Any, *, index: int, problems: Problems
) -> tuple[SourceConversation, int] | None:
    if not isinstance(row, dict):
        problems.error(_("it is not an object."), index)
        return None
    title = text_of(row.get("name"))
    raw_messages = row.get("chat_messages")
    if not isinstance(raw_messages, list):
        problems.error(_("“chat_messages” is missing or is not a list."), index, title)
        return None
    keys = {
        str(m.get("uuid"))
        for m in raw_messages
        if isinstance(m, dict) and m.get("uuid") is not None
    }
    messages: list[SourceMessage] = []
    alias: dict[str, str | None] = {}  # an empty message left out -> where its children go
    previous: str | None = None
    tools = 0
    for position, raw in enumerate(raw_messages, start=1):
        if not isinstance(raw, dict):
            problems.error(_("message %(n)d is not an object.") % {"n": position}, index, title)
            continue
        role = _SENDERS.get(raw.get("sender"))
        if role is None:
            problems.error(
                _("message %(n)d has the sender “%(sender)s”: it must be “human” or “assistant”.")
                % {"n": position, "sender": raw.get("sender")},
                index,
                title,
            )
            continue
        key = str(raw.get("uuid") or f"#{position}")
        parent = _parent(raw, previous=previous, keys=keys)
        while parent is not None and parent in alias:
            parent = alias[parent]
        text, reasoning, skipped = _content(raw)
        tools += skipped
        attachments = _attachments(raw)
        if not text.strip() and not attachments and not reasoning:
            alias[key] = parent
            previous = parent
            continue
        messages.append(
            SourceMessage(
                key=key,
                parent=parent,
                role=role,
                text=text,
                reasoning=reasoning,
                created_at=time_of(raw.get("created_at")),
                provider=PROVIDER if role == ASSISTANT else "",
                model=text_of(row.get("model"))[:200] if role == ASSISTANT else "",
                finish_reason="stop" if role == ASSISTANT else "",
                attachments=attachments,
            )
        )
        previous = key
    ordered = order_tree(messages, problems=problems, index=index, title=title)
    leaf = row.get("current_leaf_message_uuid")
    current = str(leaf) if leaf is not None else None
    while current is not None and current in alias:
        current = alias[current]
    if current not in {m.key for m in ordered}:
        current = None
    return (
        SourceConversation(
            index=index,
            title=title_from(title, ordered),
            messages=ordered,
            current_leaf=current,
            created_at=time_of(row.get("created_at")),
            updated_at=time_of(row.get("updated_at")),
            external_id=text_of(row.get("uuid")),
            provider=PROVIDER,
            model=text_of(row.get("model"))[:200],
        ),
        tools,
    )


def _parent(raw: dict[str, Any], *, previous: str | None, keys: set[str]) -> str | None:
    """The message this one follows: ``parent_message_uuid`` when the export has it
    (the root's parent is a message of no conversation), else the one before it."""
    if "parent_message_uuid" not in raw:
        return previous
    parent = raw.get("parent_message_uuid")
    if parent is None or str(parent) == _ROOT_PARENT:
        return None
    return str(parent) if str(parent) in keys else previous


def _content(raw: dict[str, Any]) -> tuple[str, str, int]:
    """(text, reasoning, how many tool parts were left out)."""
    parts = raw.get("content")
    if not isinstance(parts, list) or not parts:
        return text_of(raw.get("text")), "", 0
    texts: list[str] = []
    thoughts: list[str] = []
    tools = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "thinking" and isinstance(part.get("thinking"), str):
            thoughts.append(part["thinking"])
        elif kind in ("tool_use", "tool_result"):
            tools += 1
    text = "\n\n".join(t for t in texts if t) if texts else text_of(raw.get("text"))
    return text_of(text), text_of("\n\n".join(thoughts)), tools


def _attachments(raw: dict[str, Any]) -> list[SourceAttachment]:
    """Attached documents as text files (their text as Claude read it); other files
    named only (their bytes are not in the export)."""
    out = []
    for item in raw.get("attachments") or []:
        if not isinstance(item, dict):
            continue
        name = text_of(item.get("file_name")) or "document"
        content = item.get("extracted_content")
        if isinstance(content, str) and content:
            ext = name.rpartition(".")[2].lower() if "." in name else ""
            if ext not in TEXT_TYPES:
                name = f"{name}.txt"
            out.append(SourceAttachment(name=name, data=text_of(content).encode()))
        else:
            out.append(SourceAttachment(name=name, data=None))
    for item in raw.get("files") or []:
        if isinstance(item, dict):
            out.append(SourceAttachment(name=text_of(item.get("file_name")) or "file", data=None))
    return out
