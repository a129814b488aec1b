"""The server log (settings.LOGGING): the app's own lines at INFO, libraries' notices
quiet, both levels settable. Each case configures logging in a fresh process, as the
server does at start (pytest's own log capture would hide the levels in this one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a server process logs during one failed Gemini reply.
SCRIPT = """
import logging
import django
django.setup()
logging.getLogger("google_genai.models").info("AFC is enabled with max remote calls: 10.")
logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1:9/v1 "HTTP/1.1 401"')
logging.getLogger("chat.services").info("reply 7 failed: google gemini-2.5 authentication")
logging.getLogger("google_genai.models").warning("the SDK warns about something")
"""
SDK_NOTICE = "AFC is enabled"
HTTP_LINE = "HTTP Request:"
APP_LINE = "reply 7 failed"
SDK_WARNING = "the SDK warns"


def server_log(**env: str) -> str:
    """What the settings' logging prints for SCRIPT, with these variables (empty
    values also hide those of a developer's .env)."""
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chat_ai.settings",
        "LOG_LEVEL": "",
        "LIBRARY_LOG_LEVEL": "",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stderr


@pytest.fixture(scope="module")
def default_log() -> str:
    return server_log()


def test_an_sdk_notice_stays_out_of_the_log_by_default(default_log: str) -> None:
    assert SDK_NOTICE not in default_log


def test_http_request_lines_stay_out_of_the_log_by_default(default_log: str) -> None:
    assert HTTP_LINE not in default_log


def test_the_apps_own_info_lines_are_logged_by_default(default_log: str) -> None:
    assert APP_LINE in default_log


def test_library_warnings_are_still_logged(default_log: str) -> None:
    assert SDK_WARNING in default_log


def test_log_level_sets_the_apps_level() -> None:
    assert APP_LINE not in server_log(LOG_LEVEL="WARNING")


def test_library_log_level_lets_library_notices_through() -> None:
    log = server_log(LIBRARY_LOG_LEVEL="INFO")
    assert SDK_NOTICE in log
    assert APP_LINE in log
