"""Fixed-window counters in Django's cache (Redis when REDIS_URL is set, so limits hold
across workers). Used for the per-user reply limit; failed sign-ins are counted by
django-axes (accounts.lockout)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window resets (0 when allowed)


def _key(scope: str, ident: str, window: int, now: float) -> tuple[str, int]:
    start = int(now // window) * window
    return f"rl:{scope}:{ident}:{start}", start + window


def hit(scope: str, ident: str, *, limit: int, window: int) -> Verdict:
    """Count one event; allowed while the window holds at most ``limit`` events.
    ``limit`` 0 switches the limit off."""
    if limit <= 0:
        return Verdict(True, 0)
    now = time.time()
    key, reset_at = _key(scope, ident, window, now)
    cache.add(key, 0, window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, window + 5)
        count = 1
    if count > limit:
        return Verdict(False, max(1, int(reset_at - now + 0.999)))
    return Verdict(True, 0)
