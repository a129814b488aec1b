"""The neutral shape every import format is read into, and what the parsers share.

A parser (one module per format in this package) turns a parsed JSON document into
``SourceConversation`` objects: a title, times, the conversation's settings when the
format has them, and its messages as a tree (``SourceMessage.parent`` names another
message's ``key``), listed parents first and siblings oldest first, so that saving them
in that order gives the app's tree (children ordered by id) the same branches and the
same order of versions. ``current_leaf`` is the message whose branch was shown.

A parser never raises for bad content: it reports each problem through ``Problems``,
naming the file, the conversation (its position in the file and its title) and what is
wrong, and the import refuses the whole file when any was reported.
"""

from __future__ import annotations

import datetime as dt
import math
import zipfile
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat.dbtext import storable_text

USER = "user"
ASSISTANT = "assistant"
ROLES = (USER, ASSISTANT)
# Problems listed in one refusal; the rest are counted.
MAX_LISTED_PROBLEMS = 20
TITLE_MAX_CHARS = 200
# A title made from the first message: its first line, at most this long.
DERIVED_TITLE_CHARS = 80


@dataclass
class SourceAttachment:
    """A file of a message: ``data`` its bytes, or None when the file only names it (the
    bytes were not in what was imported: such a file is left out, and the result says
    so)."""

    name: str
    data: bytes | None = None


@dataclass
class SourceMessage:
    """One message. ``key`` is unique within its conversation; ``parent`` is another
    message's key (None: a first message). Token counts are integers or None; the
    ``*_ms`` fields are milliseconds."""

    key: str
    parent: str | None
    role: str
    text: str
    created_at: dt.datetime | None = None
    provider: str = ""
    model: str = ""
    reasoning: str = ""
    status: str = "complete"
    finish_reason: str = ""
    error: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    time_to_first_token_ms: int | None = None
    duration_ms: int | None = None
    reasoning_ms: int | None = None
    attachments: list[SourceAttachment] = field(default_factory=list)


@dataclass
class SourceFolder:
    """The folder a conversation was in (only this app's export has folders): its name
    and what new chats in it start with (``provider`` and ``model`` both blank: the
    usual model)."""

    name: str
    system_prompt: str = ""
    provider: str = ""
    model: str = ""


@dataclass
class SourceConversation:
    """One conversation read from a file. ``index`` is its 1-based position in the file
    (for messages), ``external_id`` the id the other service gave it (or empty).
    ``folder``, ``pinned_at`` and ``archived_at`` are set by formats that have them
    (None: in no folder, not pinned, not archived)."""

    index: int
    title: str
    messages: list[SourceMessage]
    current_leaf: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    external_id: str = ""
    provider: str = ""
    model: str = ""
    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    folder: SourceFolder | None = None
    pinned_at: dt.datetime | None = None
    archived_at: dt.datetime | None = None


class Problems:
    """What is wrong with one file, each problem a sentence naming the file and, when it
    is about one conversation, its position and title. ``notes`` are things left out
    that do not stop the import (a system message, a file not included)."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.errors: list[str] = []
        self.notes: list[str] = []

    def where(self, index: int | None = None, title: str = "") -> str:
        """“file.json”, or “file.json”, conversation 3 (“Title”)."""
        if index is None:
            return _("“%(file)s”") % {"file": self.file_name}
        title = " ".join((title or "").split())[:60]
        if title:
            return _("“%(file)s”, conversation %(index)d (“%(title)s”)") % {
                "file": self.file_name,
                "index": index,
                "title": title,
            }
        return _("“%(file)s”, conversation %(index)d") % {"file": self.file_name, "index": index}

    def error(self, message: str, index: int | None = None, title: str = "") -> None:
        """Report a problem that refuses the file."""
        self.errors.append(f"{self.where(index, title)}: {message}")

    def note(self, message: str, index: int | None = None, title: str = "") -> None:
        """Report something left out that does not refuse the file."""
        self.notes.append(f"{self.where(index, title)}: {message}")

    def refusal(self) -> ValidationError:
        """The errors as one ValidationError: the first ``MAX_LISTED_PROBLEMS`` of them,
        then how many more there are."""
        listed = self.errors[:MAX_LISTED_PROBLEMS]
        more = len(self.errors) - len(listed)
        if more:
            listed.append(
                ngettext("… and %(count)d more problem.", "… and %(count)d more problems.", more)
                % {"count": more}
            )
        return ValidationError(listed)

    def raise_if_any(self) -> None:
        """Raise ``refusal()`` when any error was reported."""
        if self.errors:
            raise self.refusal()


class Archive:
    """Members of a ZIP archive, read with a budget: no more than ``budget`` bytes in
    all come out of it (a small archive can unpack to gigabytes). Member names are
    compared without a leading folder when every member is inside one (an export
    unpacked and zipped again)."""

    def __init__(self, zf: zipfile.ZipFile, *, budget: int, file_name: str) -> None:
        self.zf = zf
        self.budget = budget
        self.file_name = file_name
        infos = [i for i in zf.infolist() if not i.is_dir()]
        tops = {i.filename.split("/", 1)[0] for i in infos if "/" in i.filename}
        prefix = ""
        if len(tops) == 1 and all("/" in i.filename for i in infos):
            prefix = f"{next(iter(tops))}/"
        self.members: dict[str, zipfile.ZipInfo] = {
            i.filename.removeprefix(prefix): i for i in infos
        }

    def names(self) -> list[str]:
        """Every file's name (without the common leading folder, if any)."""
        return list(self.members)

    def read(self, name: str) -> bytes | None:
        """The member's bytes, or None when there is no such member. ValidationError
        when reading it would go over the budget, or it is damaged."""
        info = self.members.get(name)
        if info is None:
            return None
        if info.file_size > self.budget:
            raise self._too_big()
        try:
            with self.zf.open(info) as handle:
                data = handle.read(self.budget + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
            raise ValidationError(
                _("“%(file)s”: “%(name)s” inside it is damaged or encrypted.")
                % {"file": self.file_name, "name": name}
            ) from None
        if len(data) > self.budget:  # the size in the directory was not the truth
            raise self._too_big()
        self.budget -= len(data)
        return data

    def _too_big(self) -> ValidationError:
        from ..services.limits import max_unpacked_bytes

        return ValidationError(
            _(
                "“%(file)s” unpacks to more than %(limit)s: an import can unpack to at most "
                "that. Import its conversations.json alone, or split it."
            )
            % {"file": self.file_name, "limit": filesizeformat(max_unpacked_bytes())}
        )


# --- Helpers for parsers -----------------------------------------------------------------


def first_conversation(document: Any) -> dict[str, Any] | None:
    """The conversation an export document holds: the document itself when it is one
    object, else the first item of its list when that is an object; None otherwise.
    Formats recognise themselves by its keys (``matches``)."""
    if isinstance(document, dict):
        return document
    if isinstance(document, list) and document and isinstance(document[0], dict):
        return document[0]
    return None


def text_of(value: Any) -> str:
    """A string as the database can store it (no NUL, no lone surrogates); anything
    that is not a string gives ""."""
    return storable_text(value) if isinstance(value, str) else ""


def time_of(value: Any) -> dt.datetime | None:
    """An aware datetime from an ISO 8601 string (a trailing ``Z`` accepted; a time
    without an offset is taken as UTC) or from Unix seconds (int or float); None for
    None, an empty string or anything that is not a time."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        try:
            return dt.datetime.fromtimestamp(value, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed
    return None


def title_from(title: str, messages: list[SourceMessage]) -> str:
    """``title`` with its runs of spaces made one and cut to fit, or, when it is empty,
    the first line of the first user message (cut to ``DERIVED_TITLE_CHARS``)."""
    title = " ".join(title.split())
    if not title:
        first = next((m.text for m in messages if m.role == USER and m.text.strip()), "")
        line = first.strip().splitlines()[0] if first.strip() else ""
        title = " ".join(line.split())[:DERIVED_TITLE_CHARS]
    return title[:TITLE_MAX_CHARS]


def order_tree(
    messages: list[SourceMessage], *, problems: Problems, index: int, title: str
) -> list[SourceMessage]:
    """``messages`` listed parents first, each message's children in the order given
    (a depth-first walk), so that saving in this order keeps the versions' order.
    Reports a repeated key, a parent that is not in the conversation, or a loop; the
    messages returned are then only those that could be placed."""
    by_key: dict[str, SourceMessage] = {}
    for message in messages:
        if message.key in by_key:
            problems.error(
                _("two messages have the id “%(id)s”.") % {"id": message.key}, index, title
            )
            continue
        by_key[message.key] = message
    children: dict[str | None, list[SourceMessage]] = {}
    for message in by_key.values():
        parent = message.parent
        if parent is not None and parent not in by_key:
            problems.error(
                _("message “%(id)s” answers message “%(parent)s”, which is not in it.")
                % {"id": message.key, "parent": parent},
                index,
                title,
            )
            continue
        children.setdefault(parent, []).append(message)
    ordered: list[SourceMessage] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        message = stack.pop()
        ordered.append(message)
        stack.extend(reversed(children.get(message.key, [])))
    placed = {m.key for m in ordered}
    looped = [
        m.key
        for m in by_key.values()
        if m.key not in placed and (m.parent is None or m.parent in by_key)
    ]
    if looped:
        problems.error(
            _("the messages %(ids)s answer each other in a loop.")
            % {"ids": ", ".join(f"“{k}”" for k in looped[:5])},
            index,
            title,
        )
    return ordered


def sniffed_extension(data: bytes) -> str:
    """The usual extension of ``data``'s type by its magic bytes ("png", "pdf"...), or
    "" when it is not a known binary type."""
    import filetype

    kind = filetype.guess(data[:8192])
    if kind is None:
        return ""
    return "jpg" if kind.extension == "jpeg" else kind.extension


def with_extension(name: str, data: bytes) -> str:
    """``name`` with the extension its content has when it has none or another one (an
    export names images ``file-abc.dat`` or leaves the extension out)."""
    ext = sniffed_extension(data)
    if not ext:
        return name
    _stem, dot, current = name.rpartition(".")
    if dot and current.lower() in (ext, "jpeg" if ext == "jpg" else ext):
        return name
    return f"{name}.{ext}"


def is_zip(head: bytes) -> bool:
    """The first bytes of a ZIP archive (a local file header, or an empty archive)."""
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))
