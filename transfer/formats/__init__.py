"""Import formats, one module each, and ``read_source``: a file, whatever its name says,
read into neutral conversations (``base.SourceConversation``).

The format is found from the content: a ZIP archive is opened and its
``conversations.json`` read (this app's export, ChatGPT's and Claude's all have one);
JSON is then recognised by its shape, in this order:

- ``chat_ai``: ``{"format": "chat_ai.conversations"}`` (this app's export), or the
  admin's list of conversation rows;
- ``chatgpt``: conversations with a ``mapping`` tree;
- ``claude``: conversations with ``chat_messages``;
- ``openai``: a list of ``{"role", "content"}`` messages, or ``{"messages": [...]}``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import chat_ai, chatgpt, claude, openai_messages
from .base import Archive, Problems, SourceConversation, is_zip

# The file every supported archive keeps its conversations in.
CONVERSATIONS_JSON = "conversations.json"


@dataclass(frozen=True)
class Format:
    """One import format: its name (stored with each conversation imported), its label
    for people, and its parser."""

    name: str
    label: Any  # a lazy translation
    matches: Callable[[Any], bool]
    parse: Callable[..., list[SourceConversation]]


FORMATS: tuple[Format, ...] = (
    Format("chat_ai", gettext_lazy("Chat AI export"), chat_ai.matches, chat_ai.parse),
    Format("chatgpt", gettext_lazy("ChatGPT export"), chatgpt.matches, chatgpt.parse),
    Format("claude", gettext_lazy("Claude export"), claude.matches, claude.parse),
    Format(
        "openai",
        gettext_lazy("OpenAI-style list of messages"),
        openai_messages.matches,
        openai_messages.parse,
    ),
)
FORMAT_LABELS = {f.name: f.label for f in FORMATS}


@dataclass
class SourceFile:
    """What a file holds: its format and its conversations, and notes on what was left
    out (files not included, tool messages...)."""

    format: Format
    conversations: list[SourceConversation]
    notes: list[str] = field(default_factory=list)


def read_source(handle: IO[bytes], *, file_name: str, unpacked_budget: int) -> SourceFile:
    """Read ``handle`` (a seekable binary file): a ZIP archive or a JSON document in one
    of ``FORMATS``. ``unpacked_budget`` is the most bytes read out of an archive.

    Raises ValidationError, each message naming the file (and the conversation, for a
    problem in one), when the file is empty, is neither JSON nor a ZIP archive, is not
    valid JSON (saying where and what, in the person's language), is in no known shape,
    has no conversations, or when any conversation is not valid: then nothing of it is
    returned."""
    problems = Problems(file_name)
    handle.seek(0)
    head = handle.read(4)
    handle.seek(0)
    archive: Archive | None = None
    if is_zip(head):
        try:
            zf = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, EOFError):
            raise ValidationError(
                _("“%(file)s” is a damaged ZIP archive.") % {"file": file_name}
            ) from None
        archive = Archive(zf, budget=unpacked_budget, file_name=file_name)
        data = archive.read(CONVERSATIONS_JSON)
        if data is None:
            raise ValidationError(
                _(
                    "“%(file)s” has no conversations.json: it is not an export of this app, "
                    "ChatGPT or Claude."
                )
                % {"file": file_name}
            )
        problems = Problems(f"{file_name}/{CONVERSATIONS_JSON}")
    else:
        data = handle.read()
        if not data:
            raise ValidationError(empty_file_message(file_name))
    document = _json(data, problems=problems)
    chosen = next((f for f in FORMATS if f.matches(document)), None)
    if chosen is None:
        if document == [] or (isinstance(document, dict) and document.get("messages") == []):
            raise ValidationError(
                _("%(where)s has no conversations.") % {"where": problems.where()}
            )
        raise ValidationError(
            _(
                "%(where)s is JSON, but not in a shape this server reads: an export of this "
                "app, ChatGPT's or Claude's conversations.json, or an OpenAI-style list of "
                "messages ([{“role”: …, “content”: …}] or {“messages”: […]})."
            )
            % {"where": problems.where()}
        )
    conversations = chosen.parse(document, problems=problems, archive=archive)
    problems.raise_if_any()
    if not conversations:
        raise ValidationError(_("%(where)s has no conversations.") % {"where": problems.where()})
    return SourceFile(format=chosen, conversations=conversations, notes=problems.notes)


def empty_file_message(file_name: str) -> str:
    """The refusal of a file with nothing in it (0 bytes), naming it."""
    return _("“%(file)s” is empty (0 bytes): there is nothing in it to import.") % {
        "file": file_name
    }


def _json_problem(message: str) -> str:
    """What Python's JSON parser found wrong (``JSONDecodeError.msg``, English), said
    for people in their language: "a value is missing"..."""
    for start, problem in (
        ("Expecting value", _("a value is missing (or the text is not JSON)")),
        (
            "Expecting property name",
            _("a name in double quotes is expected (is there a comma too many?)"),
        ),
        ("Expecting ':'", _("a colon is missing")),
        ("Expecting ','", _("a comma is missing (or a bracket is not closed)")),
        ("Unterminated string", _("a quoted text is not closed")),
        (
            "Invalid control character",
            _("a quoted text holds a control character (such as a line break)"),
        ),
        ("Invalid \\uXXXX", _("a \\u escape is not valid")),
        ("Invalid \\escape", _("a backslash escape is not valid")),
        ("Extra data", _("more follows the end of the JSON document")),
        ("Illegal trailing comma", _("there is a comma too many")),
    ):
        if message.startswith(start):
            return problem
    return _("the text cannot be read")


def _json(data: bytes, *, problems: Problems) -> Any:
    """The parsed document; ValidationError naming the line and column of a syntax
    error, or saying the file is not JSON at all."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(
            _("%(where)s is neither JSON (UTF-8 text) nor a ZIP archive.")
            % {"where": problems.where()}
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValidationError(
            _("%(where)s is not valid JSON at line %(line)d, column %(column)d: %(problem)s.")
            % {
                "where": problems.where(),
                "problem": _json_problem(e.msg),
                "line": e.lineno,
                "column": e.colno,
            }
        ) from None
    except RecursionError:
        raise ValidationError(
            _("%(where)s is nested too deeply to read.") % {"where": problems.where()}
        ) from None
