"""Sign-in and sign-up pages. Repeated failed sign-ins are paused by django-axes (its
authentication backend and middleware, configured in settings and ``accounts.lockout``),
not here."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

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
