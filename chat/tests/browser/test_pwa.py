"""The installable web app in Chromium: the service worker (templates/chat/sw.js) installs
from any page, stores no conversation, and when the server cannot be reached the page
opens as the offline page, which goes back to the page by itself once online again; an
open page says when the browser goes offline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import AppServer
from .test_chat_e2e import sign_up

pytestmark = pytest.mark.browser


@pytest.fixture
def app_page(browser: Browser, app_server: AppServer) -> Iterator[Page]:
    """A fresh context that lets service workers run (whatever the shared fixture does);
    a JavaScript error in the page fails the test."""
    context = browser.new_context(base_url=app_server.url, service_workers="allow")
    context.set_default_timeout(10_000)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    page = context.new_page()
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def test_the_app_opens_offline_as_the_offline_page_and_comes_back_by_itself(
    app_page: Page, app_server: AppServer
) -> None:
    page = app_page
    username = sign_up(page)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")

    # Only the shell is stored: the offline page and static files, no conversation page.
    stored = page.evaluate(
        """async () => {
          const urls = [];
          for (const name of await caches.keys()) {
            const cache = await caches.open(name);
            for (const request of await cache.keys()) urls.push(new URL(request.url).pathname);
          }
          return urls;
        }"""
    )
    assert "/offline/" in stored
    assert [url for url in stored if url != "/offline/" and not url.startswith("/static/")] == []

    page.context.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are offline")
    expect(page.get_by_role("link", name="Try again")).to_be_visible()
    assert username not in page.content()

    page.context.set_offline(False)
    expect(page.get_by_role("heading", level=1)).to_have_text("New chat")

    # Offline with the page open: a banner says so, and goes when the connection is back.
    banner = page.get_by_role("status").filter(has_text="You are offline.")
    page.context.set_offline(True)
    expect(banner).to_be_visible()
    page.context.set_offline(False)
    expect(banner).to_be_hidden()
