"""The OpenAI-shaped messages a provider receives, and pure helpers that reshape them for
APIs that differ (system prompt apart, roles that must alternate).

A message is ``{"role": "system" | "user" | "assistant", "content": ...}``. ``content``
is a str, or, in a user message, a list of content parts in the format of OpenAI's Chat
Completions API (the format the app's ``/v1`` API accepts too):

* ``{"type": "text", "text": str}``;
* ``{"type": "image_url", "image_url": {"url": "data:<mime>;base64,<b64>"}}`` for PNG,
  JPEG, WebP and GIF images (``"detail"`` may be given as well: OpenAI reads it, the
  other providers ignore it);
* ``{"type": "file", "file": {"filename": str, "file_data":
  "data:application/pdf;base64,<b64>"}}`` for PDF documents.

Images and files travel inline, as ``data:`` URLs: a provider never fetches a URL.
``normalize_messages`` checks all of it once, before a request; each provider's mapper
then turns the parts into its API's native form (see ``image_source`` / ``pdf_source``),
and a provider that reads only text takes ``text_only`` (text parts joined, or a clear
BadRequestError when an image or a PDF is there).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import BadRequestError

Role = Literal["system", "user", "assistant"]
# One content part, as described in the module docstring.
ContentPart = dict[str, Any]
# A message's content: text, or (user messages) a list of content parts.
Content = str | list[ContentPart]
# {"role": "system"|"user"|"assistant", "content": Content}
Message = Mapping[str, Any]

_ROLES = ("system", "user", "assistant")

IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
PDF_MIME_TYPE = "application/pdf"
_IMAGE_DETAILS = ("auto", "low", "high")

# Text parts of one message, and turns merged into one, are joined with a blank line.
TEXT_SEPARATOR = "\n\n"

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(?:;[\w.+-]+=[^;,]*)*);base64,")


@dataclass(frozen=True, slots=True)
class InlineData:
    """The content of an image or file part: its MIME type (``image/png``,
    ``application/pdf``...) and its bytes as base64 text (as the APIs want them)."""

    mime_type: str
    base64: str

    def data(self) -> bytes:
        """The decoded bytes."""
        return binascii.a2b_base64(self.base64)

    @property
    def url(self) -> str:
        """As a ``data:`` URL again."""
        return f"data:{self.mime_type};base64,{self.base64}"


def parse_data_url(url: object, *, allowed: Sequence[str], where: str) -> InlineData:
    """The MIME type and base64 text of a ``data:<mime>;base64,<b64>`` URL. Raises
    BadRequestError (naming ``where``, e.g. "message 2, part 1") for anything else: an
    http(s) URL (never fetched here), a type outside ``allowed``, base64 that does not
    decode, or no data at all."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise BadRequestError(
            f"{where}: the file must be sent inline as a data: URL (links are not fetched)"
        )
    match = _DATA_URL.match(url)
    if match is None:
        raise BadRequestError(f"{where}: not a base64 data: URL")
    mime = match["mime"].lower()
    if mime == "image/jpg":  # a common misspelling of the registered type
        mime = "image/jpeg"
    if mime not in allowed:
        raise BadRequestError(
            f"{where}: files of type {mime} are not accepted here (accepted: {', '.join(allowed)})"
        )
    data = url[match.end() :]
    if not data:
        raise BadRequestError(f"{where}: the file is empty")
    try:
        binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise BadRequestError(f"{where}: the file's base64 data is damaged") from None
    return InlineData(mime, data)


def _text_part(text: str) -> ContentPart:
    return {"type": "text", "text": text}


def _normalize_part(part: object, where: str) -> ContentPart:
    """One content part checked and copied into its canonical shape (see the module
    docstring). Raises BadRequestError."""
    if not isinstance(part, Mapping):
        raise BadRequestError(f"{where}: a content part must be an object with a type")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise BadRequestError(f"{where}: a text part needs its text")
        return _text_part(text)
    if kind == "image_url":
        image = part.get("image_url")
        if not isinstance(image, Mapping):
            raise BadRequestError(f"{where}: an image_url part needs {{'url': ...}}")
        inline = parse_data_url(image.get("url"), allowed=IMAGE_MIME_TYPES, where=where)
        normalized: dict[str, Any] = {"url": inline.url}
        detail = image.get("detail")
        if detail is not None:
            if detail not in _IMAGE_DETAILS:
                raise BadRequestError(
                    f"{where}: image detail must be one of {', '.join(_IMAGE_DETAILS)}"
                )
            normalized["detail"] = detail
        return {"type": "image_url", "image_url": normalized}
    if kind == "file":
        file = part.get("file")
        if not isinstance(file, Mapping):
            raise BadRequestError(f"{where}: a file part needs {{'filename', 'file_data'}}")
        if file.get("file_id") and not file.get("file_data"):
            raise BadRequestError(f"{where}: uploaded file ids are not accepted; send file_data")
        filename = file.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise BadRequestError(f"{where}: a file part needs its filename")
        inline = parse_data_url(file.get("file_data"), allowed=(PDF_MIME_TYPE,), where=where)
        return {"type": "file", "file": {"filename": filename, "file_data": inline.url}}
    if isinstance(kind, str):
        raise BadRequestError(
            f"{where}: unknown content part type {kind[:40]!r} (accepted: text, image_url, file)"
        )
    raise BadRequestError(f"{where}: a content part must be an object with a type")


def normalize_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Check OpenAI-shaped messages and return plain dicts (content parts copied into
    their canonical shape). Only user messages keep a list of parts; a system or
    assistant message given as text parts becomes their text, joined by a blank line
    (an image or file there is an error). Raises BadRequestError naming the message
    (and part) that is wrong."""
    result: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if role not in _ROLES:
            raise BadRequestError(f"message {i}: role must be one of {', '.join(_ROLES)}")
        if isinstance(content, (list, tuple)):
            parts = [
                _normalize_part(part, f"message {i}, part {j}") for j, part in enumerate(content)
            ]
            if role != "user":
                if any(part["type"] != "text" for part in parts):
                    raise BadRequestError(
                        f"message {i}: only user messages may carry images or files"
                    )
                content = content_text(parts)
            else:
                content = parts
        elif not isinstance(content, str):
            raise BadRequestError(f"message {i}: content must be text or a list of content parts")
        result.append({"role": role, "content": content})
    if not any(m["role"] != "system" for m in result):
        raise BadRequestError("there is no message to answer")
    return result


# --- Reading content ----------------------------------------------------------------------


def content_text(content: Any) -> str:
    """The text of a message's content: the str itself, or the text parts of a list
    joined by a blank line (blank ones left out; images and files say nothing here)."""
    if isinstance(content, str):
        return content
    texts = [
        part["text"]
        for part in content or ()
        if part.get("type") == "text" and isinstance(part.get("text"), str)
    ]
    return TEXT_SEPARATOR.join(text for text in texts if text.strip())


def has_media(content: Any) -> bool:
    """Whether the content holds an image or a file part."""
    return not isinstance(content, str) and any(
        part.get("type") in ("image_url", "file") for part in content or ()
    )


def is_blank(content: Any) -> bool:
    """True for content that says nothing: blank text, or parts that are all blank text.
    A turn with an image or a file is never blank."""
    if isinstance(content, str):
        return not content.strip()
    return not has_media(content) and not content_text(content).strip()


def media_kinds(messages: Iterable[Message]) -> set[str]:
    """What the messages carry besides text: a subset of ``{"image", "pdf"}``."""
    kinds: set[str] = set()
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            continue
        for part in content or ():
            if part.get("type") == "image_url":
                kinds.add("image")
            elif part.get("type") == "file":
                kinds.add("pdf")
    return kinds


def as_parts(content: Any) -> list[ContentPart]:
    """Content as a list of parts (a fresh list): text becomes one text part, blank text
    none."""
    if isinstance(content, str):
        return [_text_part(content)] if content.strip() else []
    return list(content or ())


def image_source(part: Mapping[str, Any]) -> InlineData:
    """The image of an ``image_url`` part that ``normalize_messages`` checked."""
    return _inline(part["image_url"]["url"])


def pdf_source(part: Mapping[str, Any]) -> tuple[str, InlineData]:
    """(filename, the PDF) of a ``file`` part that ``normalize_messages`` checked."""
    file = part["file"]
    return file["filename"], _inline(file["file_data"])


def _inline(url: str) -> InlineData:
    """A checked ``data:`` URL taken apart (no second decoding of its data)."""
    match = _DATA_URL.match(url)
    if match is None:  # not checked by normalize_messages after all
        raise BadRequestError("not a base64 data: URL")
    return InlineData(match["mime"].lower(), url[match.end() :])


def cannot_read_files(label: str, kinds: Iterable[str] = ("image", "pdf")) -> BadRequestError:
    """The error for a provider (or model) that reads no images or PDFs; it reads
    "<label>: cannot read images/PDF files" (or names only the kind at fault)."""
    kinds = set(kinds)
    what = (
        "images/PDF files"
        if kinds >= {"image", "pdf"}
        else "images"
        if "image" in kinds
        else "PDF files"
    )
    return BadRequestError(f"cannot read {what}", provider=label)


def text_only(messages: Sequence[Message], label: str) -> list[dict[str, Any]]:
    """The messages with every content as text, for a provider that reads only text:
    text parts joined by a blank line. Raises BadRequestError ("<label>: cannot read
    images/PDF files") when a message holds an image or a file."""
    kinds = media_kinds(messages)
    if kinds:
        raise cannot_read_files(label, kinds)
    return [{"role": m["role"], "content": content_text(m["content"])} for m in messages]


# --- Reshaping a history --------------------------------------------------------------------


def split_system(
    messages: Sequence[Message], system_prompt: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """Pull system messages out (APIs that take the system prompt apart: Anthropic,
    Gemini). The options' system prompt comes first, then any system messages. The
    other turns keep their content (a list of parts is copied, not shared)."""
    parts = [system_prompt] if system_prompt.strip() else []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "system":
            text = content_text(message["content"])
            if text.strip():
                parts.append(text)
        else:
            turns.append({"role": message["role"], "content": _copy(message["content"])})
    return "\n\n".join(parts), turns


def merge_consecutive(turns: Sequence[Message]) -> list[dict[str, Any]]:
    """Join consecutive turns of the same role (APIs that require alternation reject
    them): two texts separated by a blank line; when either is a list of parts, the
    part lists concatenated (a text beside a list becomes a text part)."""
    merged: list[dict[str, Any]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"] = _join(merged[-1]["content"], turn["content"])
        else:
            merged.append({"role": turn["role"], "content": _copy(turn["content"])})
    return merged


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[dict[str, Any]]:
    """OpenAI-style: the options' system prompt as the first system message."""
    result = [{"role": m["role"], "content": _copy(m["content"])} for m in messages]
    if system_prompt.strip():
        result.insert(0, {"role": "system", "content": system_prompt})
    return result


def _copy(content: Any) -> Any:
    return content if isinstance(content, str) else list(content)


def _join(first: Any, second: Any) -> Any:
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}{TEXT_SEPARATOR}{second}"
    return as_parts(first) + as_parts(second)
