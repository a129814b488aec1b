"""The test-wide rules of conftest.py: only loopback may be reached, a blocked attempt
fails its test even when the code swallowed the error, and CI never skips."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import NetworkBlockedError, expect_network_blocked, missing_dependency, running_in_ci

ROOT = Path(__file__).resolve().parents[2]


def test_connecting_to_a_public_address_fails() -> None:
    with (
        expect_network_blocked() as attempts,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s,
        pytest.raises(NetworkBlockedError),
    ):
        s.connect(("203.0.113.10", 443))
    assert attempts == ["tests may not reach '203.0.113.10': only loopback is allowed"]


def test_resolving_a_public_name_fails() -> None:
    with expect_network_blocked() as attempts, pytest.raises(NetworkBlockedError):
        socket.getaddrinfo("api.openai.com", 443)
    assert len(attempts) == 1


def test_loopback_is_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


# --- a swallowed attempt still fails the test (run in a pytest of its own) -------------

INNER_TESTS = """
import socket

import pytest

from conftest import expect_network_blocked


def quiet_fallback():
    '''What an app does when it "falls back quietly": catch everything.'''
    try:
        socket.getaddrinfo("api.openai.com", 443)
    except Exception:
        return "fallback"


def test_swallows_a_blocked_lookup():
    assert quiet_fallback() == "fallback"


def test_swallows_a_blocked_connection():
    with socket.socket() as s:
        try:
            s.connect(("203.0.113.10", 443))
        except RuntimeError:
            pass


@pytest.fixture
def quietly_online():
    quiet_fallback()


def test_uses_a_fixture_that_swallows(quietly_online):
    pass


def test_expects_the_block():
    with expect_network_blocked():
        assert quiet_fallback() == "fallback"


def test_stays_on_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=2).close()


def test_fails_on_its_own():
    socket.getaddrinfo("api.openai.com", 443)
"""


@pytest.fixture
def inner_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    """INNER_TESTS run by a fresh pytest with this project's conftest.py as a plugin."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # whole lines in the short summary
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester.runpytest_subprocess(
        "-p", "conftest", "-p", "no:django", "-p", "no:asyncio", "-p", "no:cacheprovider", "-rA"
    )


def test_a_test_that_swallows_a_blocked_attempt_fails(inner_run: pytest.RunResult) -> None:
    inner_run.stdout.fnmatch_lines(
        [
            "ERROR test_inner.py::test_uses_a_fixture_that_swallows - Failed: the network "
            "guard blocked 1 attempt(s) during setup*",
            "FAILED test_inner.py::test_swallows_a_blocked_lookup - Failed: the network "
            "guard blocked 1 attempt(s) during the test*",
            "FAILED test_inner.py::test_swallows_a_blocked_connection - Failed: the network "
            "guard blocked 1 attempt(s) during the test*",
        ],
        consecutive=False,
    )


def test_expected_and_loopback_attempts_pass(inner_run: pytest.RunResult) -> None:
    inner_run.stdout.fnmatch_lines(
        [
            "PASSED test_inner.py::test_expects_the_block",
            "PASSED test_inner.py::test_stays_on_loopback",
        ]
    )


def test_a_test_failing_on_its_own_is_reported_once(inner_run: pytest.RunResult) -> None:
    """Its own NetworkBlockedError, not a second failure from the guard at teardown."""
    inner_run.stdout.fnmatch_lines(
        ["FAILED test_inner.py::test_fails_on_its_own - conftest.NetworkBlockedError*"]
    )
    inner_run.assert_outcomes(passed=2, failed=3, errors=1)


# --- CI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "1", "yes", "True", "TRUE", "on", "y", "github"])
def test_any_true_ci_value_means_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert running_in_ci()


@pytest.mark.parametrize("value", ["", " ", "0", "false", "False", "no", "off", "OFF"])
def test_an_empty_or_false_ci_value_is_not_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert not running_in_ci()


def test_no_ci_variable_is_not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert not running_in_ci()


def test_a_missing_dependency_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium not found"):
        missing_dependency("chromium not found")


def test_a_missing_dependency_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium not found"):
        missing_dependency("chromium not found")
