"""A temporary chat in a real browser (issue 13): turned on from the top bar, it says it
is not saved, keeps its history in the page (each question carries the chat so far),
Stop works, and a reload leaves nothing behind: not in the thread, not in the list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import (
    FAKE_1,
    chat_requests,
    choose_model,
    send,
    sign_up,
    wait_for_chat,
    wait_until_done,
)

pytestmark = pytest.mark.browser

BANNER = "Temporary chat: not saved. Closing or reloading this page loses it."


def test_a_temporary_chat_carries_its_history_stops_and_is_gone_after_a_reload(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    sign_up(page)
    sidebar = page.get_by_role("navigation", name="Conversations")
    sidebar_before = sidebar.locator("#conversation-list").inner_text()

    toggle = page.get_by_role("button", name="Temporary chat")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_text(BANNER)).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("status").filter(has_text=BANNER)).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?temporary=1$"))
    expect(page.get_by_role("button", name="Attach files")).to_be_hidden()
    choose_model(page, FAKE_1)

    install_openai_stream(upstream, ["Paris ", "is the capital."], model="fake-model-1")
    sent_before = len(chat_requests(upstream))
    first = send(page, "What is the capital of France?")
    wait_until_done(first)
    expect(first).to_contain_text("Paris is the capital.")
    install_openai_stream(upstream, ["About ", "2 million."], model="fake-model-1")
    second = send(page, "How many people live there?")
    wait_until_done(second)
    expect(second).to_contain_text("About 2 million.")

    asked = [r.json()["messages"] for r in chat_requests(upstream)[sent_before:]]
    assert [m for m in asked[1] if m["role"] != "system"] == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital."},
        {"role": "user", "content": "How many people live there?"},
    ]
    # Nothing to edit, regenerate or fork: none of it exists on the server.
    expect(page.locator("article.msg [data-action=edit]:visible")).to_have_count(0)
    expect(page.locator("article.msg [data-action=regenerate]:visible")).to_have_count(0)

    install_openai_stream(
        upstream, [f"word{i} " for i in range(300)], pause=0.1, model="fake-model-1"
    )
    third = send(page, "Tell me a very long story.")
    expect(third.locator(".stream-text")).to_contain_text("word3 ")
    page.get_by_role("button", name="Stop").click()
    wait_until_done(third, "stopped", timeout=5_000)
    assert "word299" not in third.inner_text()
    upstream_request = chat_requests(upstream)[-1]
    assert upstream_request.client_closed.wait(5), "the upstream stream was not closed"
    assert sidebar.locator("#conversation-list").inner_text() == sidebar_before

    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg")).to_have_count(0)
    expect(page.get_by_role("button", name="Temporary chat")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert sidebar.locator("#conversation-list").inner_text() == sidebar_before
    page.goto("/")
    wait_for_chat(page)
    assert sidebar.locator("#conversation-list").inner_text() == sidebar_before
