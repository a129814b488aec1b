"""What can go wrong with a provider: ``ProviderError`` and its kinds, the mapping from an
upstream's HTTP status, Retry-After parsing, and the one place that keeps keys out of
error text (``redact_keys``: the configured key, and anything that looks like a key;
``clean_upstream_message`` applies it to whatever an upstream sends)."""

from __future__ import annotations

import email.utils
import enum
import re
import time
from collections.abc import Mapping
from typing import ClassVar


class ErrorKind(enum.StrEnum):
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    BAD_REQUEST = "bad_request"
    MODEL_NOT_FOUND = "model_not_found"
    NOT_CONFIGURED = "not_configured"


_DEFAULT_MESSAGES: dict[ErrorKind, str] = {
    ErrorKind.AUTHENTICATION: "invalid API key",
    ErrorKind.PERMISSION: "this API key is not allowed to use this model",
    ErrorKind.RATE_LIMITED: "rate limit reached, try again shortly",
    ErrorKind.UNAVAILABLE: "the service is unavailable, try again shortly",
    ErrorKind.TIMEOUT: "the request timed out",
    ErrorKind.BAD_REQUEST: "the request was rejected",
    ErrorKind.MODEL_NOT_FOUND: "unknown model",
    ErrorKind.NOT_CONFIGURED: "not configured",
}

_RETRYABLE = {ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT}


class ProviderError(Exception):
    """Any failure of a provider. ``kind`` says what went wrong, ``provider`` who failed;
    ``str(error)`` is one readable line for a person, for example
    "Anthropic: invalid API key". Messages never contain API keys."""

    kind: ClassVar[ErrorKind] = ErrorKind.UNAVAILABLE

    def __init__(
        self,
        message: str = "",
        *,
        provider: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or _DEFAULT_MESSAGES[self.kind]
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        return f"{self.provider}: {self.message}" if self.provider else self.message

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    def __str__(self) -> str:
        return self.user_message


class AuthenticationError(ProviderError):
    kind = ErrorKind.AUTHENTICATION


class PermissionDeniedError(ProviderError):
    kind = ErrorKind.PERMISSION


class RateLimitedError(ProviderError):
    kind = ErrorKind.RATE_LIMITED


class UnavailableError(ProviderError):
    kind = ErrorKind.UNAVAILABLE


class ProviderTimeoutError(ProviderError):
    kind = ErrorKind.TIMEOUT


class BadRequestError(ProviderError):
    kind = ErrorKind.BAD_REQUEST


class ModelNotFoundError(BadRequestError):
    kind = ErrorKind.MODEL_NOT_FOUND


class NotConfiguredError(ProviderError):
    kind = ErrorKind.NOT_CONFIGURED


def error_for_status(
    status: int,
    message: str = "",
    *,
    provider: str = "",
    retry_after: float | None = None,
) -> ProviderError:
    """The ProviderError for an HTTP status from an upstream: 401 authentication, 403
    permission, 404 model not found, 408 and 504 timeout (the upstream, or a gateway in
    front of it, gave up waiting), 429 rate limited, other 5xx unavailable, other 4xx bad
    request. ``message`` is cleaned (``clean_upstream_message``)."""
    cls: type[ProviderError]
    if status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDeniedError
    elif status == 404:
        cls = ModelNotFoundError
    elif status in (408, 504):
        cls = ProviderTimeoutError
    elif status == 429:
        cls = RateLimitedError
    elif status >= 500:
        cls = UnavailableError
    else:
        cls = BadRequestError
    return cls(
        clean_upstream_message(message),
        provider=provider,
        status_code=status,
        retry_after=retry_after,
    )


def clean_upstream_message(message: str, *, limit: int = 300) -> str:
    """One readable line from an upstream error text, without anything that looks like a
    key (providers echo the key's prefix back in some 401 messages)."""
    text = redact_keys(" ".join(str(message or "").split()), key_like=True)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


REDACTED = "[redacted]"
_KEY_LIKE = (
    re.compile(r"\b(sk|key|AIza|ak|pk|cai)[-_A-Za-z0-9]{8,}"),  # cai_: our own API keys
    re.compile(r"\b[A-Za-z0-9_\-]{32,}\b"),
)


def redact_keys(
    text: str, key: str | None = None, *, min_length: int = 8, key_like: bool = False
) -> str:
    """``text`` without API keys: the configured ``key`` wherever it appears, whatever
    shape it has (a key shorter than ``min_length`` is not looked for: it would match
    ordinary words), and with ``key_like`` also anything that looks like a key (an
    upstream may echo a key's prefix back, in some 401 messages for example)."""
    if key and len(key) >= min_length and key in text:
        text = text.replace(key, REDACTED)
    if key_like:
        for pattern in _KEY_LIKE:
            text = pattern.sub(REDACTED, text)
    return text


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After (seconds or HTTP date) or retry-after-ms header."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
