"""The transfer pages: export one conversation (Markdown, JSON or ZIP) or all of them
(ZIP), and import a file with its progress and result. Everything is the signed-in
person's own: another person's conversation or import answers 404.

An upload reaches ``import_file`` in one of two ways. The page's script sends the file
as the raw request body (``X-File-Name`` holds its name, percent-encoded) with
``Accept: application/x-ndjson``: it shows the upload's progress, then the import's,
read from the NDJSON lines of the answer (``transfer.streaming``), and opens the result
page at the end. Without the script, the form posts it as multipart and the answer is
the result page (or the form again with what is wrong); the body of such a form is
limited to ``DATA_UPLOAD_MAX_MEMORY_SIZE`` by ``chat.middleware.Utf8FormBodyMiddleware``.
"""

from __future__ import annotations

import tempfile
from typing import IO
from urllib.parse import unquote

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from chat import selectors as chat_selectors

from .formats import FORMATS, empty_file_message
from .models import ImportBatch
from .services import export, importer, limits
from .streaming import aiterate, import_progress_lines

NDJSON = "application/x-ndjson"
# Room for the multipart framing around the file.
UPLOAD_OVERHEAD = 64 * 1024
CHUNK_BYTES = 256 * 1024
SPOOL_BYTES = 8 * 1024 * 1024
RECENT_IMPORTS = 10
# Conversations listed on a result page (the rest are counted).
RESULT_LIST = 200
EXPORT_FORMATS = ("md", "json", "zip")


def _download(response: HttpResponseBase, file_name: str) -> HttpResponseBase:
    response["Content-Disposition"] = content_disposition_header(True, file_name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def _zip_response(request: HttpRequest, chunks: object, file_name: str) -> HttpResponseBase:
    body = aiterate(chunks) if isinstance(request, ASGIRequest) else chunks  # type: ignore[arg-type]
    response = StreamingHttpResponse(body, content_type="application/zip")
    return _download(response, file_name)


def _page(
    request: HttpRequest, *, errors: list[str] | None = None, status: int = 200
) -> HttpResponse:
    recent = ImportBatch.objects.filter(owner=request.user)[:RECENT_IMPORTS]
    return render(
        request,
        "transfer/transfer.html",
        {
            "errors": errors or [],
            "recent": recent,
            "formats": [f.label for f in FORMATS],
            "max_bytes": limits.max_bytes(),
            "conversation_count": export.conversations_of(request.user).count(),
        },
        status=status,
    )


@require_safe
@login_required
def transfer_page(request: HttpRequest) -> HttpResponse:
    """Export all conversations, import a file, and the person's recent imports."""
    return _page(request)


@require_safe
@login_required
def export_all(request: HttpRequest) -> HttpResponseBase:
    """Every conversation of the person as a ZIP archive, streamed as it is written."""
    chunks = export.conversations_zip_chunks(queryset=export.conversations_of(request.user))
    return _zip_response(request, chunks, export.conversations_zip_name())


@require_safe
@login_required
def conversation_export(request: HttpRequest, pk: int) -> HttpResponseBase:
    """One conversation: ``?format=md`` (Markdown, the default), ``json`` (this app's
    JSON, attachments named) or ``zip`` (with its files). 404 when it is not the
    person's; 400 for another format."""
    conversation = chat_selectors.conversation_get_for_user(user=request.user, pk=pk)
    kind = request.GET.get("format", "md")
    if kind not in EXPORT_FORMATS:
        return HttpResponse(
            _("Unknown export format: choose md, json or zip."),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    if kind == "zip":
        chunks = export.conversations_zip_chunks(
            queryset=export.conversations_of(request.user).filter(pk=pk)
        )
        return _zip_response(
            request, chunks, export.export_file_name(conversation.title, extension="zip")
        )
    if kind == "json":
        body = export.conversation_export_json(conversation=conversation)
        content_type = "application/json; charset=utf-8"
    else:
        body = export.conversation_export_markdown(conversation=conversation)
        content_type = "text/markdown; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    return _download(response, export.export_file_name(conversation.title, extension=kind))


def _too_large() -> ValidationError:
    return ValidationError(
        _("The file is too large: an import can be up to %(limit)s.")
        % {"limit": filesizeformat(limits.max_bytes())},
        code="too_large",
    )


def _received_file(request: HttpRequest) -> tuple[IO[bytes], str]:
    """The uploaded file (seekable) and its name: the multipart field ``file``, or the
    raw body named by ``X-File-Name``. ValidationError when there is none, it is empty
    (0 bytes) or it is too large (the raw body is read no further than the limit)."""
    limit = limits.max_bytes()
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError(_("Choose a file to import."))
        if (upload.size or 0) > limit:
            raise _too_large()
        if not upload.size:
            raise ValidationError(empty_file_message(upload.name or "import"))
        return upload, upload.name or "import"
    given_name = unquote(request.headers.get("X-File-Name", ""))
    name = given_name or "import"
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # closed with the response
    received = 0
    while chunk := request.read(CHUNK_BYTES):
        received += len(chunk)
        if received > limit:
            spooled.close()
            raise _too_large()
        spooled.write(chunk)
    if received == 0:
        spooled.close()
        if given_name:  # a file was chosen, with nothing in it
            raise ValidationError(empty_file_message(given_name))
        raise ValidationError(_("Choose a file to import."))
    spooled.seek(0)
    return spooled, name  # type: ignore[return-value]


@require_POST
@login_required
def import_file(request: HttpRequest) -> HttpResponseBase:
    """Import the uploaded file for the person (see the module's docstring). With
    ``Accept: application/x-ndjson``: 200 and progress lines (413 or 400 JSON
    ``{"errors"}`` when the upload itself is refused). Otherwise: a redirect to the
    result page, or the page again with what is wrong (400; 413 when too large)."""
    streaming = NDJSON in request.headers.get("Accept", "")
    declared = request.META.get("CONTENT_LENGTH") or ""
    try:
        if declared.isdigit() and int(declared) > limits.max_bytes() + UPLOAD_OVERHEAD:
            raise _too_large()
        handle, name = _received_file(request)
    except ValidationError as e:
        status = 413 if getattr(e, "code", None) == "too_large" else 400
        if streaming:
            return JsonResponse({"errors": e.messages}, status=status)
        return _page(request, errors=e.messages, status=status)
    if streaming:
        steps = importer.conversations_import_steps(
            owner=request.user, handle=handle, file_name=name
        )
        lines = import_progress_lines(
            steps, result_url=lambda batch: reverse("transfer:import_result", args=[batch.pk])
        )
        body = aiterate(lines) if isinstance(request, ASGIRequest) else lines
        response = StreamingHttpResponse(body, content_type=NDJSON)
        response._resource_closers.append(handle.close)
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"
        return response
    try:
        batch = importer.conversations_import(owner=request.user, handle=handle, file_name=name)
    except ValidationError as e:
        return _page(request, errors=e.messages, status=400)
    finally:
        handle.close()
    return redirect("transfer:import_result", batch.pk)


@require_safe
@login_required
def import_result(request: HttpRequest, pk: int) -> HttpResponse:
    """What an import of the person did: counts, the conversations it created (links),
    those skipped as already imported, and what was left out. 404 for another person's."""
    batch = ImportBatch.objects.filter(owner=request.user, pk=pk).first()
    if batch is None:
        raise Http404("No such import")
    imported = (
        batch.conversations.select_related("conversation")
        .order_by("conversation__created_at", "id")
        .values_list("conversation_id", "conversation__title")
    )
    listed = list(imported[:RESULT_LIST])
    still_there = set(
        chat_selectors.conversation_list_for_user(user=request.user)
        .filter(pk__in=[s.get("conversation_id") for s in batch.skipped[:RESULT_LIST]])
        .values_list("pk", flat=True)
    )
    skipped = []
    for entry in batch.skipped[:RESULT_LIST]:
        pk_then = entry.get("conversation_id")
        skipped.append(
            {"title": entry.get("title", ""), "id": pk_then if pk_then in still_there else None}
        )
    return render(
        request,
        "transfer/result.html",
        {
            "batch": batch,
            "imported": listed,
            "imported_more": max(0, batch.conversations.count() - len(listed)),
            "skipped": skipped,
            "skipped_more": max(0, len(batch.skipped) - len(skipped)),
        },
    )
