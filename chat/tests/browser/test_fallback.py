"""Fallback in Chromium (issue 12): a person picks a fallback model in a new chat's
settings; the chosen model's provider answers 503 before any text, the fallback model
answers, and the reply says so, live and after a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from chat.tests.fakes.openai_fake import install_openai_error, install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import FAKE_1, chat_requests, choose_model, send, sign_up, wait_until_done

pytestmark = pytest.mark.browser

NOTE = "Answered by fake-model-2: fake-model-1 was unavailable."


def test_the_fallback_model_answers_and_the_reply_says_so(
    page: Page, app_server: AppServer
) -> None:
    install_openai_error(app_server.upstream, 503, "overloaded")
    install_openai_stream(app_server.upstream, ["Here ", "I am."], model="fake-model-2")
    sign_up(page)
    choose_model(page, FAKE_1)
    page.get_by_role("button", name="Settings").click()
    page.get_by_label("Fallback model").select_option("fakeai/fake-model-2")
    page.get_by_role("button", name="Save settings").click()

    reply = send(page, "Anyone there?")
    wait_until_done(reply)
    expect(reply.locator("[data-content]")).to_have_text("Here I am.")
    expect(reply.locator("[data-fallback]")).to_have_text(NOTE)
    expect(reply.locator("[data-model-label]")).to_contain_text("fake-model-2")
    assert [r.json()["model"] for r in chat_requests(app_server.upstream)[-2:]] == [
        "fake-model-1",
        "fake-model-2",
    ]

    page.reload()
    reply = page.locator("article.msg-reply").last
    expect(reply.locator("[data-fallback]")).to_have_text(NOTE)
    expect(reply.locator("[data-model-label]")).to_contain_text("fake-model-2")
