"""Reads of the accounts app, always scoped to their owner."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from .models import ApiKey


def api_keys_of(*, user: AbstractBaseUser) -> QuerySet[ApiKey]:
    """``user``'s API keys, newest first (revoked and expired ones included)."""
    return ApiKey.objects.filter(user=user).order_by("-created_at", "-id")
