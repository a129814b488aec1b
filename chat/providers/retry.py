"""The retry policy: how long to wait before retrying a failed request, if at all. The one
retry loop that applies it lives in ``BaseProvider.stream`` (before the first token only)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ProviderError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries before the first token only. ``max_retries`` extra attempts; the delay
    doubles from ``base_delay`` with jitter, never above ``max_delay``, and a server's
    Retry-After wins when it is longer (up to ``max_retry_after``: a longer wait is
    reported to the user instead)."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 20.0

    def delay(self, attempt: int, error: ProviderError) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based), None for no retry."""
        if attempt > self.max_retries or not error.retryable:
            return None
        backoff = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        backoff *= 0.75 + random.random() / 2
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return max(backoff, error.retry_after)
        return backoff
