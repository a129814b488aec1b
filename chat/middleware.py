"""Security headers the framework does not set on its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

# No inline script anywhere; the chat pages need no inline style either. Django admin
# still uses a few style attributes, so it alone may have inline styles.
_BASE_POLICY = (
    "default-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CSP = f"{_BASE_POLICY}; style-src 'self'"
CSP_ADMIN = f"{_BASE_POLICY}; style-src 'self' 'unsafe-inline'"


class SecurityHeadersMiddleware:
    """Adds Content-Security-Policy and Permissions-Policy to every response."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

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
