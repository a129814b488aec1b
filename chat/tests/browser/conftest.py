"""The real app in a real browser: uvicorn serves chat_ai on a free loopback port with a
temporary SQLite database, Chromium (Debian's /usr/bin/chromium, driven by Playwright)
uses it like a person would. The OpenAI-compatible provider "fakeai" points at a
FakeUpstream in this process, so each test decides what the "model" answers; the
paid providers have no key and show as disabled; the local model is the real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from chat.tests.fakes.openai_fake import install_openai_models, install_openai_stream
from chat.tests.fakes.server import FakeUpstream
from chat.tests.live import free_port, wait_for_port
from conftest import missing_dependency

BASE_DIR = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAKE_MODELS = ("fake-model-1", "fake-model-2")
STAFF_USERNAME = "staff"
STAFF_PASSWORD = "staff-pass-4821"  # a throwaway test account


@dataclass
class AppServer:
    url: str
    env: dict[str, str]
    upstream: FakeUpstream
    log_path: Path

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py`` against the server's database."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        missing_dependency(
            f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
            "(apt-get install chromium)"
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        install_openai_models(upstream, FAKE_MODELS)
        # Whatever a test did not queue gets a short answer.
        install_openai_stream(upstream, ["Fake ", "answer."], model=FAKE_MODELS[0], default=True)
        yield upstream


@pytest.fixture(scope="session")
def app_server(
    chromium_path: Path, fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    workdir = tmp_path_factory.mktemp("e2e")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="chat_ai.settings",
        DEBUG="true",
        SQLITE_PATH=str(workdir / "db.sqlite3"),
        MEDIA_ROOT=str(workdir / "media"),
        ALLOW_SIGNUP="true",
        CHAT_DEFAULT_PROVIDER="local",
        OPENAI_COMPATIBLE_PROVIDERS="fakeai",
        FAKEAI_BASE_URL=f"{fake_upstream.url}/v1",
        FAKEAI_MODELS=",".join(FAKE_MODELS),
        FAKEAI_LABEL="FakeAI",
        FAKEAI_API_KEY="",
        FAKEAI_TIMEOUT="10",
        LLM_MAX_RETRIES="0",
        CHAT_TITLE_MODEL="off",  # no extra question to the fake model after a first reply
        OPENAI_API_KEY="",
        ANTHROPIC_API_KEY="",
        GOOGLE_API_KEY="",
        MISTRAL_API_KEY="",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    server = AppServer(f"http://127.0.0.1:{port}", env, fake_upstream, workdir / "server.log")
    server.manage("migrate", "--noinput")
    server.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_superuser({STAFF_USERNAME!r}, "
        f"'staff@example.com', {STAFF_PASSWORD!r})",
    )
    with server.log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "chat_ai.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                wait_for_port(port, process, timeout=30)
            except RuntimeError as e:
                pytest.fail(f"{e}\n--- server log ---\n{server.log_tail()}")
            yield server
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, app_server: AppServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280x800. A JavaScript error or a CSP
    violation in the page fails the test; the server log is printed when a test fails."""
    # No service worker (test_pwa.py makes its own context with it): requests a worker
    # makes would escape page.route (test_xss.py strips the CSP that way).
    context = browser.new_context(
        base_url=app_server.url,
        viewport={"width": 1280, "height": 800},
        service_workers="block",
    )
    context.set_default_timeout(10_000)
    page_errors: list[str] = []
    context.on("weberror", lambda error: page_errors.append(str(error.error)))
    # The Content-Security-Policy forbids inline script and style: a violation is a bug.
    context.on(
        "console",
        lambda message: (
            page_errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    page = context.new_page()
    yield page
    context.close()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- app server log ---\n{app_server.log_tail()}")
    assert not page_errors, f"JavaScript errors or CSP violations in the page: {page_errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
