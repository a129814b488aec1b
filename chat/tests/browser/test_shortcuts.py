"""The chat page's keyboard shortcuts, pressed in Chromium (static/chat/js/shortcuts.js;
Linux, so Ctrl): the list of them, search, a new chat, Esc stopping a reply, and copying
the last reply, each through the page's own buttons."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import FAKE_1, choose_model, message_box, send, sign_up, wait_until_done

pytestmark = pytest.mark.browser


def test_shortcuts_open_their_list_search_and_start_a_new_chat(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Hello")  # the fake model's short answer: now a conversation
    wait_until_done(reply)
    expect(page).to_have_url(re.compile(r"/c/\d+/$"))

    page.keyboard.press("Control+/")
    shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(shortcuts).to_be_visible()
    expect(shortcuts.get_by_role("row", name="New chat")).to_contain_text("Ctrl+Shift+O")
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()
    page.get_by_role("button", name="Keyboard shortcuts").click()  # the same list
    expect(shortcuts).to_be_visible()
    shortcuts.get_by_role("button", name="Close").click()
    expect(shortcuts).to_be_hidden()

    message_box(page).press("/")  # typing: "/" is text there
    expect(message_box(page)).to_have_value("/")
    message_box(page).press("Control+k")
    expect(page.get_by_role("searchbox", name="Search conversations")).to_be_focused()

    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(f"{app_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("New chat")


def test_esc_stops_the_reply_and_a_shortcut_copies_the_last_reply(
    page: Page, app_server: AppServer
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_server.url)
    words = [f"word{i} " for i in range(300)]
    install_openai_stream(app_server.upstream, words, pause=0.1, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    page.keyboard.press("Control+Shift+Semicolon")
    expect(page.get_by_text("There is no reply to copy yet.")).to_be_visible()

    reply = send(page, "Tell me a very long story.")
    expect(reply.locator(".stream-text")).to_contain_text("word2 ")
    message_box(page).press("Escape")

    wait_until_done(reply, "stopped", timeout=5_000)
    assert "word299" not in reply.inner_text()
    page.keyboard.press("Escape")
    expect(page.get_by_text("No reply is being written.")).to_be_visible()
    page.keyboard.press("Control+Shift+Semicolon")
    expect(page.get_by_text("The last reply was copied.")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("word0 word1 word2")
    assert copied == reply.locator("[data-content]").inner_text().strip()
