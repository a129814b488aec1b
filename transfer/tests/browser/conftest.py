"""The browser fixtures of the chat's end-to-end tests (a live uvicorn server, Chromium
driven by Playwright): see chat/tests/browser/conftest.py."""

from chat.tests.browser.conftest import (  # noqa: F401 (fixtures and the report hook)
    app_server,
    browser,
    chromium_path,
    fake_upstream,
    page,
    pytest_runtest_makereport,
)
