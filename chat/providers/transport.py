"""The part of error mapping every provider shares: transport faults (timeouts, refused or
lost connections) of any HTTP library, HTTP statuses, "no key configured", a missing
package, and key redaction. Each provider keeps only what is its SDK's own: which
exception classes it raises, and how to read a status, a message and headers from them.

The wording of what this module builds is one for every provider (staff read it as a
message's error detail; people read the plain sentence for its kind, ``chat.outcomes``):

* a timeout: "the request timed out (no answer from <host> within <timeout> s)";
* a connection that could not be made (refused, DNS, TLS handshake, proxy): "could not
  connect to <host>";
* a connection that broke after it was made (reset, closed mid-body, protocol error):
  "the connection to <host> was lost";
* an HTTP status: the upstream's own message, cleaned (``clean_upstream_message``), in the
  kind ``error_for_status`` picks; never the upstream's text for a 401 (some quote the key).

Exception classes are recognised by name through ``sys.modules``: nothing here imports an
HTTP library, so a provider whose SDK is missing still imports this module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    AuthenticationError,
    NotConfiguredError,
    ProviderError,
    ProviderTimeoutError,
    UnavailableError,
    clean_upstream_message,
    error_for_status,
    parse_retry_after,
    redact_keys,
)

__all__ = [
    "Endpoint",
    "TransportFault",
    "classify_transport",
    "host_of",
    "invalid_key_error",
    "is_transport_error",
    "missing_key_error",
    "missing_package_error",
    "status_error",
    "transport_error",
]

# The shortest configured key looked for in error text (shorter ones would match words).
_MIN_KEY_LENGTH = 4
# How far down a chain of wrapped exceptions (``raise X from cause``) to look.
_MAX_CHAIN = 8


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Who is being called, for error text: the provider's ``label`` (as people see it),
    the ``host`` ("api.openai.com", "127.0.0.1:8080"), the request ``timeout`` in seconds
    and the configured ``api_key`` (never shown: every message built here goes through
    ``redact``)."""

    label: str
    host: str
    timeout: float
    api_key: str = field(default="", repr=False)

    def redact(self, text: str) -> str:
        """``text`` without the configured key, whatever its shape (``redact_keys``, the
        one place that does it). Upstream text also loses anything that looks like a key
        (``clean_upstream_message``) before it gets here."""
        return redact_keys(text, self.api_key, min_length=_MIN_KEY_LENGTH)


def host_of(url: str) -> str:
    """The host (and port) of a URL: "https://api.openai.com/v1" -> "api.openai.com"."""
    return url.split("://", 1)[-1].split("/", 1)[0] or url


# --- transport faults -------------------------------------------------------------------


class TransportFault:
    """What kind of transport fault an exception is (constants, compared by identity)."""

    TIMEOUT = "timeout"
    CONNECT = "connect"  # the connection could not be made
    LOST = "lost"  # the connection broke after it was made


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it wraps: ``__cause__`` (``raise X from cause``, as the SDKs
    wrap httpx errors) and urllib's ``URLError.reason``. ``__context__`` is not followed:
    an unrelated error raised while handling a transport error is not one."""
    seen: set[int] = set()
    current: Any = error
    while isinstance(current, BaseException) and id(current) not in seen:
        if len(seen) >= _MAX_CHAIN:
            return
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None) if _is_urllib_error(current) else None
        current = current.__cause__ or reason


def _is_urllib_error(error: BaseException) -> bool:
    urllib_error = sys.modules.get("urllib.error")
    return urllib_error is not None and isinstance(error, urllib_error.URLError)


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """The exception classes ``module.Name`` of the modules already imported."""
    found: list[type[BaseException]] = []
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        module = sys.modules.get(module_name)
        cls = getattr(module, attribute, None) if module is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _timeout_classes() -> tuple[type[BaseException], ...]:
    # TimeoutError covers socket.timeout, asyncio.TimeoutError and aiohttp's timeouts.
    return (
        TimeoutError,
        *_classes(
            "httpx2.TimeoutException",
            "httpx.TimeoutException",
            "requests.exceptions.Timeout",
        ),
    )


def _connect_classes() -> tuple[type[BaseException], ...]:
    return (
        ConnectionRefusedError,
        *_classes(
            "socket.gaierror",
            "ssl.SSLError",
            "httpx2.ConnectError",
            "httpx2.ProxyError",
            "httpx2.UnsupportedProtocol",
            "httpx.ConnectError",
            "httpx.ProxyError",
            "httpx.UnsupportedProtocol",
            "aiohttp.ClientConnectorError",
            "requests.exceptions.ConnectionError",
        ),
    )


def _lost_classes() -> tuple[type[BaseException], ...]:
    # ConnectionError covers resets, aborts and broken pipes (ConnectionRefusedError is
    # matched first, as a connect fault).
    return (
        ConnectionError,
        *_classes(
            "httpx2.RequestError",
            "httpx.RequestError",
            "anyio.EndOfStream",
            "anyio.BrokenResourceError",
            "aiohttp.ClientError",
            "requests.exceptions.ChunkedEncodingError",
        ),
    )


def classify_transport(
    error: BaseException,
    *,
    timeouts: tuple[type[BaseException], ...] = (),
    connections: tuple[type[BaseException], ...] = (),
) -> str | None:
    """The ``TransportFault`` of ``error``, or None when it is not a transport fault.

    ``error`` and the exceptions it wraps are compared with the HTTP libraries' classes
    (httpx2, httpx, aiohttp, requests, urllib, anyio, the built-in socket errors).
    ``timeouts`` and ``connections`` are an SDK's own wrappers (``openai.APITimeoutError``,
    ``anthropic.APIConnectionError``): they make ``error`` a timeout or a lost connection
    even when they wrap nothing recognisable. A connect failure anywhere in the chain
    wins over "lost"; a timeout wins over both."""
    chain = list(_chain(error))
    timeout_classes = _timeout_classes()
    if isinstance(error, timeouts) or any(isinstance(e, timeout_classes) for e in chain):
        return TransportFault.TIMEOUT
    connect_classes = _connect_classes()
    if any(isinstance(e, connect_classes) for e in chain):
        return TransportFault.CONNECT
    lost_classes = _lost_classes()
    if isinstance(error, connections) or any(isinstance(e, lost_classes) for e in chain):
        return TransportFault.LOST
    return None


def is_transport_error(error: BaseException, **sdk_classes: Any) -> bool:
    """Whether ``error`` is a transport fault (see ``classify_transport``)."""
    return classify_transport(error, **sdk_classes) is not None


def transport_error(
    error: BaseException,
    endpoint: Endpoint,
    *,
    timeouts: tuple[type[BaseException], ...] = (),
    connections: tuple[type[BaseException], ...] = (),
) -> ProviderError | None:
    """The ProviderError for a transport fault (``ProviderTimeoutError`` or
    ``UnavailableError``, worded as the module docstring says), None when ``error`` is
    not one. ``timeouts``/``connections``: as for ``classify_transport``."""
    fault = classify_transport(error, timeouts=timeouts, connections=connections)
    if fault is None:
        return None
    host = endpoint.host
    if fault == TransportFault.TIMEOUT:
        message = f"the request timed out (no answer from {host} within {endpoint.timeout:g} s)"
        return ProviderTimeoutError(endpoint.redact(message), provider=endpoint.label)
    if fault == TransportFault.CONNECT:
        message = f"could not connect to {host}"
    else:
        message = f"the connection to {host} was lost"
    return UnavailableError(endpoint.redact(message), provider=endpoint.label)


# --- HTTP statuses ----------------------------------------------------------------------


def status_error(
    status: int,
    message: str,
    endpoint: Endpoint,
    *,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
) -> ProviderError:
    """The ProviderError for an HTTP error status: the kind ``error_for_status`` picks
    (401 authentication, 403 permission, 404 model not found, 408/504 timeout, 429 rate
    limited, other 5xx unavailable, other 4xx bad request), the upstream's ``message``
    cleaned and without the key (none for a 401: some quote the key), and the wait from
    ``retry_after`` (seconds) or else from the Retry-After headers in ``headers``."""
    if retry_after is None and headers is not None:
        retry_after = parse_retry_after(headers)
    text = "" if status == 401 else endpoint.redact(clean_upstream_message(message))
    return error_for_status(status, text, provider=endpoint.label, retry_after=retry_after)


def invalid_key_error(endpoint: Endpoint, *, status_code: int | None = None) -> ProviderError:
    """The AuthenticationError for a key the upstream refused, whatever status or words
    it used (``BaseProvider`` words it "invalid API key (check <SETTING>)")."""
    return AuthenticationError(provider=endpoint.label, status_code=status_code)


# --- configuration ----------------------------------------------------------------------


def missing_key_error(label: str, setting: str) -> NotConfiguredError:
    """The NotConfiguredError for a provider without its key: "no API key: set <SETTING>"."""
    return NotConfiguredError(f"no API key: set {setting}", provider=label)


def missing_package_error(label: str, install_hint: str) -> NotConfiguredError:
    """The NotConfiguredError for a provider whose SDK is not installed."""
    return NotConfiguredError(
        f"Python package missing: install it with {install_hint}", provider=label
    )
