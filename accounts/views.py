"""Sign-in and sign-up pages, and the language switcher. Repeated failed sign-ins are
paused by django-axes (its authentication backend and middleware, configured in settings
and ``accounts.lockout``), not here."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import language as page_language
from .forms import SignupForm


class SignInView(LoginView):
    """Django's sign-in page; a person already signed in goes straight to the chat."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "allow_signup": settings.ALLOW_SIGNUP}


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in with it; 404 when ALLOW_SIGNUP is off."""
    if not settings.ALLOW_SIGNUP:
        raise Http404("Sign-up is closed")
    if request.user.is_authenticated:
        return redirect("chat:index")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:index")
    return render(request, "registration/signup.html", {"form": form})


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The language switcher (a form on every page): POST ``language`` (a code of
    ``settings.LANGUAGES``) and ``next`` (the page to go back to). Sets the language
    cookie, and for a signed-in person stores the choice on their account (it then
    follows them to another browser, see ``accounts.language``). Redirects to ``next``
    when it is a page of this site, else to the Referer, else to the chat. An unknown
    code answers 400 with the codes it takes and changes nothing; GET answers 405."""
    language = request.POST.get("language", "")
    if not page_language.language_is_supported(language):
        return HttpResponseBadRequest(
            _("Unknown language “%(code)s”. Choose one of: %(codes)s.")
            % {"code": language[:20], "codes": ", ".join(page_language.language_codes())},
            content_type="text/plain; charset=utf-8",
        )
    if request.user.is_authenticated:
        page_language.language_remember(user=request.user, language=language)
        request.session[page_language.SESSION_KEY] = language
    page_language.use_language(request, language)
    return redirect(_safe_next(request))


def _safe_next(request: HttpRequest) -> str:
    """``next`` from the form, else the Referer, if it is a URL of this site; else the
    chat's address. Never another host or scheme (an open redirect)."""
    for url in (request.POST.get("next"), request.headers.get("referer")):
        if url and url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return url
    return reverse("chat:index")
