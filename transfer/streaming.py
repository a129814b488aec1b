"""Streaming the transfer app's long answers: the export archive and the import's
progress lines.

Under ASGI Django reads a synchronous iterator whole into memory before sending any of
it, so there the work is driven through ``aiterate``: each step runs in the request's
own worker thread (``sync_to_async(thread_sensitive=True)``), the same thread every
time, so one database transaction can span the steps of an import. Under WSGI (and
Django's test client) the synchronous iterator is sent as it is.

Import progress is NDJSON (https://github.com/ndjson/ndjson-spec): one JSON object per
line, ``{"stage", "done", "total"}`` as it goes, then ``{"finished": true,
"result_url", "conversations", "messages", "skipped"}`` or ``{"errors": [...]}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .models import ImportBatch
from .services.importer import ImportProgress

logger = logging.getLogger(__name__)

# Seconds between two progress lines (the first and the last of a stage always go).
PROGRESS_INTERVAL = 0.1
_END = object()


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode() + b"\n"


def import_progress_lines(
    steps: Generator[ImportProgress, None, ImportBatch],
    *,
    result_url: Callable[[ImportBatch], str],
) -> Iterator[bytes]:
    """Run the import ``steps``, as NDJSON lines (see the module's docstring). A
    refusal gives ``{"errors": [its messages]}``; an unexpected failure is logged and
    gives one plain sentence. Closing this iterator early closes ``steps`` (and so rolls
    the import back)."""
    last = 0.0
    stage = ""
    try:
        while True:
            try:
                progress = next(steps)
            except StopIteration as finished:
                batch: ImportBatch = finished.value
                break
            now = time.monotonic()
            if (
                progress.stage != stage
                or progress.done == progress.total
                or now - last >= PROGRESS_INTERVAL
            ):
                stage, last = progress.stage, now
                yield _line(
                    {"stage": progress.stage, "done": progress.done, "total": progress.total}
                )
    except ValidationError as e:
        yield _line({"errors": e.messages})
        return
    except Exception:
        logger.exception("import failed")
        yield _line(
            {"errors": [_("The import failed on the server: nothing was imported. Try again.")]}
        )
        return
    finally:
        steps.close()
    yield _line(
        {
            "finished": True,
            "result_url": result_url(batch),
            "conversations": batch.conversations_imported,
            "messages": batch.messages_imported,
            "skipped": len(batch.skipped),
        }
    )


def _next(iterator: Iterator[bytes]) -> Any:
    return next(iterator, _END)


def _close(iterator: Iterator[bytes]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def aiterate(iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``iterator`` as an asynchronous iterator whose every step (and its closing) runs
    in the request's one worker thread."""
    step = sync_to_async(_next, thread_sensitive=True)
    try:
        while (chunk := await step(iterator)) is not _END:
            yield chunk
    finally:
        await sync_to_async(_close, thread_sensitive=True)(iterator)
