"""A plain list of chat messages in the OpenAI Chat Completions shape: the ``messages``
of a request (https://platform.openai.com/docs/api-reference/chat/create), as many tools
save a conversation.

Three forms are read: ``[{"role", "content"}, ...]`` (one conversation),
``{"messages": [...], "model"?, "title"?}`` (one conversation) and ``[{"messages": [...]},
...]`` (one conversation each, as in a fine-tuning file). ``role`` is ``system``,
``developer``, ``user``, ``assistant``, ``tool`` or ``function``; ``content`` is a string,
None, or a list of parts: ``{"type": "text", "text"}`` (also ``input_text`` /
``output_text``), ``{"type": "image_url", "image_url": {"url"}}`` and ``{"type": "file",
"file": {"filename", "file_data"}}``. Files given as ``data:`` URLs are imported; a
file at a web address is not fetched (left out, and the result says so).

System and developer messages become the conversation's system prompt; tool messages
and assistant messages with only tool calls are left out. An assistant message's
``reasoning_content`` (DeepSeek and compatible servers) is its reasoning. The messages
form one branch, in order.
"""

from __future__ import annotations

import base64
import binascii
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
    text_of,
    title_from,
    with_extension,
)

PROVIDER = "openai"
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_TEXT_PARTS = {"text", "input_text", "output_text"}


def matches(document: Any) -> bool:
    """A list of messages, ``{"messages": [...]}``, or a list of such objects."""
    if isinstance(document, dict):
        return isinstance(document.get("messages"), list)
    if isinstance(document, list) and document and isinstance(document[0], dict):
        return "role" in document[0] or isinstance(document[0].get("messages"), list)
    return False


def parse(
    document: Any, *, problems: Problems, archive: Archive | None = None
) -> list[SourceConversation]:
    """The conversations of ``document`` (see the module's docstring)."""
    if isinstance(document, dict):
        rows: list[Any] = [document]
    elif document and isinstance(document[0], dict) and "role" in document[0]:
        rows = [{"messages": document}]
    else:
        rows = document
    conversations = []
    left_out = 0
    for index, row in enumerate(rows, start=1):
        parsed = _conversation(row, index=index, problems=problems)
        if parsed is not None:
            conversation, skipped = parsed
            left_out += skipped
            conversations.append(conversation)
    if left_out:
        problems.note(
            ngettext(
                "%(count)d tool message was left out.",
                "%(count)d tool messages were left out.",
                left_out,
            )
            % {"count": left_out}
        )
    return conversations


def _conversation(
    row: Any, *, index: int, problems: Problems
) -> tuple[SourceConversation, int] | None:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        problems.error(_("it must be an object with a “messages” list."), index)
        return None
    title = text_of(row.get("title"))
    model = text_of(row.get("model"))[:200]
    system: list[str] = []
    messages: list[SourceMessage] = []
    skipped = 0
    for position, raw in enumerate(row["messages"], start=1):
        if not isinstance(raw, dict):
            problems.error(_("message %(n)d is not an object.") % {"n": position}, index, title)
            continue
        role = raw.get("role")
        if role not in _ROLES:
            problems.error(
                _(
                    "message %(n)d has the role “%(role)s”: it must be one of system, "
                    "developer, user, assistant, tool."
                )
                % {"n": position, "role": role},
                index,
                title,
            )
            continue
        content = raw.get("content")
        if content is not None and not isinstance(content, str | list):
            problems.error(
                _("message %(n)d: “content” must be a string or a list of parts.")
                % {"n": position},
                index,
                title,
            )
            continue
        text, attachments, remote = _parts(content, position=position)
        if remote:
            problems.note(
                ngettext(
                    "message %(n)d: %(count)d file at a web address was left out (it is "
                    "not downloaded).",
                    "message %(n)d: %(count)d files at web addresses were left out (they "
                    "are not downloaded).",
                    remote,
                )
                % {"n": position, "count": remote},
                index,
                title,
            )
        if role in ("system", "developer"):
            if text.strip():
                system.append(text)
            continue
        reasoning = text_of(raw.get("reasoning_content")) if role == ASSISTANT else ""
        if role in ("tool", "function") or (not text.strip() and not attachments and not reasoning):
            skipped += 1
            continue
        messages.append(
            SourceMessage(
                key=str(position),
                parent=messages[-1].key if messages else None,
                role=USER if role == USER else ASSISTANT,
                text=text,
                reasoning=reasoning,
                provider=PROVIDER if role == ASSISTANT else "",
                model=model if role == ASSISTANT else "",
                finish_reason="stop" if role == ASSISTANT else "",
                attachments=attachments,
            )
        )
    return (
        SourceConversation(
            index=index,
            title=title_from(title, messages),
            messages=messages,
            provider=PROVIDER,
            model=model,
            system_prompt="\n\n".join(system),
        ),
        skipped,
    )


def _parts(content: Any, *, position: int) -> tuple[str, list[SourceAttachment], int]:
    """(text, files from data URLs, how many files at web addresses were left out)."""
    if content is None:
        return "", [], 0
    if isinstance(content, str):
        return text_of(content), [], 0
    texts: list[str] = []
    files: list[SourceAttachment] = []
    remote = 0
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            data = _data_url(url)
            if data is None:
                remote += 1
            else:
                name = with_extension(f"image-{position}-{len(files) + 1}", data)
                files.append(SourceAttachment(name=name, data=data))
        elif kind == "file":
            file = part.get("file") if isinstance(part.get("file"), dict) else {}
            data = _data_url(file.get("file_data"))
            if data is None:
                remote += 1
            else:
                name = text_of(file.get("filename")) or f"file-{position}-{len(files) + 1}"
                files.append(SourceAttachment(name=with_extension(name, data), data=data))
    return text_of("\n\n".join(t for t in texts if t)), files, remote


def _data_url(url: Any) -> bytes | None:
    """The bytes of a base64 ``data:`` URL, or None (another URL, or not base64)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    head, comma, payload = url.partition(",")
    if not comma or ";base64" not in head:
        return None
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None
