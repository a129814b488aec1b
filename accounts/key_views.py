"""The page where a person manages their API keys: list, create (the key is shown once),
revoke. The services in ``accounts.services`` do the work."""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import ApiKeyCreateForm
from .models import ApiKey


def _page(
    request: HttpRequest, form: ApiKeyCreateForm, new_key: str = "", status: int = 200
) -> HttpResponse:
    now = timezone.now()
    keys = [(key, key.state_at(now)) for key in selectors.api_keys_of(user=request.user)]
    response = render(
        request,
        "accounts/keys.html",
        {
            "form": form,
            "keys": keys,
            "new_key": new_key,
            "states": ApiKey.State,
            "api_base_url": request.build_absolute_uri("/v1"),
        },
        status=status,
    )
    # The answer to a creation holds the key: no cache may keep it (nor the back button).
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    """GET: the person's keys and the form for a new one. POST: create a key and show
    it once, in this response only (it is not stored, nor put in the session)."""
    if request.method != "POST":
        return _page(request, ApiKeyCreateForm())
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    _key, raw = services.api_key_create(
        user=request.user,
        name=form.cleaned_data["name"],
        expires_at=form.expires_at(timezone.now()),
    )
    return _page(request, ApiKeyCreateForm(), new_key=raw)


@login_required
@require_POST
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the person's keys (staff: anyone's); 404 for a key that is not
    theirs. Back to the list with a notice."""
    try:
        key = services.api_key_revoke(key_id=pk, by=request.user)
    except ApiKey.DoesNotExist:
        raise Http404("No such key") from None
    flash.success(request, _("The key “%(name)s” was revoked.") % {"name": key.name})
    return redirect("api_keys")
