"""Reads of share links."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import TOKEN_MAX_LENGTH, SharedLink


def shared_link_for_token(*, token: str) -> SharedLink | None:
    """The working (not revoked) link ``token`` opens, or None (also for a token too
    long to be one). Who may see it is the caller's check
    (``SharedLink.effective_audience``)."""
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    return SharedLink.objects.filter(token=token, revoked_at__isnull=True).first()


def shared_links_of(*, owner: AbstractBaseUser) -> QuerySet[SharedLink]:
    """``owner``'s links, revoked ones included, newest first."""
    return SharedLink.objects.filter(owner=owner).order_by("-created_at", "-id")
