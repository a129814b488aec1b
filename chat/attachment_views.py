"""Attachments over HTTP: upload (``POST /attachments/``), fetch
(``GET /attachments/<id>/``) and remove an unsent one (``DELETE /attachments/<id>/`` or
``POST /attachments/<id>/delete/``). The checks and storage live in
``chat.services.attachments``.

``GET /attachments/<id>/?size=thumb`` gives an image's thumbnail instead (WebP, at most
448 px on its long side, made at upload or on first request): what the thread shows; the
link opens the original. It never changes, so browsers keep it for a year.

Only the owner, and staff, can fetch a file; anyone else gets 404, as for a file that
does not exist. A file is served with the content type found when it was checked,
``X-Content-Type-Options: nosniff`` and ``Content-Security-Policy: default-src 'none'``,
so nothing uploaded can ever run script in this site's origin; text files are
downloads, images and PDFs open in the browser.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from . import ratelimit
from .models import Attachment
from .services import attachments as attachment_service
from .services.persistence import connection_release

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
# Room for the multipart framing around the file (boundaries, headers, the file name).
UPLOAD_OVERHEAD = 64 * 1024
# The file is data, never a page: no script, style, frame or plugin of its own.
FILE_CSP = "default-src 'none'"
# A text file is a download; should a browser show it anyway, it is a sandboxed page.
TEXT_FILE_CSP = "default-src 'none'; sandbox"
# ``?size=`` of the thumbnail; a thumbnail never changes (nor does its URL's file).
THUMB_SIZE = "thumb"
THUMB_CACHE_CONTROL = "private, max-age=31536000, immutable"


def attachment_json(attachment: Attachment) -> dict[str, Any]:
    """What the page knows of an attachment: ``{id, name, kind, size (bytes),
    content_type, url}``, plus ``thumb_url``, ``width`` and ``height`` (pixels) for an
    image and ``page_count`` for a PDF."""
    url = reverse("chat:attachment", args=[attachment.pk])
    data: dict[str, Any] = {
        "id": attachment.pk,
        "name": attachment.name,
        "kind": attachment.kind,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "url": url,
    }
    if attachment.kind == Attachment.Kind.IMAGE:
        data.update(
            thumb_url=f"{url}?size={THUMB_SIZE}", width=attachment.width, height=attachment.height
        )
    elif attachment.kind == Attachment.Kind.PDF:
        data["page_count"] = attachment.page_count
    return data


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_POST
async def attachment_upload(request: HttpRequest) -> HttpResponseBase:
    """Multipart field ``file``: checked and stored for the signed-in person, not yet on a
    message. 201 with ``attachment_json``; 400 ``{"error"}`` when refused (nothing
    stored); 403 JSON when not signed in; 429 when uploading too fast."""

    def upload() -> HttpResponseBase:
        # The session, the user, the multipart body and the checks (Pillow, pypdf) all in
        # one worker thread: a large PDF never holds up Django's one sync thread.
        user = request.user
        if not user.is_authenticated:
            return _error(_("Sign in to attach files."), 403)
        verdict = ratelimit.hit(
            "attachment",
            str(user.pk),
            limit=settings.CHAT_ATTACHMENT_RATE_LIMIT,
            window=settings.CHAT_RATE_LIMIT_WINDOW,
        )
        if not verdict.allowed:
            limited = _error(
                ngettext(
                    "You are attaching files too fast. Try again in %(seconds)d second.",
                    "You are attaching files too fast. Try again in %(seconds)d seconds.",
                    verdict.retry_after,
                )
                % {"seconds": verdict.retry_after},
                429,
            )
            limited["Retry-After"] = str(verdict.retry_after)
            return limited
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > attachment_service.max_bytes() + UPLOAD_OVERHEAD:
            return _error(
                _("The file is too large: files can be up to %(limit)s.")
                % {"limit": filesizeformat(attachment_service.max_bytes())},
                413,
            )
        files = request.FILES.getlist("file")
        if len(files) != 1:
            return _error(_("Send one file, in the form field “file”."), 400)
        try:
            attachment = attachment_service.attachment_create(owner=user, upload=files[0])
        except ValidationError as e:
            return _error(" ".join(e.messages), 400)
        return JsonResponse(attachment_json(attachment), status=201)

    def upload_then_release() -> HttpResponseBase:
        try:
            return upload()
        finally:
            # A worker thread's connection goes back to the pool (PostgreSQL): the
            # thread may not run Django code again for a long time.
            connection_release()

    return await sync_to_async(upload_then_release, thread_sensitive=False)()


def _attachment_for(request: HttpRequest, pk: int) -> Attachment:
    """The attachment ``pk`` if the signed-in person owns it or is staff; Http404
    otherwise (signed out included: nothing tells whether it exists)."""
    user = request.user
    if not user.is_authenticated:
        raise Http404("No such file")
    rows = Attachment.objects.filter(pk=pk)
    if not user.is_staff:
        rows = rows.filter(owner=user)
    attachment = rows.first()
    if attachment is None:
        raise Http404("No such file")
    return attachment


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    """The file, read in a worker thread a chunk at a time (an ASGI server gets an
    asynchronous iterator: Django would read a synchronous one whole into memory)."""
    read = sync_to_async(handle.read, thread_sensitive=False)
    while chunk := await read(CHUNK_BYTES):
        yield chunk


def _file_response(request: HttpRequest, attachment: Attachment) -> HttpResponseBase:
    try:
        handle = attachment.file.open("rb")
    except (FileNotFoundError, OSError):
        logger.warning("attachment %s: its file is missing from storage", attachment.pk)
        raise Http404("No such file") from None
    is_text = attachment.kind == Attachment.Kind.TEXT
    content_type = attachment.content_type
    if is_text:
        content_type = f"{content_type}; charset=utf-8"
    response: StreamingHttpResponse
    if isinstance(request, ASGIRequest):
        response = StreamingHttpResponse(_chunks(handle), content_type=content_type)
        response._resource_closers.append(handle.close)
        response["Content-Length"] = str(attachment.size)
    else:
        response = FileResponse(handle, content_type=content_type)
    _safe_headers(response, name=attachment.name, download=is_text)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _safe_headers(response: HttpResponseBase, *, name: str, download: bool) -> None:
    """The headers every file is served with: its name (a download or inline), no type
    sniffing, a policy under which it can run nothing, same-origin use only."""
    disposition = content_disposition_header(download, name)
    if disposition:
        response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = TEXT_FILE_CSP if download else FILE_CSP
    response["Cross-Origin-Resource-Policy"] = "same-origin"


def _thumbnail_response(attachment: Attachment) -> HttpResponseBase | None:
    """The image's thumbnail with the same safe headers and a year's caching; None when
    there is none (not an image, or it could not be made: the original is served)."""
    thumbnail = attachment_service.attachment_thumbnail(attachment=attachment)
    if thumbnail is None:
        return None
    content_type, data = thumbnail
    response = HttpResponse(data, content_type=content_type)
    stem = attachment.name.rsplit(".", 1)[0] if "." in attachment.name else attachment.name
    _safe_headers(response, name=f"{stem}.webp", download=False)
    response["Cache-Control"] = THUMB_CACHE_CONTROL
    return response


@require_http_methods(["GET", "HEAD", "DELETE"])
def attachment_detail(request: HttpRequest, pk: int) -> HttpResponseBase:
    """GET/HEAD: the file (owner or staff; 404 for anyone else); with ``?size=thumb`` an
    image's thumbnail (a file of another kind: the file itself; another size: 400).
    DELETE: remove the owner's attachment not yet sent (204; 404 if not theirs; 400 if
    already sent)."""
    if request.method == "DELETE":
        return _delete(request, pk)
    size = request.GET.get("size")
    attachment = _attachment_for(request, pk)
    if size is not None:
        if size != THUMB_SIZE:
            return _error(_("Unknown size: the only one is “thumb”."), 400)
        thumbnail = _thumbnail_response(attachment)
        if thumbnail is not None:
            return thumbnail
    return _file_response(request, attachment)


@require_POST
def attachment_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The same as ``DELETE /attachments/<id>/``, for clients that only POST."""
    return _delete(request, pk)


def _delete(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return _error(_("Sign in to remove files."), 403)
    attachment = Attachment.objects.filter(pk=pk, owner=user).first()
    if attachment is None:
        raise Http404("No such file")
    if attachment.message_id is not None:
        return _error(
            _("This file was sent with a message: delete the conversation to remove it."), 400
        )
    attachment_service.attachment_delete_unsent(owner=user, attachment_id=pk)
    return HttpResponse(status=204)
