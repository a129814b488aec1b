"""The message box while a reply is being written, in Chromium: the Send button queues
(for a mouse or a touch keyboard, where Return makes a new line), Stop keeps what is
queued unsent and puts it back in the box, a message queued when the person leaves for
another conversation is kept and said so, the focus after "Save and send" of an edit; and
the layout around the box: notices above it, the model menu wide enough for its names,
the edit box sized to its text, one keyboard hint.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import (
    FAKE_1,
    LOCAL,
    chat_requests,
    choose_model,
    message_box,
    send,
    sign_up,
    wait_for_chat,
    wait_until_done,
)
from .test_resumable import conversation_id, sidebar_item, words

pytestmark = pytest.mark.browser


def queued_messages(page: Page) -> Locator:
    return page.locator("article.msg-user.is-queued")


def box(locator: Locator) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not on screen"
    return found


# --- Queue with the button ----------------------------------------------------------------


def test_clicking_the_send_button_while_a_reply_streams_queues_the_message(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    install_openai_stream(upstream, words(30), pause=0.1, model="fake-model-1")
    install_openai_stream(upstream, ["Second answer."], model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    first = send(page, "First question.")
    expect(first.locator("[data-content]")).to_contain_text("w2")

    # Beside Stop, the button says what it does now.
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    queue = page.get_by_role("button", name="Queue", exact=True)
    expect(queue).to_be_visible()
    expect(queue).to_have_attribute("title", "Sent when the reply finishes")
    message_box(page).fill("Second question.")
    queue.click()

    expect(queued_messages(page)).to_have_count(1)
    expect(queued_messages(page)).to_contain_text("Second question.")
    expect(message_box(page)).to_have_value("")
    wait_until_done(first)
    second = page.locator("article.msg-reply").nth(1)
    wait_until_done(second)
    expect(second).to_contain_text("Second answer.")
    assert chat_requests(upstream)[-1].json()["messages"][-1] == {
        "role": "user",
        "content": "Second question.",
    }
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Queue", exact=True)).to_have_count(0)


def test_on_a_phone_tapping_queue_while_a_reply_streams_queues_the_message(
    browser: Browser, app_server: AppServer
) -> None:
    install_openai_stream(app_server.upstream, words(30), pause=0.1, model="fake-model-1")
    install_openai_stream(app_server.upstream, ["Second answer."], model="fake-model-1")
    context = browser.new_context(
        base_url=app_server.url,
        viewport={"width": 390, "height": 800},
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(10_000)
    phone = context.new_page()
    try:
        sign_up(phone)
        choose_model(phone, FAKE_1)
        message_box(phone).fill("First question.")
        phone.get_by_role("button", name="Send", exact=True).tap()
        first = phone.locator("article.msg-reply").first
        expect(first.locator("[data-content]")).to_contain_text("w2")
        message_box(phone).fill("Second question.")
        message_box(phone).press("Enter")  # a new line on a touch keyboard, nothing sent
        expect(queued_messages(phone)).to_have_count(0)

        phone.get_by_role("button", name="Queue", exact=True).tap()

        expect(queued_messages(phone)).to_have_count(1)
        expect(queued_messages(phone).locator("[data-content]")).to_have_text("Second question.")
        wait_until_done(phone.locator("article.msg-reply").nth(1))
    finally:
        context.close()


# --- Stop keeps the queue unsent ------------------------------------------------------------


def test_stop_puts_the_queued_message_back_in_the_box_instead_of_sending_it(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    install_openai_stream(upstream, words(200), pause=0.05, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    sent_before = len(chat_requests(upstream))
    reply = send(page, "Talk for a while.")
    expect(reply.locator("[data-content]")).to_contain_text("w2")
    message_box(page).fill("Queued, then stopped.")
    message_box(page).press("Enter")
    expect(queued_messages(page)).to_have_count(1)

    page.get_by_role("button", name="Stop").click()

    wait_until_done(reply, "stopped", timeout=5_000)
    expect(queued_messages(page)).to_have_count(0)
    expect(message_box(page)).to_have_value("Queued, then stopped.")
    expect(message_box(page)).to_be_focused()
    expect(page.locator(".notices")).to_contain_text("Your queued message is back in the box.")
    page.wait_for_timeout(1_000)  # time enough for a queued message to go out
    expect(page.locator("article.msg-reply")).to_have_count(1)
    assert len(chat_requests(upstream)) == sent_before + 1


# --- Leaving with a message queued ----------------------------------------------------------


def test_a_message_queued_when_leaving_for_another_conversation_is_kept_and_said_so(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "A first chat"))
    first_id = conversation_id(page)
    page.get_by_role("link", name="New chat").click()
    wait_for_chat(page)
    install_openai_stream(upstream, words(40), pause=0.1, model="fake-model-1")
    sent_before = len(chat_requests(upstream))
    reply = send(page, "Count slowly.")
    expect(reply.locator("[data-content]")).to_contain_text("w2")
    second_id = conversation_id(page)
    message_box(page).fill("Keep me.")
    message_box(page).press("Enter")
    expect(queued_messages(page)).to_have_count(1)

    page.locator(f"#conv-title-{first_id}").click()
    wait_for_chat(page)
    # Said where it is, on the page the person went to and in the list.
    expect(page.locator(".notices")).to_contain_text(
        "Your queued message for “Count slowly.” was not sent"
    )
    kept = sidebar_item(page, second_id).locator("[data-conv-queued]")
    expect(kept).to_be_visible()
    expect(kept).to_have_text("Unsent message")
    expect(message_box(page)).to_have_value("")

    sidebar_item(page, second_id).locator(".conv-link").click()
    wait_for_chat(page)
    expect(message_box(page)).to_have_value("Keep me.")
    expect(sidebar_item(page, second_id).locator("[data-conv-queued]")).to_have_count(0)
    wait_until_done(page.locator("article.msg-reply").last)
    assert len(chat_requests(upstream)) == sent_before + 1  # never sent behind the back

    # Still in the box and not sent, it is kept again when the person leaves once more.
    page.locator(f"#conv-title-{first_id}").click()
    wait_for_chat(page)
    expect(sidebar_item(page, second_id).locator("[data-conv-queued]")).to_be_visible()
    sidebar_item(page, second_id).locator(".conv-link").click()
    wait_for_chat(page)
    expect(message_box(page)).to_have_value("Keep me.")


# --- Focus after an edit ----------------------------------------------------------------


def test_save_and_send_of_an_edit_moves_the_focus_to_stop_then_to_the_message_box(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Name a colour."))
    install_openai_stream(app_server.upstream, words(20), pause=0.1, model="fake-model-1")
    page.locator("article.msg-user").last.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("textbox", name="Edit your message").fill("Name a fruit.")

    page.get_by_role("button", name="Save and send").click()

    expect(page.get_by_role("button", name="Stop")).to_be_focused()
    reply = page.locator("article.msg-reply").last
    wait_until_done(reply)
    expect(message_box(page)).to_be_focused()
    expect(page.locator("article.msg-user [data-content]")).to_have_text(["Name a fruit."])


# --- Layout around the message box ---------------------------------------------------------


def test_a_notice_does_not_cover_the_message_box(page: Page, app_server: AppServer) -> None:
    upstream = app_server.upstream
    install_openai_stream(upstream, words(15), pause=0.1, model="fake-model-1")
    install_openai_stream(upstream, ["Second answer."], model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    first = send(page, "First question.")
    expect(first.locator("[data-content]")).to_contain_text("w1")
    message_box(page).fill("Second question.\nOn two lines, the box is taller.")
    message_box(page).press("Enter")
    message_box(page).fill("A draft\nof\nfour lines")  # a taller box still

    notice = page.locator(".notice", has_text="Your queued message was sent.")
    expect(notice).to_be_visible(timeout=15_000)
    composer = box(page.locator(".composer-box"))
    assert box(notice)["y"] + box(notice)["height"] <= composer["y"], (
        f"the notice {box(notice)} covers the message box {composer}"
    )
    wait_until_done(page.locator("article.msg-reply").last)


def test_the_model_menu_shows_the_whole_model_name_at_1280_px(page: Page) -> None:
    sign_up(page)
    choose_model(page, LOCAL)
    menu = page.get_by_label("Model", exact=True)
    fits = """(select) => {
        const style = getComputedStyle(select);
        const context = document.createElement("canvas").getContext("2d");
        context.font = style.font;
        const text = context.measureText(select.selectedOptions[0].textContent).width;
        const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
        const room = select.clientWidth - padding - 16;  // 16: the arrow
        return [text, room];
    }"""
    text, room = menu.evaluate(fits)
    assert text <= room, f"'Local · smollm2-135m-instruct' needs {text:.0f} px, has {room:.0f}"


def test_the_edit_box_opens_sized_to_a_long_one_line_message_from_its_start(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    long_line = " ".join(f"word{i}" for i in range(120))  # one line, several rows wrapped
    wait_until_done(send(page, long_line))
    page.locator("article.msg-user").last.get_by_role("button", name="Edit", exact=True).click()
    editor = page.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()

    sizes = editor.evaluate(
        "el => ({scrollTop: el.scrollTop, scrollHeight: el.scrollHeight,"
        " clientHeight: el.clientHeight, lineHeight: parseFloat(getComputedStyle(el).lineHeight)})"
    )
    assert sizes["scrollTop"] == 0, f"opened scrolled down: {sizes}"
    assert sizes["scrollHeight"] <= sizes["clientHeight"] + 1, f"not sized to its text: {sizes}"
    assert sizes["clientHeight"] > 3 * sizes["lineHeight"], sizes

    # A very long one is as tall as it may be, and opens at its start too.
    page.get_by_role("button", name="Cancel").click()
    wait_until_done(send(page, " ".join(f"word{i}" for i in range(1500))))
    page.locator("article.msg-user").last.get_by_role("button", name="Edit", exact=True).click()
    sizes = editor.evaluate(
        "el => ({scrollTop: el.scrollTop, height: el.getBoundingClientRect().height,"
        " viewport: window.innerHeight})"
    )
    assert sizes["scrollTop"] == 0, sizes
    assert sizes["height"] <= sizes["viewport"] * 0.6, f"taller than it may be: {sizes}"


def test_the_empty_chat_gives_the_keyboard_hint_once(page: Page) -> None:
    sign_up(page)
    hints = page.get_by_text(re.compile(r"Shift\+Enter"))
    expect(hints.filter(visible=True)).to_have_count(1)


def test_a_double_click_on_send_sends_the_message_once(page: Page, app_server: AppServer) -> None:
    install_openai_stream(app_server.upstream, words(20), pause=0.1, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    asked_before = len(chat_requests(app_server.upstream))
    message_box(page).fill("Only once, please.")
    page.get_by_role("button", name="Send", exact=True).dblclick()
    reply = page.locator("article.msg-reply")
    expect(reply).to_have_count(1)
    wait_until_done(reply.first)
    expect(page.locator("article.msg-user")).to_have_count(1)
    expect(queued_messages(page)).to_have_count(0)
    assert len(chat_requests(app_server.upstream)) == asked_before + 1
