"""Share links in Chromium (issue 13): share a conversation from the chat page, copy the
link, open it as another signed-in person, and continue it as their own chat."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import FAKE_1, chat_requests, choose_model, send, sign_up, wait_until_done

pytestmark = pytest.mark.browser


def test_share_copy_open_as_someone_else_and_continue(
    page: Page, browser: Browser, app_server: AppServer
) -> None:
    owner = sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(app_server.upstream, ["Try **Lisbon**."], model="fake-model-1")
    wait_until_done(send(page, "Where should I go in May?"))

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_server.url)
    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share this conversation")
    expect(dialog.get_by_label("Signed-in users of this site")).to_be_checked()
    dialog.get_by_role("button", name="Create link").click()
    link_field = dialog.get_by_label("Link", exact=True)
    expect(link_field).to_have_value(re.compile(rf"^{app_server.url}/s/[A-Za-z0-9_-]{{43}}/$"))
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    url = page.evaluate("navigator.clipboard.readText()")
    assert url == link_field.input_value()

    # Someone else, in a browser of their own.
    context = browser.new_context(base_url=app_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    context.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        viewer = context.new_page()
        sign_up(viewer)
        viewer.goto(url)
        expect(viewer.get_by_role("heading", level=1)).to_have_text("Where should I go in May?")
        expect(viewer.locator("article.msg-reply strong")).to_have_text("Lisbon")
        assert owner not in viewer.content()

        viewer.get_by_role("button", name="Continue in my chats").click()
        expect(viewer).to_have_url(re.compile(rf"^{app_server.url}/c/\d+/$"))
        expect(viewer.get_by_text("This is your own copy")).to_be_visible()
        install_openai_stream(app_server.upstream, ["Porto, too."], model="fake-model-1")
        wait_until_done(send(viewer, "And in June?"))
        sent = json.loads(chat_requests(app_server.upstream)[-1].body)["messages"]
        assert [m["content"] for m in sent] == [
            "Where should I go in May?",
            "Try **Lisbon**.",
            "And in June?",
        ]
    finally:
        context.close()
    assert not errors, f"JavaScript errors or CSP violations: {errors}"
