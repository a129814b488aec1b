"""ChatGPT's data export: ``conversations.json``, alone or in the export's ZIP archive.

Written from the shape of that file as publicly documented and observed by the tools
that read it (OpenAI publishes no schema; this was not checked against a live export):
a list of conversations, each ``{"id" or "conversation_id", "title", "create_time",
"update_time" (Unix seconds), "default_model_slug", "current_node", "mapping"}``.
``mapping`` is the message tree: node id -> ``{"id", "parent", "children": [ids],
"message"}``, where ``message`` is None for the placeholder root or
``{"author": {"role": "system"|"user"|"assistant"|"tool"}, "create_time",
"content": {"content_type", "parts": [...]}, "status", "recipient", "metadata":
{"model_slug", "is_visually_hidden_from_conversation", "attachments", "finish_details"}}``.
A node with several children is where a message was edited or a reply regenerated;
``current_node`` ends the branch that was shown.

Mapped to the app's tree: user and assistant messages whose content is ``text`` or
``multimodal_text`` (string parts are the text; ``image_asset_pointer`` parts and
``metadata.attachments`` are files, taken from the archive when it has them) and that
are addressed to everyone (``recipient`` "all"). Left out, their children moving up to
the nearest message kept: the placeholder root, system messages (custom instructions
included), tool calls and tool output, hidden messages. A model's ``thoughts`` become the
reasoning of the reply that follows. A reply continued after a tool call (two assistant
messages in a row, the second the first's only child) is one reply.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .base import (
    ASSISTANT,
    USER,
    Archive,
    Problems,
    SourceAttachment,
    SourceConversation,
    SourceMessage,
    first_conversation,
    text_of,
    time_of,
    title_from,
    with_extension,
)

PROVIDER = "openai"
_KEPT_CONTENT = {"text", "multimodal_text"}
# A file's id at the start of its name in the archive: "file-AbC123-photo.png",
# "file_00000000a1b2...-image.png".
_FILE_ID = re.compile(r"^(file[-_][A-Za-z0-9]+)")


def matches(document: Any) -> bool:
    """A list of conversations with a ``mapping``, or one such conversation."""
    conversation = first_conversation(document)
    return conversation is not None and "mapping" in conversation


def parse(
    document: Any, *, problems: Problems, archive: Archive | None = None
) -> list[SourceConversation]:
    """The conversations of ``document`` (see the module's docstring)."""
    rows = [document] if isinstance(document, dict) else document
    files = _archive_files(archive)
    conversations = []
    left_out = 0
    for index, row in enumerate(rows, start=1):
        parsed = _conversation(row, index=index, problems=problems, files=files, archive=archive)
        if parsed is not None:
            conversation, skipped = parsed
            left_out += skipped
            conversations.append(conversation)
    if left_out:
        problems.note(
            ngettext(
                "%(count)d system, tool or hidden message was left out.",
                "%(count)d system, tool or hidden messages were left out.",
                left_out,
            )
            % {"count": left_out}
        )
    return conversations


def _archive_files(archive: Archive | None) -> dict[str, str]:
    """File id -> the archive member holding it."""
    if archive is None:
        return {}
    found: dict[str, str] = {}
    for name in archive.names():
        match = _FILE_ID.match(name.rsplit("/", 1)[-1])
        if match:
            found.setdefault(match.group(1), name)
    return found


def _conversation(
    row: Any,
    *,
    index: int,
    problems: Problems,
    files: dict[str, str],
    archive: Archive | None,
) -> tuple[SourceConversation, int] | None:
    if not isinstance(row, dict):
        problems.error(_("it is not an object."), index)
        return None
    title = text_of(row.get("title"))
    mapping = row.get("mapping")
    if not isinstance(mapping, dict):
        problems.error(_("“mapping” is missing or is not an object."), index, title)
        return None
    for node_id, node in mapping.items():
        if not isinstance(node, dict):
            problems.error(_("node “%(id)s” is not an object.") % {"id": node_id}, index, title)
            return None
        children = node.get("children", [])
        message = node.get("message")
        if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
            problems.error(
                _("node “%(id)s”: “children” must be a list of node ids.") % {"id": node_id},
                index,
                title,
            )
            return None
        if message is not None and not isinstance(message, dict):
            problems.error(
                _("node “%(id)s”: “message” must be an object.") % {"id": node_id}, index, title
            )
            return None

    kept: list[SourceMessage] = []
    skipped = 0
    roots = [
        key
        for key, node in mapping.items()
        if node.get("parent") is None or node.get("parent") not in mapping
    ]
    seen: set[str] = set()
    # (node id, the nearest kept ancestor, reasoning waiting for the next reply)
    stack: list[tuple[str, str | None, str]] = [(root, None, "") for root in reversed(roots)]
    while stack:
        node_id, parent, pending = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = mapping[node_id]
        message = node.get("message")
        below, carry = parent, pending
        if message is not None:
            converted = _message(node_id, message, parent=parent, files=files, archive=archive)
            if converted is None:
                thoughts = _thoughts(message)
                if thoughts:
                    carry = f"{pending}\n\n{thoughts}".strip()
                else:
                    skipped += 1
            else:
                if converted.role == ASSISTANT and pending:
                    converted.reasoning = pending
                    carry = ""
                kept.append(converted)
                below = converted.key
        children = [c for c in node.get("children", []) if c in mapping]
        children.sort(key=lambda c: _created(mapping[c]))
        stack.extend((child, below, carry) for child in reversed(children))

    messages, alias = _join_continued_replies(kept)
    current = _current_leaf(row.get("current_node"), mapping, {m.key for m in kept}, alias)
    model = text_of(row.get("default_model_slug")) or next(
        (m.model for m in reversed(messages) if m.model), ""
    )
    return (
        SourceConversation(
            index=index,
            title=title_from(title, messages),
            messages=messages,
            current_leaf=current,
            created_at=time_of(row.get("create_time")),
            updated_at=time_of(row.get("update_time")),
            external_id=text_of(row.get("conversation_id") or row.get("id")),
            provider=PROVIDER,
            model=model[:200],
        ),
        skipped,
    )


def _created(node: dict[str, Any]) -> float:
    message = node.get("message")
    value = message.get("create_time") if isinstance(message, dict) else None
    return float(value) if isinstance(value, int | float) else 0.0


def _message(
    node_id: str,
    message: dict[str, Any],
    *,
    parent: str | None,
    files: dict[str, str],
    archive: Archive | None,
) -> SourceMessage | None:
    """The message as the app keeps it, or None when it is left out."""
    author = message.get("author") if isinstance(message.get("author"), dict) else {}
    role = author.get("role")
    metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    content = message.get("content") if isinstance(message.get("content"), dict) else {}
    if role not in (USER, ASSISTANT):
        return None
    if metadata.get("is_visually_hidden_from_conversation") or metadata.get(
        "is_user_system_message"
    ):
        return None
    if message.get("recipient") not in (None, "all"):
        return None
    if content.get("content_type") not in _KEPT_CONTENT:
        return None
    texts: list[str] = []
    pointers: list[str] = []
    parts = content.get("parts") if isinstance(content.get("parts"), list) else []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if part.get("content_type") == "image_asset_pointer":
                pointers.append(str(part.get("asset_pointer") or ""))
            elif isinstance(part.get("text"), str):  # an audio transcription
                texts.append(part["text"])
    attachments = _attachments(metadata, pointers, files=files, archive=archive)
    text = text_of("\n\n".join(t for t in texts if t))
    if not text.strip() and not attachments:
        return None
    status, finish_reason = "complete", "stop" if role == ASSISTANT else ""
    finish = metadata.get("finish_details")
    finish_type = finish.get("type") if isinstance(finish, dict) else None
    if role == ASSISTANT and finish_type == "max_tokens":
        status, finish_reason = "incomplete", "length"
    elif role == ASSISTANT and finish_type == "interrupted":
        status, finish_reason = "stopped", ""
    return SourceMessage(
        key=node_id,
        parent=parent,
        role=role,
        text=text,
        created_at=time_of(message.get("create_time")),
        provider=PROVIDER if role == ASSISTANT else "",
        model=text_of(metadata.get("model_slug"))[:200] if role == ASSISTANT else "",
        status=status,
        finish_reason=finish_reason,
        attachments=attachments,
    )


def _thoughts(message: dict[str, Any]) -> str:
    """The text of a reasoning model's ``thoughts`` message (its summaries and
    content), or "" for any other message."""
    content = message.get("content") if isinstance(message.get("content"), dict) else {}
    if content.get("content_type") != "thoughts":
        return ""
    pieces = []
    for thought in content.get("thoughts") or []:
        if isinstance(thought, dict):
            for key in ("summary", "content"):
                if isinstance(thought.get(key), str) and thought[key].strip():
                    pieces.append(thought[key].strip())
    return text_of("\n\n".join(pieces))


def _attachments(
    metadata: dict[str, Any],
    pointers: list[str],
    *,
    files: dict[str, str],
    archive: Archive | None,
) -> list[SourceAttachment]:
    """The message's files: those named in ``metadata.attachments`` and the images of
    its parts (``file-service://file-…`` or ``sediment://file_…``), each once."""
    named: list[tuple[str, str]] = []  # (file id, name)
    for item in metadata.get("attachments") or []:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            named.append((item["id"], text_of(item.get("name"))))
    for pointer in pointers:
        file_id = pointer.split("://", 1)[-1]
        if file_id and file_id not in {i for i, _n in named}:
            named.append((file_id, ""))
    out = []
    for file_id, name in named:
        member = files.get(file_id)
        data = archive.read(member) if archive is not None and member else None
        if not name:
            base = member.rsplit("/", 1)[-1] if member else file_id
            name = base.removeprefix(file_id).lstrip("-_ ") or base
        if data is not None:
            name = with_extension(name, data)
        out.append(SourceAttachment(name=name, data=data))
    return out


def _join_continued_replies(
    messages: list[SourceMessage],
) -> tuple[list[SourceMessage], dict[str, str]]:
    """Messages with each assistant message that only continues the one before it (its
    parent is an assistant message and it is that message's only child left) joined to
    it. Returns the messages kept and the key each joined message became."""
    children: dict[str | None, int] = {}
    for m in messages:
        children[m.parent] = children.get(m.parent, 0) + 1
    alias: dict[str, str] = {}
    kept: dict[str, SourceMessage] = {}
    out = []
    for m in messages:
        original_parent = m.parent
        m.parent = alias.get(original_parent, original_parent) if original_parent else None
        previous = kept.get(m.parent) if m.parent else None
        if (
            previous is not None
            and previous.role == m.role == ASSISTANT
            and children.get(original_parent) == 1
        ):
            previous.text = "\n\n".join(t for t in (previous.text, m.text) if t)
            previous.reasoning = "\n\n".join(t for t in (previous.reasoning, m.reasoning) if t)
            previous.attachments += m.attachments
            previous.model = m.model or previous.model
            previous.status, previous.finish_reason = m.status, m.finish_reason
            alias[m.key] = previous.key
            continue
        kept[m.key] = m
        out.append(m)
    return out, alias


def _current_leaf(
    current: Any, mapping: dict[str, Any], kept: set[str], alias: dict[str, str]
) -> str | None:
    """The kept message nearest above ``current_node`` (it may be a tool message)."""
    node = current if isinstance(current, str) else None
    seen: set[str] = set()
    while node is not None and node in mapping and node not in seen:
        if node in kept:
            return alias.get(node, node)
        seen.add(node)
        parent = mapping[node].get("parent")
        node = parent if isinstance(parent, str) else None
    return None
