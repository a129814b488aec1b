"""The first hour of a new user, in Chromium (issue 9): settings before the first
message, renaming to a blank title, a phone's keyboard, and very long messages."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import (
    FAKE_1,
    chat_requests,
    choose_model,
    message_box,
    send,
    sign_up,
    wait_for_chat,
    wait_until_done,
)

pytestmark = pytest.mark.browser


def test_settings_chosen_on_a_new_chat_apply_to_its_first_message(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    sign_up(page)
    choose_model(page, FAKE_1)
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    dialog.get_by_label("System prompt").fill("Answer like a pirate.")
    dialog.get_by_label("Temperature").fill("0.4")
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#settings-note")).to_be_visible()

    before = len(chat_requests(upstream))
    install_openai_stream(upstream, ["Arr."], model="fake-model-1")
    wait_until_done(send(page, "Hello"))
    body = upstream.wait_for_requests(before + 1)[-1].json()
    assert body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert body["temperature"] == 0.4

    page.reload()
    wait_for_chat(page)
    page.get_by_role("button", name="Settings").click()
    expect(
        page.get_by_role("dialog", name="Conversation settings").get_by_label("System prompt")
    ).to_have_value("Answer like a pirate.")


def test_renaming_to_a_blank_title_keeps_the_dialog_open_with_the_reason(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Plan my week"))
    page.locator("li.is-current button[data-action=rename]").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("   ")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("alert")).to_have_text("The title cannot be empty.")
    dialog.get_by_label("Title").fill("Weekly plan")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("li.is-current .conv-link")).to_have_text("Weekly plan")
    expect(page.get_by_role("heading", level=1)).to_have_text("Weekly plan")


def test_on_a_phone_return_makes_a_new_line_and_send_sends(
    browser: Browser, app_server: AppServer
) -> None:
    context = browser.new_context(
        base_url=app_server.url,
        viewport={"width": 390, "height": 800},
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_up(page)
        choose_model(page, FAKE_1)
        expect(page.locator("#composer-hint")).to_contain_text("tap Send")
        expect(page.locator("#empty-state")).not_to_contain_text("Shift+Enter")
        box = message_box(page)
        box.fill("first line")
        box.press("Enter")
        box.press_sequentially("second line")
        expect(box).to_have_value("first line\nsecond line")
        expect(page.locator("article.msg-reply")).to_have_count(0)
        page.get_by_role("button", name="Send").tap()
        wait_until_done(page.locator("article.msg-reply").last)
        expect(page.locator("article.msg-user [data-content]")).to_have_text(
            "first line\nsecond line"
        )
    finally:
        context.close()


def test_a_very_long_message_folds_with_show_more(page: Page, app_server: AppServer) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    long_text = "\n".join(f"Line {i}: " + "lorem ipsum " * 8 for i in range(220))
    assert len(long_text) > 20_000
    reply = send(page, long_text)
    wait_until_done(reply)
    bubble = page.locator("article.msg-user").last
    height = bubble.bounding_box()["height"]
    assert height < 1000, f"a 20,000-character message is {height:.0f} px tall"
    bubble.get_by_role("button", name="Show more").click()
    assert bubble.bounding_box()["height"] > 2000
    bubble.get_by_role("button", name="Show less").click()
    assert bubble.bounding_box()["height"] < 1000

    page.reload()  # folded after a reload too
    wait_for_chat(page)
    assert page.locator("article.msg-user").last.bounding_box()["height"] < 1000


def test_search_results_show_the_match_and_open_at_it_keeping_the_search(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(upstream, ["Pack a raincoat for Zanzibar."], model="fake-model-1")
    wait_until_done(send(page, "Trip advice?"))
    for i in range(26):  # push the match off the newest page (50 messages)
        install_openai_stream(upstream, [f"Filler answer {i}."], model="fake-model-1")
        wait_until_done(send(page, f"filler {i}"))
    page.get_by_role("link", name="New chat").click()
    wait_for_chat(page)
    install_openai_stream(upstream, ["Zanzibar has spice farms."], model="fake-model-1")
    wait_until_done(send(page, "Tell me about spices"))

    search = page.get_by_role("searchbox", name="Search conversations")
    search.fill("zanzibar")
    search.press("Enter")
    results = page.locator("#conversation-list .conv-link")
    expect(results).to_have_count(2)
    expect(results.nth(1).locator(".conv-snippet mark")).to_have_text("Zanzibar")

    results.nth(1).click()  # the long conversation, opened at its match
    wait_for_chat(page)
    expect(page.get_by_role("searchbox", name="Search conversations")).to_have_value("zanzibar")
    hit = page.locator("article.msg.is-hit")
    expect(hit).to_contain_text("Pack a raincoat for Zanzibar.")
    expect(hit).to_be_in_viewport()
    assert page.evaluate("CSS.highlights.get('search-hit').size") == 1

    page.locator("#conversation-list .conv-link").nth(0).click()  # the next result
    wait_for_chat(page)
    expect(page.locator("#conversation-list .conv-link")).to_have_count(2)
    expect(page.locator("article.msg.is-hit")).to_contain_text("Zanzibar has spice farms.")


def test_a_setting_the_chosen_model_does_not_take_is_disabled_with_the_reason(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    # The server marks such models in the menu (Claude, OpenAI's reasoning models: see
    # chat/tests/test_model_default.py); here one fake model is marked the same way.
    page.evaluate(
        """() => {
          const option = document.querySelector('option[value="fakeai::fake-model-2"]');
          option.dataset.noTemperature = "this model uses a fixed temperature";
        }"""
    )
    choose_model(page, "fakeai::fake-model-2")
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    expect(dialog.get_by_label("Temperature")).to_be_disabled()
    expect(dialog).to_contain_text("this model uses a fixed temperature")
    dialog.get_by_role("button", name="Cancel").click()

    choose_model(page, FAKE_1)  # changing the model updates the dialog
    page.get_by_role("button", name="Settings").click()
    expect(dialog.get_by_label("Temperature")).to_be_enabled()
    expect(dialog).not_to_contain_text("this model uses a fixed temperature")


def test_a_message_over_the_limit_is_refused_whole_not_cut_silently(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    too_long = "x" * 100_001  # CHAT_MAX_MESSAGE_CHARS is 100,000 by default
    message_box(page).fill(too_long)
    assert len(message_box(page).input_value()) == 100_001  # nothing cut on the way in
    message_box(page).press("Enter")
    expect(page.locator("#composer-error")).to_contain_text("too long")
    assert len(message_box(page).input_value()) == 100_001  # nothing lost
    expect(page.locator("article.msg-user")).to_have_count(0)


def test_a_new_chat_starts_on_the_model_this_person_used_last(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    menu = page.get_by_label("Model", exact=True)
    # This server's admin default is the local model (CHAT_DEFAULT_PROVIDER=local, see
    # conftest.py): a first chat starts there; the order of the rules is unit-tested in
    # chat/tests/test_model_default.py.
    expect(menu).to_have_value("local::smollm2-135m-instruct")
    choose_model(page, "fakeai::fake-model-2")
    expect(menu.locator("option:checked")).to_have_text("FakeAI · fake-model-2")
    wait_until_done(send(page, "Hello"))
    page.get_by_role("link", name="New chat").click()
    wait_for_chat(page)
    expect(menu).to_have_value("fakeai::fake-model-2")
