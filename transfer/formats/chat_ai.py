"""This app's own export (``transfer.services.export``): the shape this app writes, so
the one format it can read back without losing anything.

The document is ``{"format": "chat_ai.conversations", "version": 1, "exported_at",
"conversations": [...]}``; a bare list of conversations (the admin's JSON export) is
read the same way. Each conversation is a row of ``chat.exports.conversations_export_rows``:
``title``, ``provider``, ``model``, ``system_prompt``, ``temperature``, ``max_tokens``,
``reasoning_effort``, ``thinking_budget``, ``created_at``, ``updated_at`` (ISO 8601),
``folder`` (``{"name", "system_prompt", "provider", "model"}`` or null), ``pinned_at``
and ``archived_at`` (ISO 8601 or null; the three are absent from exports made before
folders, which read as null), ``branch_shown`` (the id of the last message of the branch
shown) and ``messages``, each
``{"id", "parent_id", "role": "user"|"assistant", "content", "reasoning", "provider",
"model", "status", "finish_reason", "error", "input_tokens", "output_tokens",
"reasoning_tokens", "time_to_first_token_ms", "duration_ms", "reasoning_ms",
"created_at", "attachments": [{"name", "content_type", "size", "path", "file"}]}``. In a
ZIP export ``file`` is the attachment's path inside the archive; in a JSON file alone the
attachments are only named.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from chat.services.folders import folder_name_clean

from .base import (
    ROLES,
    Archive,
    Problems,
    SourceAttachment,
    SourceConversation,
    SourceFolder,
    SourceMessage,
    order_tree,
    text_of,
    time_of,
    title_from,
)

FORMAT = "chat_ai.conversations"
VERSION = 1
# Statuses kept as they are; a reply exported while being written is cut off.
_STATUSES = {"complete", "incomplete", "error", "stopped"}
_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "time_to_first_token_ms",
    "duration_ms",
    "reasoning_ms",
)


def matches(document: Any) -> bool:
    """The document is this app's export (or the admin's list of conversation rows)."""
    if isinstance(document, dict):
        return document.get("format") == FORMAT
    return (
        isinstance(document, list)
        and bool(document)
        and isinstance(document[0], dict)
        and "branch_shown" in document[0]
        and "messages" in document[0]
    )


def parse(
    document: Any, *, problems: Problems, archive: Archive | None = None
) -> list[SourceConversation]:
    """The conversations of ``document`` (see the module's docstring); problems are
    reported to ``problems``."""
    if isinstance(document, dict):
        version = document.get("version")
        if version != VERSION:
            problems.error(
                _("it is version %(version)s of this app's export; this server reads version 1.")
                % {"version": version}
            )
            return []
        rows = document.get("conversations")
        if not isinstance(rows, list):
            problems.error(_("“conversations” is missing or is not a list."))
            return []
    else:
        rows = document
    conversations = []
    for index, row in enumerate(rows, start=1):
        conversation = _conversation(row, index=index, problems=problems, archive=archive)
        if conversation is not None:
            conversations.append(conversation)
    return conversations


def _conversation(
    row: Any, *, index: int, problems: Problems, archive: Archive | None
) -> SourceConversation | None:
    if not isinstance(row, dict):
        problems.error(_("it is not an object."), index)
        return None
    title = text_of(row.get("title"))
    raw_messages = row.get("messages")
    if not isinstance(raw_messages, list):
        problems.error(_("“messages” is missing or is not a list."), index, title)
        return None
    messages = []
    for position, raw in enumerate(raw_messages, start=1):
        message = _message(
            raw, position=position, index=index, title=title, problems=problems, archive=archive
        )
        if message is not None:
            messages.append(message)
    temperature = row.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        problems.error(_("the temperature must be a number from 0 to 2."), index, title)
        temperature = None
    max_tokens = _positive_int(row.get("max_tokens"))
    if row.get("max_tokens") is not None and max_tokens is None:
        problems.error(_("“max_tokens” must be a positive whole number."), index, title)
    thinking_budget = _positive_int(row.get("thinking_budget"))
    folder = _folder(row.get("folder"), index=index, title=title, problems=problems)
    pinned_at, archived_at = (
        _optional_time(row, name, index=index, title=title, problems=problems)
        for name in ("pinned_at", "archived_at")
    )
    leaf = row.get("branch_shown")
    ordered = order_tree(messages, problems=problems, index=index, title=title)
    current = str(leaf) if leaf is not None else None
    if current is not None and current not in {m.key for m in ordered}:
        problems.error(
            _("the branch shown ends at message “%(id)s”, which is not in it.") % {"id": current},
            index,
            title,
        )
        current = None
    return SourceConversation(
        index=index,
        title=title_from(title, ordered),
        messages=ordered,
        current_leaf=current,
        created_at=time_of(row.get("created_at")),
        updated_at=time_of(row.get("updated_at")),
        external_id=str(row.get("id") or ""),
        provider=text_of(row.get("provider"))[:64],
        model=text_of(row.get("model"))[:200],
        system_prompt=text_of(row.get("system_prompt")),
        temperature=float(temperature) if temperature is not None else None,
        max_tokens=max_tokens,
        reasoning_effort=text_of(row.get("reasoning_effort"))[:16] or None,
        thinking_budget=thinking_budget,
        folder=folder,
        pinned_at=pinned_at,
        archived_at=archived_at,
    )


def _folder(raw: Any, *, index: int, title: str, problems: Problems) -> SourceFolder | None:
    """The conversation's ``folder``: None when it is absent or null; reports one that
    is not an object with a usable ``name``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.error(_("“folder” must be an object with a “name”, or null."), index, title)
        return None
    try:
        name = folder_name_clean(text_of(raw.get("name")))
    except ValidationError as e:
        problems.error(
            _("its folder cannot be made: %(reason)s") % {"reason": " ".join(e.messages)},
            index,
            title,
        )
        return None
    return SourceFolder(
        name=name,
        system_prompt=text_of(raw.get("system_prompt")),
        provider=text_of(raw.get("provider"))[:64],
        model=text_of(raw.get("model"))[:200],
    )


def _optional_time(
    row: dict[str, Any], name: str, *, index: int, title: str, problems: Problems
) -> dt.datetime | None:
    """``row[name]`` as a time (None when absent or null); reports one that is not a
    time."""
    raw = row.get(name)
    if raw is None:
        return None
    when = time_of(raw)
    if when is None:
        problems.error(
            _("“%(field)s” must be a time (ISO 8601) or null.") % {"field": name}, index, title
        )
    return when


def _message(
    raw: Any,
    *,
    position: int,
    index: int,
    title: str,
    problems: Problems,
    archive: Archive | None,
) -> SourceMessage | None:
    if not isinstance(raw, dict):
        problems.error(_("message %(n)d is not an object.") % {"n": position}, index, title)
        return None
    key = raw.get("id")
    if key is None or isinstance(key, bool | dict | list):
        problems.error(_("message %(n)d has no “id”.") % {"n": position}, index, title)
        return None
    role = raw.get("role")
    if role not in ROLES:
        problems.error(
            _("message %(n)d has the role “%(role)s”: it must be “user” or “assistant”.")
            % {"n": position, "role": role},
            index,
            title,
        )
        return None
    content = raw.get("content")
    if not isinstance(content, str):
        problems.error(
            _("message %(n)d has no text (“content” must be a string).") % {"n": position},
            index,
            title,
        )
        return None
    status = raw.get("status") or "complete"
    finish_reason = text_of(raw.get("finish_reason"))[:32]
    if status not in _STATUSES:
        # "streaming": exported while it was being written; anything else is unknown.
        status, finish_reason = "incomplete", "cut_off"
    parent = raw.get("parent_id")
    numbers = {name: _count(raw.get(name)) for name in _INT_FIELDS}
    return SourceMessage(
        key=str(key),
        parent=str(parent) if parent is not None else None,
        role=role,
        text=text_of(content),
        created_at=time_of(raw.get("created_at")),
        provider=text_of(raw.get("provider"))[:64],
        model=text_of(raw.get("model"))[:200],
        reasoning=text_of(raw.get("reasoning")),
        status=status,
        finish_reason=finish_reason,
        error=text_of(raw.get("error")),
        attachments=_attachments(raw.get("attachments"), archive=archive),
        **numbers,
    )


def _attachments(raw: Any, *, archive: Archive | None) -> list[SourceAttachment]:
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        name = text_of(item.get("name")) or "file"
        member = item.get("file")
        data = archive.read(member) if archive is not None and isinstance(member, str) else None
        out.append(SourceAttachment(name=name, data=data))
    return out


def _count(value: Any) -> int | None:
    """A whole number of zero or more, else None (a count is never worth refusing a
    file for)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


def _positive_int(value: Any) -> int | None:
    count = _count(value)
    return count if count else None
