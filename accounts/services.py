"""Personal API keys: create, revoke, authenticate (``<noun>_<verb>``, keyword-only).

How a key is checked, and why a revoked key stops at once everywhere
--------------------------------------------------------------------
``api_key_authenticate`` hashes the key it is given (SHA-256) and looks the hash up in the
database on every call, with the key's ``revoked_at`` and ``expires_at`` in the same
query. Nothing about keys is cached in a process: a key revoked on one worker (the keys
page, the admin) is refused by every other worker from its next request on, with no
cache to expire first.

The lookup is by hash, so the time it takes tells an attacker nothing about how close a
guess was (they would have to find a SHA-256 preimage); the stored hash is compared again
with ``hmac.compare_digest`` all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from .models import ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "cai_"
KEY_RANDOM_BYTES = 32  # secrets.token_urlsafe(32): 43 characters
PREFIX_LENGTH = len(KEY_PREFIX) + 8  # what lists show: "cai_3f9aXb2Q"
# A key longer than this is not one of ours: refused before it is hashed.
MAX_KEY_LENGTH = 200
# last_used_at is written at most this often per key, not on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


def _hash(raw: str) -> str:
    """SHA-256 of the whole key, as 64 lowercase hex digits."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def api_key_create(
    *, user: AbstractBaseUser, name: str, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create an API key for ``user``.

    Returns ``(key, raw)``: the saved ``ApiKey`` and the key itself (``"cai_"`` + 43
    URL-safe characters). ``raw`` is not stored anywhere; show it to its owner once.
    ``expires_at`` (aware datetime, or None for never) is when the key stops working.
    """
    raw = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    key = ApiKey.objects.create(
        user=user,
        name=name.strip(),
        prefix=raw[:PREFIX_LENGTH],
        secret_hash=_hash(raw),
        expires_at=expires_at,
    )
    logger.info("API key %s (%s…) created for user %s", key.pk, key.prefix, user.pk)
    return key, raw


def api_key_revoke(*, key_id: int, by: AbstractBaseUser) -> ApiKey:
    """Revoke key ``key_id``: it stops working at once, on every worker.

    ``by`` must be the key's owner or staff. Revoking a revoked key changes nothing
    (its first revocation time stays). Returns the key.

    Raises ``ApiKey.DoesNotExist`` when there is no such key or it is someone else's
    and ``by`` is not staff (the two are not told apart: a view answers 404).
    """
    keys = ApiKey.objects.all() if by.is_staff else ApiKey.objects.filter(user=by)
    key = keys.get(pk=key_id)
    if key.revoked_at is None:
        now = timezone.now()
        # Conditional: two revocations at once keep the first time.
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
        key.refresh_from_db(fields=["revoked_at"])
        logger.info("API key %s (%s…) revoked by user %s", key.pk, key.prefix, by.pk)
    return key


def api_keys_revoke(*, key_ids: Iterable[int], by: AbstractBaseUser) -> int:
    """Revoke several keys at once (the admin's action). Staff may revoke anyone's
    keys, others only their own; keys not allowed or already revoked are left as they
    are. Returns how many keys were revoked by this call."""
    keys = ApiKey.objects.filter(pk__in=list(key_ids), revoked_at__isnull=True)
    if not by.is_staff:
        keys = keys.filter(user=by)
    count = keys.update(revoked_at=timezone.now())
    if count:
        logger.info("%d API key(s) revoked by user %s", count, by.pk)
    return count


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key ``raw`` is, with its ``user`` loaded; None when it is unknown,
    malformed, revoked, expired, or its owner's account is inactive.

    Reads the database on every call (see the module's docstring: no cache could keep
    a revoked key alive). Updates ``last_used_at`` when it is older than
    ``LAST_USED_PRECISION`` (one minute), so a busy key costs one write a minute rather
    than one per request. Safe to call with anything a client sends.
    """
    if (
        not isinstance(raw, str)
        or not raw.startswith(KEY_PREFIX)
        or len(raw) > MAX_KEY_LENGTH
        or not raw.isascii()
    ):
        return None
    digest = _hash(raw)
    now = timezone.now()
    key = (
        ApiKey.objects.select_related("user")
        .filter(secret_hash=digest, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if key is None or not hmac.compare_digest(key.secret_hash, digest):
        return None
    if not key.user.is_active:
        return None
    stale = now - LAST_USED_PRECISION
    if key.last_used_at is None or key.last_used_at <= stale:
        # Conditional: of several workers seeing the same stale time, one writes.
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
        ).update(last_used_at=now)
        key.last_used_at = now
    return key


async def aapi_key_authenticate(raw: str) -> ApiKey | None:
    """``api_key_authenticate`` for async code: the lookup and the throttled write in
    one trip to Django's database thread."""
    return await sync_to_async(api_key_authenticate)(raw)
