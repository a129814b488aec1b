"""Test-wide setup: no test may reach beyond this machine, and CI never skips.

The network guard is installed when pytest starts, before any test module (or SDK) is
imported: a connection or DNS lookup for anything but a loopback address raises
``NetworkBlockedError``. Every blocked attempt is also recorded, and the test during
which it happened FAILS even if the code under test caught the exception and fell back
quietly (a provider that swallows errors, a retry loop, a "best effort" call). A test
of the guard itself wraps the attempts it expects in ``expect_network_blocked()``.

``running_in_ci()`` is the one answer to "are we in CI?"; ``missing_dependency()``
skips a test whose tools are missing on a developer's machine and fails it in CI.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest

pytest_plugins = ["pytester"]  # for the tests of this file's hooks

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_FALSE_WORDS = {"", "0", "false", "no", "off", "n", "f"}


class NetworkBlockedError(RuntimeError):
    """A test tried to reach a non-loopback address."""


# --- CI ---------------------------------------------------------------------------------


def running_in_ci() -> bool:
    """True when the CI environment variable holds any value but an empty or false one
    ("0", "false", "no", "off", in any case): CI=true, CI=1, CI=yes, CI=True, CI=on...
    all count, as CI services set it in different ways."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE_WORDS


def missing_dependency(message: str) -> NoReturn:
    """A test cannot run because a tool or service is missing: skip it with
    ``message`` on a developer's machine, fail it in CI (see ``running_in_ci``), where
    everything must be installed and a skip would hide a suite that did not run."""
    if running_in_ci():
        pytest.fail(f"{message} (CI is set: missing dependencies fail instead of skipping)")
    pytest.skip(message)


# --- the network guard ------------------------------------------------------------------

_blocked: list[str] = []  # attempts not expected by the test, since the last check
_expected: list[list[str]] = []  # a stack, one list per open expect_network_blocked()
_record_lock = threading.Lock()


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _block(message: str) -> NoReturn:
    with _record_lock:
        (_expected[-1] if _expected else _blocked).append(message)
    raise NetworkBlockedError(message)


def _check_address(address: Any) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_loopback(host):
        _block(f"tests may not reach {host!r}: only loopback is allowed")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _is_loopback(host):
        _block(f"tests may not resolve {host!r}: only loopback is allowed")
    return _real_getaddrinfo(host, *args, **kwargs)


@contextmanager
def expect_network_blocked() -> Iterator[list[str]]:
    """For tests of the guard itself: attempts inside the block are expected, so they
    do not fail the test. Yields the list of their messages (filled as they happen)."""
    attempts: list[str] = []
    with _record_lock:
        _expected.append(attempts)
    try:
        yield attempts
    finally:
        with _record_lock:
            _expected.remove(attempts)


def _take_blocked() -> list[str]:
    with _record_lock:
        attempts = list(_blocked)
        _blocked.clear()
    return attempts


def _fail_if_blocked(phase: str) -> None:
    attempts = _take_blocked()
    if attempts:
        listed = "\n  ".join(attempts)
        pytest.fail(
            f"the network guard blocked {len(attempts)} attempt(s) during {phase}, even if "
            f"the code caught the error:\n  {listed}",
            pytrace=False,
        )


def _guarded_phase(phase: str) -> Iterator[None]:
    """The body of the three hook wrappers below: run one phase of a test, then fail it
    if the guard blocked anything meanwhile. A phase that failed on its own keeps its
    error (usually the NetworkBlockedError itself)."""
    try:
        result = yield
    except BaseException:
        _take_blocked()
        raise
    _fail_if_blocked(phase)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _take_blocked()  # attempts between tests (a background thread) belong to no test
    return (yield from _guarded_phase("setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded_phase("the test"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    return (yield from _guarded_phase("teardown"))


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _access_rules_answer_fresh() -> None:
    """Every test starts without the cached "are there access rules?" answer
    (access.services): a database emptied between tests sends no signal to clear it."""
    from django.conf import settings

    if not settings.configured:  # a pytester run of this file's hooks: no Django
        return
    from django.core.cache import cache

    from access.services import ANY_RULES_KEY, FALLBACK_CHAINS_KEY

    cache.delete(ANY_RULES_KEY)
    cache.delete(FALLBACK_CHAINS_KEY)


@pytest.fixture(autouse=True)
def _english_after_each_test() -> Iterator[None]:
    """A test that activates a language (a Russian page, say) leaves the next one in
    English: Django's active language is per thread and outlives a request made with the
    test client."""
    yield
    from django.conf import settings

    if settings.configured:
        from django.utils import translation

        translation.deactivate()


@pytest.fixture(autouse=True, scope="session")
def _quick_emptying_on_postgresql() -> None:
    """Tests that commit (``django_db(transaction=True)``) empty every table after
    themselves. Django does it on PostgreSQL with one TRUNCATE of all of them, which
    makes a new file per table: about 0.4 s a test with this project's 80 tables. A
    DELETE of each (the foreign keys are deferred, so order does not matter) empties
    the same rows in a few milliseconds. Sequences are reset as before when asked."""
    from django.conf import settings

    if not settings.configured:
        return
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return
    import django.db.models  # noqa: F401 (the backend's modules import it first)
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(
        self: Any,
        style: Any,
        tables: list[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if reset_sequences or not tables:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return ["SET CONSTRAINTS ALL DEFERRED;"] + [
            f"DELETE FROM {self.quote_name(table)};" for table in tables
        ]

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]
