"""The language of the pages: the browser's by default, a person's choice once made.

Which language a page is in (the first that applies):

1. The language cookie (``settings.LANGUAGE_COOKIE_NAME``), set by the switcher
   (``accounts.views.set_language``) and by ``AccountLanguageMiddleware`` below.
2. The browser's ``Accept-Language`` header.
3. ``settings.LANGUAGE_CODE``.

Django's ``LocaleMiddleware`` applies 1-3. On top of it, a signed-in person's choice is
kept on their account (``Preference.language``) so that it follows them to another
browser: at sign-in (the ``user_logged_in`` signal) it is copied into the session and the
sign-in response sets the cookie to it; on any later request without the cookie (cookies
cleared), the middleware applies the session's copy and sets the cookie again (a session
made before this copy existed reads the account once). Only that case reads the session;
a request with the cookie costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponseBase
from django.utils import translation

from .models import Preference

# The account's language, copied into the session at sign-in ("" for none chosen).
SESSION_KEY = "account_language"
# Set on a request whose response must (re)set the language cookie.
_COOKIE_ATTR = "_account_language_cookie"


def language_codes() -> list[str]:
    """The codes of ``settings.LANGUAGES``, in their order (["en", "ru"])."""
    return [code for code, _name in settings.LANGUAGES]


def language_is_supported(code: object) -> bool:
    """True for a code of ``settings.LANGUAGES`` exactly as listed ("ru", not "RU" or
    "ru-RU"): what the switcher's menu sends."""
    return isinstance(code, str) and code in language_codes()


def language_remember(*, user: AbstractBaseUser, language: str) -> None:
    """Store ``language`` (a code of ``settings.LANGUAGES``, or "" for the browser's) as
    ``user``'s choice. Raises ``ValueError`` for any other code."""
    if language and not language_is_supported(language):
        raise ValueError(f"Unsupported language code: {language!r}")
    Preference.objects.update_or_create(user=user, defaults={"language": language})


def language_of_account(*, user: AbstractBaseUser) -> str:
    """``user``'s chosen language code, or "" when they chose none (or chose one that is
    no longer in ``settings.LANGUAGES``)."""
    language = Preference.objects.filter(user=user).values_list("language", flat=True).first() or ""
    return language if language_is_supported(language) else ""


def set_language_cookie(response: HttpResponseBase, language: str) -> None:
    """Set the language cookie the way Django's own ``set_language`` view does (name,
    age, path, domain and flags from the ``LANGUAGE_COOKIE_*`` settings)."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )


def use_language(request: HttpRequest, language: str, *, set_cookie: bool = True) -> None:
    """Make ``language`` the language of the rest of this request (the page it renders)
    and, with ``set_cookie``, of the browser's next requests (the response sets the
    cookie through ``AccountLanguageMiddleware``)."""
    translation.activate(language)
    request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
    if set_cookie:
        setattr(request, _COOKIE_ATTR, language)


def apply_account_language_at_sign_in(
    sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any
) -> None:
    """``user_logged_in`` receiver: the account's language, if one was chosen, becomes the
    session's and the browser's (it replaces a language cookie left by someone else)."""
    if request is None or not hasattr(request, "session"):
        return
    language = language_of_account(user=user)
    request.session[SESSION_KEY] = language
    if language:
        setattr(request, _COOKIE_ATTR, language)


class AccountLanguageMiddleware:
    """Applies a signed-in person's language when the browser has no language cookie,
    and sets the cookie when a view or the sign-in asked for it (see the module's
    docstring). Goes after the session middleware and ``LocaleMiddleware``; works in
    the event loop under ASGI (the session is read with its async API)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        if _needs_session_language(request):
            language = request.session.get(SESSION_KEY)
            if language is None and request.user.is_authenticated:
                # A session from before sign-in copied the language: look it up once
                # ("" when the account has none, so that it is not looked up again).
                language = language_of_account(user=request.user) or ""
                request.session[SESSION_KEY] = language
            _apply(request, language)
        return _with_cookie(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if _needs_session_language(request):
            language = await request.session.aget(SESSION_KEY)
            if language is None:
                user = await request.auser()
                if user.is_authenticated:
                    language = await sync_to_async(language_of_account)(user=user) or ""
                    await request.session.aset(SESSION_KEY, language)
            _apply(request, language)
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return _with_cookie(request, await get_response(request))


def _needs_session_language(request: HttpRequest) -> bool:
    """Only a page being opened (GET asking for HTML) without the language cookie: the
    page sets the cookie, and the requests it makes next (replies, streams, the API)
    carry it. Those never read the session or the database here: a reply's stream
    holds no database connection while it waits."""
    return (
        settings.LANGUAGE_COOKIE_NAME not in request.COOKIES
        and request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("Accept", "")
        and hasattr(request, "session")
    )


def _apply(request: HttpRequest, language: object) -> None:
    if language_is_supported(language):
        use_language(request, str(language))


def _with_cookie(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    language = getattr(request, _COOKIE_ATTR, None)
    if language:
        set_language_cookie(response, language)
    return response
