"""The sign-in lockout's policy, plugged into django-axes by name (settings.AXES_*).

django-axes counts failed sign-ins per account AND address together
(``AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]``) and refuses a sign-in once
``LOGIN_MAX_FAILURES`` are reached, for ``LOGIN_LOCKOUT_SECONDS`` after the last one.
This module tells it those numbers, which address a request comes from, and what a
locked-out person sees.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta
from typing import Any

from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def failure_limit(request: HttpRequest | None = None, credentials: Any = None) -> int:
    """Failed sign-ins (for one account from one address) that start a pause:
    ``LOGIN_MAX_FAILURES``."""
    return settings.LOGIN_MAX_FAILURES


def cool_off(request: HttpRequest | None = None) -> timedelta:
    """How long a pause lasts after the last failure: ``LOGIN_LOCKOUT_SECONDS``."""
    return timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)


def _valid_address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    """The address a request comes from, as the lockout counts it.

    ``REMOTE_ADDR`` unless ``TRUSTED_PROXY_HEADER`` names a header set by the reverse
    proxy. ``X-Real-IP`` holds one address; ``X-Forwarded-For`` a list to which each
    proxy appends the address it saw, so the client's is the ``TRUSTED_PROXY_COUNT``-th
    from the right (what is left of it came from the client and may be forged). A
    request without the header, or with fewer entries or an invalid one, counts under
    ``REMOTE_ADDR``.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    header = settings.TRUSTED_PROXY_HEADER
    if not header:
        return remote
    value = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    count = max(1, settings.TRUSTED_PROXY_COUNT)
    if len(entries) < count:
        return remote
    return _valid_address(entries[-count]) or remote


def _seconds_left(request: HttpRequest, username: str) -> int:
    """Seconds until the pause of ``username`` at this request's address ends."""
    last_failure = AccessAttempt.objects.filter(
        username=username, ip_address=getattr(request, "axes_ip_address", None)
    ).aggregate(last=Max("attempt_time"))["last"]
    pause = cool_off(request)
    if last_failure is None:
        return math.ceil(pause.total_seconds())
    left = (last_failure + pause - timezone.now()).total_seconds()
    return max(1, math.ceil(left))


def locked_out_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """The page a paused sign-in gets: HTTP 429, ``Retry-After`` in seconds and a
    sentence saying when to try again (``registration/locked_out.html``).

    django-axes calls it as ``(request, original_response, credentials)``, or as
    ``(request, credentials)`` from its async middleware, so the user name is read from
    the request axes marked rather than from the arguments."""
    stored = getattr(request, "axes_credentials", None)
    username = get_client_username(request, stored if isinstance(stored, dict) else None) or ""
    seconds = _seconds_left(request, username)
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": max(1, math.ceil(seconds / 60)), "seconds": seconds},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
