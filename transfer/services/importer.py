"""Importing conversations from a file: this app's export, ChatGPT's or Claude's data
export, or an OpenAI-style list of messages (``transfer.formats``).

An import runs in three stages, reported as it goes (``ImportProgress``) so a page can
show a progress bar:

1. reading: the file is read and every conversation checked (``read_source``); any
   problem refuses the whole file, each message naming the file, the conversation and
   what is wrong. The limits of ``transfer.services.limits`` apply.
2. preparing: each conversation's source key is computed and its replies' Markdown
   rendered, outside any transaction.
3. saving: everything is written in ONE transaction, ``SAVE_BATCH`` conversations at a
   time (their messages in one insert per depth of the trees): any failure (the
   database, a stopped request) leaves nothing behind, attached files included. A
   conversation whose source key the person already has (imported before, or twice in
   the file) is skipped and listed in the result. On SQLite the transaction holds the
   database's write lock: other writes wait for it (about half a millisecond per
   message; 20,000 messages take some 10 s here).

Attached files go through the chat's own checks (``attachment_create``: kind, content,
size, the person's quota). A file refused there, or only named in the source (not
included in it), is left out of its message, and the result says which and why: a
conversation is never refused for one of its files.

Imported replies keep their token counts but make no usage records: nothing was spent
on this server.

This app's own export also brings back folders, pins and the archive: a conversation
goes in the importing person's folder of the same name (letter case ignored), which is
used as it is when they have one, else made with the exported system prompt and model
(without the model when they may not use it, and the result says so); pinned and
archived conversations stay so, with their times. Other formats have none of these.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.db.models import Model
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat.markdown import render_markdown
from chat.models import Attachment, Conversation, Folder, Message
from chat.services.attachments import attachment_create, clean_file_name, version_names
from chat.services.folders import folder_create

from ..formats import SourceFile, read_source
from ..formats.base import ASSISTANT, Problems, SourceConversation, SourceFolder, SourceMessage
from ..models import ImportBatch, ImportedConversation
from . import limits

logger = logging.getLogger(__name__)

READING = "reading"
PREPARING = "preparing"
SAVING = "saving"
# Notes kept with an import (the rest are counted).
MAX_NOTES = 200
# Source keys looked up per query.
KEY_BATCH = 500
# Conversations saved together (and between two progress reports while saving).
SAVE_BATCH = 50


@dataclass(frozen=True)
class ImportProgress:
    """Where an import stands: ``stage`` (reading, preparing, saving) and how many of
    ``total`` conversations are done in it (0 of 0 while reading)."""

    stage: str
    done: int
    total: int


@dataclass
class _Prepared:
    source: SourceConversation
    key: str
    html: dict[str, str] = field(default_factory=dict)


def source_key(conversation: SourceConversation, *, format_name: str) -> str:
    """What makes two imported conversations the same: a SHA-256 (hex) of the format,
    the id the source gave it, and every message's id, parent, role, text and time (not
    the title: a conversation renamed since is still the same one)."""
    content = [
        format_name,
        conversation.external_id,
        [
            [m.key, m.parent, m.role, m.text, m.created_at.isoformat() if m.created_at else None]
            for m in conversation.messages
        ],
    ]
    encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def check_size(*, size: int, file_name: str) -> None:
    """ValidationError when a file of ``size`` bytes is over ``TRANSFER_IMPORT_MAX_BYTES``
    or empty."""
    limit = limits.max_bytes()
    if size > limit:
        raise ValidationError(
            _("“%(file)s” is too large (%(size)s): an import can be up to %(limit)s.")
            % {"file": file_name, "size": filesizeformat(size), "limit": filesizeformat(limit)}
        )
    if size == 0:
        raise ValidationError(_("“%(file)s” is empty.") % {"file": file_name})


def conversations_import_steps(
    *, owner: AbstractBaseUser, handle: IO[bytes], file_name: str
) -> Generator[ImportProgress, None, ImportBatch]:
    """Import the file ``handle`` (seekable, binary) for ``owner``, yielding progress;
    the generator's return value is the saved ``ImportBatch``.

    Raises ValidationError (nothing saved) when the file is too large or empty, in no
    known format, not valid, or over a limit; each message names the file and, for a
    problem in one conversation, its position and title. Closing the generator before
    it ends rolls back everything it saved."""
    file_name = clean_file_name(file_name or "import.json")
    handle.seek(0, 2)
    check_size(size=handle.tell(), file_name=file_name)
    handle.seek(0)
    yield ImportProgress(READING, 0, 0)
    source = read_source(handle, file_name=file_name, unpacked_budget=limits.max_unpacked_bytes())
    _check_limits(source, file_name=file_name)
    _leave_out_empty(source, file_name=file_name)

    total = len(source.conversations)
    prepared: list[_Prepared] = []
    for done, conversation in enumerate(source.conversations, start=1):
        prepared.append(_prepare(conversation, format_name=source.format.name))
        yield ImportProgress(PREPARING, done, total)

    stored: list[str] = []  # files written to storage, removed if the transaction fails
    try:
        with transaction.atomic():
            batch = yield from _save_all(
                owner=owner, source=source, prepared=prepared, file_name=file_name, stored=stored
            )
    except BaseException:
        _remove_files(stored)
        raise
    return batch


def conversations_import(
    *, owner: AbstractBaseUser, handle: IO[bytes], file_name: str
) -> ImportBatch:
    """``conversations_import_steps`` run to its end, without the progress."""
    steps = conversations_import_steps(owner=owner, handle=handle, file_name=file_name)
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value


def _check_limits(source: SourceFile, *, file_name: str) -> None:
    count = len(source.conversations)
    limit = limits.max_conversations()
    if count > limit:
        raise ValidationError(
            _(
                "“%(file)s” has %(count)s conversations: one import can have up to "
                "%(limit)s. Split the file and import the parts one after another."
            )
            % {"file": file_name, "count": f"{count:,}", "limit": f"{limit:,}"}
        )
    messages = sum(len(c.messages) for c in source.conversations)
    limit = limits.max_messages()
    if messages > limit:
        raise ValidationError(
            _(
                "“%(file)s” has %(count)s messages: one import can have up to %(limit)s. "
                "Split the file and import the parts one after another."
            )
            % {"file": file_name, "count": f"{messages:,}", "limit": f"{limit:,}"}
        )


def _leave_out_empty(source: SourceFile, *, file_name: str) -> None:
    """Conversations with no message left (only system or tool messages, or none) are
    not imported, and a note says so; ValidationError when no conversation is left."""
    problems = Problems(file_name)
    kept = []
    for conversation in source.conversations:
        if conversation.messages:
            kept.append(conversation)
        else:
            problems.note(
                _("it has no messages to import and was left out."),
                conversation.index,
                conversation.title,
            )
    if not kept:
        raise ValidationError(
            _("“%(file)s” has no conversation with messages to import.") % {"file": file_name}
        )
    source.conversations = kept
    source.notes.extend(problems.notes)


def _prepare(conversation: SourceConversation, *, format_name: str) -> _Prepared:
    """The conversation's source key and its replies' HTML (rendered now, outside the
    transaction)."""
    prepared = _Prepared(conversation, source_key(conversation, format_name=format_name))
    for message in conversation.messages:
        if message.role == ASSISTANT and message.text:
            prepared.html[message.key] = render_markdown(message.text)
    return prepared


def _save_all(
    *,
    owner: AbstractBaseUser,
    source: SourceFile,
    prepared: list[_Prepared],
    file_name: str,
    stored: list[str],
) -> Generator[ImportProgress, None, ImportBatch]:
    """Write every conversation not already imported (inside the caller's transaction),
    ``SAVE_BATCH`` conversations at a time."""
    keys = [p.key for p in prepared]
    known: dict[str, int] = {}
    for start in range(0, len(keys), KEY_BATCH):
        known.update(
            ImportedConversation.objects.filter(
                owner=owner, source_key__in=keys[start : start + KEY_BATCH]
            ).values_list("source_key", "conversation_id")
        )
    batch = ImportBatch.objects.create(
        owner=owner, file_name=file_name[:255], source_format=source.format.name
    )
    notes = list(source.notes)
    skipped: list[tuple[str, str]] = []  # (title, source key)
    total = len(prepared)
    done = reported = 0
    chunk: list[_Prepared] = []
    common: dict[str, Any] = {
        "owner": owner,
        "batch": batch,
        "file_name": file_name,
        "notes": notes,
        "stored": stored,
        "format_name": source.format.name,
        "known": known,
        "folders": {},
    }
    for item in prepared:
        if item.key in known:
            skipped.append((item.source.title, item.key))
            done += 1
            continue
        known[item.key] = 0  # twice in this file: the second is skipped
        chunk.append(item)
        if len(chunk) == SAVE_BATCH:
            _save_chunk(chunk=chunk, **common)
            done += len(chunk)
            chunk = []
            reported = done
            yield ImportProgress(SAVING, done, total)
    if chunk:
        _save_chunk(chunk=chunk, **common)
        done += len(chunk)
    if reported != done:
        yield ImportProgress(SAVING, done, total)
    if len(notes) > MAX_NOTES:
        more = len(notes) - MAX_NOTES
        notes = [
            *notes[:MAX_NOTES],
            ngettext("… and %(count)d more note.", "… and %(count)d more notes.", more)
            % {"count": more},
        ]
    batch.skipped = [
        {"title": title, "conversation_id": known.get(key) or None} for title, key in skipped
    ]
    batch.notes = notes
    batch.save()
    return batch


def _insert(model: type[Model], objects: list[Any]) -> None:
    """Insert ``objects``, setting their ids (one query per 500 on databases that return
    the ids of a bulk insert, as SQLite 3.35+ and PostgreSQL do; one each elsewhere)."""
    if connection.features.can_return_rows_from_bulk_insert:
        model._default_manager.bulk_create(objects, batch_size=500)
        return
    for obj in objects:
        if isinstance(obj, Message):
            obj.save(force_insert=True, root=True)  # its parent is set, or it has none
        else:
            obj.save(force_insert=True)


def _save_chunk(
    *,
    owner: AbstractBaseUser,
    chunk: list[_Prepared],
    batch: ImportBatch,
    file_name: str,
    notes: list[str],
    stored: list[str],
    format_name: str,
    known: dict[str, int],
    folders: dict[str, Folder | None],
) -> None:
    """Create the conversations of ``chunk`` with their messages and files. Messages go
    in one insert per depth of the trees (so each knows its parent's id when inserted),
    each depth in the order read: a message's versions get growing ids, the order the
    app shows them in. ``folders`` (folder name key -> the owner's folder, None when it
    could not be made) is filled as folders are found or made."""
    now = timezone.now()
    _find_folders(owner=owner, chunk=chunk, folders=folders, file_name=file_name, notes=notes)
    conversations = []
    for item in chunk:
        source = item.source
        times = [m.created_at for m in source.messages if m.created_at]
        created = source.created_at or (min(times) if times else now)
        conversations.append(
            Conversation(
                owner=owner,
                title=source.title[:200],
                provider=source.provider[:64],
                model=source.model[:200],
                system_prompt=source.system_prompt,
                temperature=source.temperature,
                max_tokens=source.max_tokens,
                reasoning_effort=source.reasoning_effort,
                thinking_budget=source.thinking_budget,
                created_at=created,
                updated_at=source.updated_at or (max(times) if times else created),
                folder=folders[Folder.key_for(source.folder.name)] if source.folder else None,
                pinned_at=source.pinned_at,
                archived_at=source.archived_at,
            )
        )
    _insert(Conversation, conversations)

    # (position in chunk, message read, row), grouped by depth in the tree.
    levels: dict[int, list[tuple[int, SourceMessage, Message]]] = {}
    rows: list[list[tuple[SourceMessage, Message]]] = []
    for n, (item, conversation) in enumerate(zip(chunk, conversations, strict=True)):
        depth: dict[str, int] = {}
        when = conversation.created_at
        own: list[tuple[SourceMessage, Message]] = []
        for m in item.source.messages:
            depth[m.key] = 0 if m.parent is None else depth[m.parent] + 1
            when = m.created_at or when
            row = _message_row(m, conversation=conversation, html=item.html, when=when)
            levels.setdefault(depth[m.key], []).append((n, m, row))
            own.append((m, row))
        rows.append(own)
    ids: list[dict[str, int]] = [{} for _ in chunk]
    for level in sorted(levels):
        placed = levels[level]
        for n, m, row in placed:
            if m.parent is not None:
                row.parent_id = ids[n][m.parent]
        _insert(Message, [row for _n, _m, row in placed])
        for n, m, row in placed:
            ids[n][m.key] = row.pk

    with_leaf = []
    for n, (item, conversation) in enumerate(zip(chunk, conversations, strict=True)):
        if item.source.current_leaf is not None:
            conversation.current_leaf_id = ids[n][item.source.current_leaf]
            with_leaf.append(conversation)
    Conversation.objects.bulk_update(with_leaf, ["current_leaf"], batch_size=200)

    imported = []
    for item, conversation, own in zip(chunk, conversations, rows, strict=True):
        files = _save_files(
            owner=owner, item=item, rows=own, file_name=file_name, notes=notes, stored=stored
        )
        imported.append(
            ImportedConversation(
                owner=owner,
                conversation=conversation,
                batch=batch,
                source_format=format_name,
                source_key=item.key,
                external_id=item.source.external_id[:200],
            )
        )
        known[item.key] = conversation.pk
        batch.conversations_imported += 1
        batch.messages_imported += len(own)
        batch.attachments_imported += files
    ImportedConversation.objects.bulk_create(imported, batch_size=500)


def _find_folders(
    *,
    owner: AbstractBaseUser,
    chunk: list[_Prepared],
    folders: dict[str, Folder | None],
    file_name: str,
    notes: list[str],
) -> None:
    """Put in ``folders`` (name key -> folder) the folder of each conversation of
    ``chunk`` that names one: ``owner``'s folder of that name, as it is, when they have
    one (one query for the chunk); else a new one with the exported system prompt and
    model. When the model is refused (not allowed, unknown) the folder is made without
    it; when the folder cannot be made at all (too many folders) the conversation is
    imported outside any folder (None). Both are noted, naming the conversation."""
    wanted = {
        Folder.key_for(item.source.folder.name): (item.source.folder, item.source)
        for item in chunk
        if item.source.folder is not None
    }
    missing = [key for key in wanted if key not in folders]
    if not missing:
        return
    folders.update(
        (folder.name_key, folder)
        for folder in Folder.objects.filter(owner=owner, name_key__in=missing)
    )
    problems = Problems(file_name)
    for key in missing:
        if key not in folders:
            folder, source = wanted[key]
            folders[key] = _folder_make(
                owner=owner, wanted=folder, source=source, problems=problems
            )
    notes.extend(problems.notes)


def _folder_make(
    *, owner: AbstractBaseUser, wanted: SourceFolder, source: SourceConversation, problems: Problems
) -> Folder | None:
    """A new folder of ``owner``'s as ``wanted`` describes it (the folder of ``source``,
    see ``_find_folders``); None when it cannot be made. Problems are noted."""
    fields = {"owner": owner, "name": wanted.name, "system_prompt": wanted.system_prompt}
    try:
        return folder_create(**fields, provider=wanted.provider, model=wanted.model)
    except ValidationError as e:
        refused = " ".join(e.messages)
    if wanted.provider or wanted.model:
        try:
            folder = folder_create(**fields)
        except ValidationError as e:
            refused = " ".join(e.messages)
        else:
            problems.note(
                _("its folder “%(folder)s” was made without its model %(model)s. %(reason)s")
                % {
                    "folder": wanted.name,
                    "model": wanted.model or wanted.provider,
                    "reason": refused,
                },
                source.index,
                source.title,
            )
            return folder
    problems.note(
        _(
            "it was imported outside any folder: the folder “%(folder)s” could not be "
            "made. %(reason)s"
        )
        % {"folder": wanted.name, "reason": refused},
        source.index,
        source.title,
    )
    return None


def _message_row(
    m: SourceMessage, *, conversation: Conversation, html: dict[str, str], when: dt.datetime
) -> Message:
    return Message(
        conversation=conversation,
        role=m.role,
        content=m.text,
        content_html=html.get(m.key, ""),
        provider=m.provider[:64],
        model=m.model[:200],
        status=m.status,
        finish_reason=m.finish_reason,
        reasoning=m.reasoning,
        error=m.error,
        input_tokens=m.input_tokens,
        output_tokens=m.output_tokens,
        reasoning_tokens=m.reasoning_tokens,
        time_to_first_token_ms=m.time_to_first_token_ms,
        duration_ms=m.duration_ms,
        reasoning_ms=m.reasoning_ms,
        created_at=when,
    )


def _save_files(
    *,
    owner: AbstractBaseUser,
    item: _Prepared,
    rows: list[tuple[SourceMessage, Message]],
    file_name: str,
    notes: list[str],
    stored: list[str],
) -> int:
    """Store the files of one conversation's messages through the chat's checks; those
    refused or not included are noted. Returns how many were stored."""
    source = item.source
    files = 0
    problems = Problems(file_name)
    missing: list[str] = []
    for m, row in rows:
        for position, attachment in enumerate(m.attachments):
            if attachment.data is None:
                missing.append(attachment.name)
                continue
            upload = SimpleUploadedFile(attachment.name, attachment.data)
            try:
                saved = attachment_create(owner=owner, upload=upload)
            except ValidationError as e:
                problems.note(
                    _("a file was left out: %(reason)s") % {"reason": " ".join(e.messages)},
                    source.index,
                    source.title,
                )
                continue
            stored.append(saved.file.name)
            if saved.kind == Attachment.Kind.IMAGE:
                stored.extend(version_names(saved.file.name))
            saved.message_id = row.pk
            saved.position = position
            saved.created_at = row.created_at
            saved.save(update_fields=["message", "position", "created_at"])
            files += 1
    if missing:
        problems.note(
            ngettext(
                "%(count)d file was only named in the source, not included, and was left "
                "out: %(names)s.",
                "%(count)d files were only named in the source, not included, and were left "
                "out: %(names)s.",
                len(missing),
            )
            % {"count": len(missing), "names": ", ".join(f"“{n}”" for n in missing[:10])},
            source.index,
            source.title,
        )
    notes.extend(problems.notes)
    return files


def _remove_files(names: list[str]) -> None:
    """Delete files stored by an import whose transaction did not commit."""
    if not names:
        return
    storage = Attachment._meta.get_field("file").storage
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.warning("import: the file %s could not be removed", name, exc_info=True)
