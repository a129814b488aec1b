"""Exporting a person's conversations: one as Markdown or JSON, or all of them (or any
selection) as a ZIP archive streamed while it is written.

The JSON document (``export_document``) is this app's own format, read back by
``transfer.formats.chat_ai``: ``{"format": "chat_ai.conversations", "version": 1,
"exported_at", "conversations": [...]}``, each conversation a row of
``chat.exports.conversations_export_rows`` (every branch, the branch shown, models,
token usage and cost, attachments named).

The archive (``conversations_zip_chunks``) holds:

- ``conversations.json``: the document above, each attachment with ``file``, its path
  in the archive;
- ``markdown/<title>-<id>.md``: each conversation for people (``chat.exports``);
- ``attachments/…``: the attached files themselves.

It is written to the response as it is made (ZIP entries with data descriptors, APPNOTE
6.3.3 section 4.3.9): conversations are read 50 at a time, files are copied a chunk at a
time, and the JSON is gathered in a temporary file that moves to disk past 8 MB, so a
large account never sits whole in memory.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import zipfile
from collections.abc import Generator, Iterator
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from chat.exports import conversations_export_rows, conversations_to_markdown
from chat.models import Attachment, Conversation
from chat.services.attachments import clean_file_name

from ..formats.chat_ai import FORMAT, VERSION

logger = logging.getLogger(__name__)

BATCH = 50
CHUNK_BYTES = 256 * 1024
SPOOL_BYTES = 8 * 1024 * 1024
JSON_NAME = "conversations.json"
# ZIP entries over this size need ZIP64 fields.
_ZIP64_FROM = 2**31 - 1


def conversations_of(owner: AbstractBaseUser) -> QuerySet[Conversation]:
    """Every conversation of ``owner``, newest first."""
    return Conversation.objects.filter(owner=owner).order_by("-updated_at", "-id")


def export_document(rows: list[dict[str, Any]], *, exported_at: datetime) -> dict[str, Any]:
    """The JSON document for ``rows`` (see the module's docstring)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": exported_at.isoformat(),
        "conversations": rows,
    }


def conversation_export_json(*, conversation: Conversation) -> str:
    """One conversation as this app's JSON document (attachments named, not included)."""
    rows = conversations_export_rows(Conversation.objects.filter(pk=conversation.pk))
    document = export_document(rows, exported_at=timezone.now())
    return json.dumps(document, ensure_ascii=False, indent=2)


def conversation_export_markdown(*, conversation: Conversation) -> str:
    """One conversation as Markdown (every branch, each version labelled)."""
    rows = conversations_export_rows(Conversation.objects.filter(pk=conversation.pk))
    return conversations_to_markdown(rows)


def export_file_name(title: str, *, extension: str, fallback: str = "conversation") -> str:
    """A safe file name for a download: the title as an ASCII slug (letters, digits,
    hyphens; at most 60 characters), or ``fallback`` when nothing is left, then
    ``.extension``."""
    slug = slugify(title)[:60].strip("-_") or fallback
    return f"{slug}.{extension}"


class _Sink(io.RawIOBase):
    """Where the ZIP is written: bytes pile up until the generator hands them on. Not
    seekable, so ``zipfile`` writes data descriptors instead of going back."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def conversations_zip_chunks(
    *, queryset: QuerySet[Conversation], exported_at: datetime | None = None
) -> Iterator[bytes]:
    """The ZIP archive of the conversations of ``queryset`` (in its order), as chunks
    of bytes to send as they come (see the module's docstring). Attached files are under
    ``attachments/<conversation id>/<message id>/<name>``; one missing from storage is
    listed with ``"file": null`` and logged."""
    for chunk in _zip_chunks(queryset=queryset, exported_at=exported_at or timezone.now()):
        if chunk:
            yield chunk


def _zip_chunks(*, queryset: QuerySet[Conversation], exported_at: datetime) -> Iterator[bytes]:
    ids = list(queryset.values_list("pk", flat=True))
    sink = _Sink()
    storage = Attachment._meta.get_field("file").storage
    with (
        tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as gathered,
        zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        head = json.dumps(export_document([], exported_at=exported_at), ensure_ascii=False)
        # '{"format": ..., "conversations": [' then each row, then ']}'.
        gathered.write(head.removesuffix("]}").encode())
        first = True
        used_names: set[str] = set()
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            place = {pk: i for i, pk in enumerate(batch)}
            rows = conversations_export_rows(Conversation.objects.filter(pk__in=batch))
            rows.sort(key=lambda row: place[row["id"]])
            for row in rows:
                for message in row["messages"]:
                    for attachment in message["attachments"]:
                        name = _unique(
                            f"attachments/{row['id']}/{message['id']}/{clean_file_name(attachment['name'])}",
                            used_names,
                        )
                        attachment["file"] = yield from _copy_file(
                            zf, sink, storage, path=attachment["path"], name=name
                        )
                stem = export_file_name(row["title"], extension="md").removesuffix(".md")
                name = _unique(f"markdown/{stem}-{row['id']}.md", used_names)
                zf.writestr(name, conversations_to_markdown([row]))
                row_json = json.dumps(row, ensure_ascii=False).encode()
                gathered.write((b"" if first else b",\n") + row_json)
                first = False
                yield sink.take()
        gathered.write(b"]}")
        size = gathered.tell()
        gathered.seek(0)
        info = zipfile.ZipInfo(JSON_NAME, date_time=timezone.localtime(exported_at).timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=size > _ZIP64_FROM) as target:
            while chunk := gathered.read(CHUNK_BYTES):
                target.write(chunk)
                yield sink.take()
    yield sink.take()


def _copy_file(
    zf: zipfile.ZipFile, sink: _Sink, storage: Any, *, path: str, name: str
) -> Generator[bytes, None, str | None]:
    """Copy the stored file ``path`` into the archive as ``name``: yields the bytes
    written so far, returns ``name``, or None when the file is missing."""
    try:
        source = storage.open(path, "rb")
    except (FileNotFoundError, OSError):
        logger.warning("export: the attachment file %s is missing from storage", path)
        return None
    with source, zf.open(name, "w") as target:  # files are far below ZIP64 sizes
        while chunk := source.read(CHUNK_BYTES):
            target.write(chunk)
            yield sink.take()
    return name


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name`` with a number before its extension when already used."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem}-{n}{dot}{ext}"
    used.add(candidate)
    return candidate


def conversations_zip_name(*, when: datetime | None = None) -> str:
    """The archive's file name: ``chat-ai-conversations-YYYY-MM-DD.zip``."""
    day = timezone.localdate(when or timezone.now())
    return f"chat-ai-conversations-{day.isoformat()}.zip"


def zip_to_file(*, queryset: QuerySet[Conversation], target: Any) -> int:
    """Write the archive of ``queryset`` to the binary file ``target``; returns its size
    in bytes (for the management command)."""
    size = 0
    for chunk in conversations_zip_chunks(queryset=queryset):
        target.write(chunk)
        size += len(chunk)
    return size
