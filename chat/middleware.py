"""Middleware of the whole site: security headers the framework does not set on its own,
and the refusal of form bodies that are not valid text."""

from __future__ import annotations

import base64
import binascii
import codecs
import io
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.multipartparser import (
    FIELD,
    ChunkIter,
    LazyStream,
    MultiPartParserError,
    Parser,
    exhaust,
)
from django.urls import reverse
from django.utils.translation import gettext as _

# No inline script anywhere; the chat pages need no inline style either. Django admin
# still uses a few style attributes, so it alone may have inline styles.
_BASE_POLICY = (
    "default-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CSP = f"{_BASE_POLICY}; style-src 'self'"
CSP_ADMIN = f"{_BASE_POLICY}; style-src 'self' 'unsafe-inline'"


class _SyncAndAsync:
    """A middleware that runs in either mode, without a thread hop: it becomes a
    coroutine function when the next handler is one (Django's documented pattern)."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)


class SecurityHeadersMiddleware(_SyncAndAsync):
    """Adds Content-Security-Policy and Permissions-Policy to every response."""

    def _decorate(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        policy = CSP_ADMIN if request.path.startswith("/admin/") else CSP
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        return response

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._decorate(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)  # type: ignore[misc]
        return self._decorate(request, response)


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _request_charset(request: HttpRequest) -> str:
    """The charset Django decodes a multipart form with: the Content-Type's, when Python
    knows it, else DEFAULT_CHARSET (UTF-8). (An urlencoded body is always UTF-8: Django
    refuses one that declares another charset.)"""
    charset = request.content_params.get("charset", "") if request.content_params else ""
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = ""
    return charset or request.encoding or "utf-8"


def _is_text(data: bytes, charset: str) -> bool:
    try:
        data.decode(charset)
    except UnicodeDecodeError:
        return False
    return True


def _urlencoded_is_text(body: bytes) -> bool:
    """Whether every name and value of an application/x-www-form-urlencoded body
    (WHATWG URL standard, "application/x-www-form-urlencoded parsing") is UTF-8. The
    separators are ASCII, so the percent-decoded body as a whole decodes exactly when
    each name and value does."""
    return _is_text(unquote_to_bytes(body), "utf-8")


def _multipart_is_text(body: bytes, boundary: bytes, charset: str) -> bool:
    """Whether every field (a part without a file name) of a multipart/form-data body
    (RFC 7578) decodes in ``charset``; files are not looked at. The parts are split by
    Django's own multipart parser, so the check sees the fields Django will."""
    stream = LazyStream(ChunkIter(io.BytesIO(body), 64 * 1024))
    for item_type, meta_data, field_stream in Parser(stream, boundary):
        if item_type != FIELD:
            exhaust(field_stream)
            continue
        data = field_stream.read()
        encoding = meta_data.get("content-transfer-encoding")
        if encoding is not None and encoding[0].strip() == "base64":
            try:
                data = base64.b64decode(data)
            except binascii.Error:
                pass  # Django keeps such a field's raw bytes: check those
        if not _is_text(data, charset):
            return False
    return True


class Utf8FormBodyMiddleware(_SyncAndAsync):
    """Refuses a form body that is not valid text, before anything decodes it.

    Django decodes form fields with ``errors="replace"``: a message sent as
    ``content=%FF%FE`` would be saved as U+FFFD characters, titled so, and sent to the
    model. Here, for every request with an application/x-www-form-urlencoded or
    multipart/form-data body (every form of the app, the admin's and the sign-in's
    included), the raw body is checked once: any field or name that is not valid UTF-8
    (or, for multipart, in the charset the request declares) gets HTTP 400 "The request
    is not valid UTF-8 text." and reaches no view, so nothing is changed.

    Checking the raw body in one place keeps every form covered, present and future,
    without each form (or the admin's) having to remember to. It reads the body into
    memory, which Django does for a form anyway; a body over DATA_UPLOAD_MAX_MEMORY_SIZE
    is refused with 413 (multipart included: no form of the app takes file uploads; a
    form that does will need this check to stream instead).
    """

    @staticmethod
    def _refusal(request: HttpRequest, message: str, status: int) -> HttpResponse:
        if request.headers.get("X-Requested-With") or not request.accepts("text/html"):
            return JsonResponse({"error": message}, status=status)
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        """None when the body may go on; the refusal otherwise."""
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return None
        if request.content_type not in _FORM_TYPES:
            return None
        if request.content_type == "multipart/form-data" and request.path_info in (
            reverse("chat:attachments"),
            reverse("transfer:import"),
        ):
            # The attachment upload (chat.attachment_views) and the import of an export
            # (transfer.views) take one file, which Django streams to a temporary file;
            # their sizes are limited there. Read into memory here, any photo or export
            # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) would be refused with 413.
            return None
        try:
            body = request.body
        except RequestDataTooBig:
            return self._refusal(request, _("The request is too large."), 413)
        if request.content_type == "multipart/form-data":
            try:
                boundary = request.content_params["boundary"].encode("ascii")
                valid = _multipart_is_text(body, boundary, _request_charset(request))
            except (KeyError, UnicodeEncodeError, MultiPartParserError):
                valid = True  # malformed: Django's own parser refuses it with 400
        else:
            valid = _urlencoded_is_text(body)
        if valid:
            return None
        return self._refusal(request, _("The request is not valid UTF-8 text."), 400)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._check(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        refusal = self._check(request)
        if refusal is not None:
            return refusal
        return await self.get_response(request)  # type: ignore[misc]
