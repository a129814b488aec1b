"""Replies stream token by token from a real server process: uvicorn (what `make run`
serves with) and `manage.py runserver` (daphne's ASGI runserver)."""

from __future__ import annotations

import http.client
import http.cookies
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat.tests.fakes.openai_fake import install_openai_stream
from chat.tests.fakes.server import FakeUpstream
from chat.tests.live import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


class Browserless:
    """Just enough of a browser: cookies, CSRF, form posts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            headers["Referer"] = f"http://127.0.0.1:{self.port}/"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = http.cookies.SimpleCookie(header)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        return response

    def login(self, username: str, password: str) -> None:
        self.request("GET", "/accounts/login/").read()
        response = self.request(
            "POST",
            "/accounts/login/",
            {
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self.cookies["csrftoken"],
            },
        )
        response.read()
        assert response.status == 302, "login failed"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def app_env(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> dict[str, str]:
    db = tmp_path_factory.mktemp("serving") / "db.sqlite3"
    env = {
        **os.environ,
        "DEBUG": "true",
        "SQLITE_PATH": str(db),
        "OPENAI_COMPATIBLE_PROVIDERS": "fakeai",
        "FAKEAI_BASE_URL": upstream.url + "/v1",
        "FAKEAI_MODELS": "fake-model",
        "CHAT_RATE_LIMIT_MESSAGES": "0",
        "CHAT_TITLE_MODEL": "off",  # no extra request to the fake model after a first reply
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    subprocess.run(
        [PY, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            PY,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "User.objects.create_user('sam', password='pw-sam-12345')",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def server_command(kind: str, port: int) -> list[str]:
    if kind == "uvicorn":
        return [
            PY,
            "-m",
            "uvicorn",
            "chat_ai.asgi:application",
            "--port",
            str(port),
            "--no-access-log",
        ]
    return [PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]


@pytest.mark.parametrize("kind", ["uvicorn", "runserver"])
def test_reply_arrives_token_by_token(
    kind: str, app_env: dict[str, str], upstream: FakeUpstream
) -> None:
    port = free_port()
    process = subprocess.Popen(
        server_command(kind, port),
        cwd=ROOT,
        env=app_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, process)
        client = Browserless(port)
        client.login("sam", "pw-sam-12345")
        created = client.request("POST", "/c/new/", {"provider": "fakeai", "model": "fake-model"})
        reply_url = json.loads(created.read())["reply_url"]
        install_openai_stream(upstream, [f"word{i} " for i in range(6)], pause=0.3)
        response = client.request(
            "POST",
            reply_url,
            {"content": "stream please", "provider": "fakeai", "model": "fake-model"},
        )
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["X-Accel-Buffering"] == "no"
        arrivals: list[tuple[float, bytes]] = []
        while True:
            line = response.readline()
            if not line:
                break
            arrivals.append((time.monotonic(), line))
        first_delta = next(t for t, line in arrivals if line.startswith(b"event: delta"))
        done = next(t for t, line in arrivals if line.startswith(b"event: done"))
        # Six chunks 0.3 s apart: streamed, the first arrives about 1.5 s before the end;
        # buffered, they would all arrive together.
        assert done - first_delta > 1.0
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
