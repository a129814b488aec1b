"""How replies end, as a person sees it in Chromium (issue 8): a reply cut by the token
limit says so and offers Continue; the model's reasoning sits collapsed above the
answer; every failed reply offers Retry; Copy gives the Markdown source and each code
block has its own Copy; right-to-left replies read right to left; sending into a
conversation deleted in another tab says so and offers a way out."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from chat.tests.fakes.openai_fake import (
    DONE,
    chunk,
    install_openai_error,
    install_openai_stream,
)
from chat.tests.fakes.server import StreamResponse, sse

from .conftest import AppServer
from .test_chat_e2e import FAKE_1, choose_model, send, sign_up, wait_for_chat, wait_until_done

pytestmark = pytest.mark.browser

CHAT_ROUTE = "/v1/chat/completions"


def test_a_reply_cut_by_the_token_limit_says_so_and_continue_appends_to_it(
    page: Page, app_server: AppServer
) -> None:
    install_openai_stream(
        app_server.upstream, ["The first ", "half"], finish_reason="length", model="fake-model-1"
    )
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Tell me everything.")
    wait_until_done(reply, "incomplete")
    expect(reply.locator("[data-notice]")).to_contain_text("token limit")
    expect(reply.locator("[data-status-label]")).to_have_text("Incomplete")

    page.reload()  # the reason is stored, not only streamed
    wait_for_chat(page)
    reply = page.locator("article.msg-reply").last
    expect(reply.locator("[data-notice]")).to_contain_text("token limit")
    continue_button = reply.get_by_role("button", name="Continue")
    expect(continue_button).to_be_visible()

    install_openai_stream(app_server.upstream, [" and the second half."], model="fake-model-1")
    continue_button.click()
    wait_until_done(reply)
    expect(reply.locator(".md")).to_have_text("The first half and the second half.")
    expect(reply.locator("[data-notice]")).to_be_hidden()
    expect(page.locator("article.msg-reply")).to_have_count(1)
    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg-reply .md")).to_have_text(
        "The first half and the second half."
    )


def _reasoning_stream() -> StreamResponse:
    def chunks() -> list[bytes]:
        parts = [
            chunk("c1", model="fake-model-1", delta={"role": "assistant", "content": ""}),
            chunk("c1", model="fake-model-1", delta={"reasoning_content": "The person greets. "}),
            chunk("c1", model="fake-model-1", delta={"reasoning_content": "Greet back."}),
            chunk("c1", model="fake-model-1", delta={"content": "Hello!"}),
            chunk("c1", model="fake-model-1", finish_reason="stop"),
        ]
        return [sse(part) for part in parts] + [DONE]

    return StreamResponse(chunks)


def test_reasoning_shows_collapsed_above_the_answer_also_after_reload(
    page: Page, app_server: AppServer
) -> None:
    app_server.upstream.add("POST", CHAT_ROUTE, _reasoning_stream())
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Hi")
    wait_until_done(reply)
    expect(reply.locator(".md")).to_have_text("Hello!")
    thoughts = reply.locator("details[data-reasoning]")
    expect(thoughts).to_be_visible()
    expect(thoughts).not_to_have_attribute("open", "")
    expect(thoughts.locator("[data-reasoning-text]")).to_be_hidden()  # collapsed

    page.reload()
    wait_for_chat(page)
    thoughts = page.locator("article.msg-reply details[data-reasoning]").last
    thoughts.locator("summary").click()
    expect(thoughts.locator("[data-reasoning-text]")).to_have_text("The person greets. Greet back.")
    assert "Greet back" not in page.locator("article.msg-reply .md").last.inner_text()


def test_every_failed_reply_offers_retry_and_retry_answers_in_place(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    install_openai_error(upstream, 500, "boom")
    sign_up(page)
    choose_model(page, FAKE_1)
    first = send(page, "What is the capital of France?")
    wait_until_done(first, "error")
    install_openai_stream(upstream, ["Four."], model="fake-model-1")
    second = send(page, "And 2+2?")
    wait_until_done(second)
    retry = first.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()  # not only on the newest reply

    install_openai_stream(upstream, ["Paris."], model="fake-model-1")
    retry.click()
    wait_until_done(first)
    expect(first.locator(".md")).to_have_text("Paris.")
    expect(first.locator("[data-error]")).to_be_hidden()
    expect(page.locator("article.msg-reply")).to_have_count(2)
    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg-reply .md").first).to_have_text("Paris.")


SOURCE = (
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n\nMath: $x^2$ and \\(y\\)."
)


def test_copy_gives_the_markdown_source_and_a_code_block_alone(
    page: Page, app_server: AppServer
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    install_openai_stream(
        app_server.upstream,
        [SOURCE[i : i + 9] for i in range(0, len(SOURCE), 9)],
        model="fake-model-1",
    )
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Show me a table and code.")
    wait_until_done(reply)
    reply.get_by_role("button", name="Copy", exact=True).click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == SOURCE.strip()

    reply.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()").strip() == "print('hi')"

    page.reload()  # the source survives a reload too
    wait_for_chat(page)
    page.locator("article.msg-reply").last.get_by_role("button", name="Copy", exact=True).click()
    assert page.evaluate("navigator.clipboard.readText()") == SOURCE.strip()


def test_a_right_to_left_reply_reads_right_to_left(page: Page, app_server: AppServer) -> None:
    install_openai_stream(app_server.upstream, ["مرحبا بك", " في الدردشة"], model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "سلام")
    wait_until_done(reply)
    direction = reply.locator(".md p").first.evaluate("el => getComputedStyle(el).direction")
    assert direction == "rtl"
    user_direction = page.locator("article.msg-user [data-content]").last.evaluate(
        "el => getComputedStyle(el).direction"
    )
    assert user_direction == "rtl"


def test_sending_into_a_conversation_deleted_in_another_tab_says_so(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Hello"))
    other = page.context.new_page()
    other.goto(page.url)
    wait_for_chat(other)
    other.locator("li.is-current button[data-action=delete]").click()
    other.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(other.locator("li.is-current")).to_have_count(0)
    other.close()

    page.get_by_role("textbox", name="Message", exact=True).fill("Are you still there?")
    page.get_by_role("textbox", name="Message", exact=True).press("Enter")
    error = page.locator("#composer-error")
    expect(error).to_contain_text("no longer exists")
    expect(error.get_by_role("link", name="Start a new chat")).to_be_visible()
    # Nothing typed is lost, and the sidebar catches up.
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_have_value(
        "Are you still there?"
    )
    expect(page.locator("li.is-current")).to_have_count(0)
    expect(page.locator("article.msg-reply")).to_have_count(1)
