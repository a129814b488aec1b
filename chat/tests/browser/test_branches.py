"""Branches and compare in Chromium (issue 11): edit an early message and switch between
the two versions (remembered after a reload); compare three models side by side, pick
the second and go on with it."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import (
    FAKE_1,
    FAKE_2,
    LOCAL,
    LOCAL_REPLY_TIMEOUT,
    chat_requests,
    choose_model,
    send,
    sign_up,
    wait_for_chat,
    wait_until_done,
)

pytestmark = pytest.mark.browser


def sent_messages(app_server: AppServer) -> list[dict[str, object]]:
    """The history the fake model received in the last request."""
    return json.loads(chat_requests(app_server.upstream)[-1].body)["messages"]


def thread_texts(page: Page) -> list[str]:
    return [
        " ".join(text.split())
        for text in page.locator("#thread-inner > article.msg [data-content]").all_inner_texts()
    ]


def test_edit_an_early_message_then_switch_between_the_two_branches(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(app_server.upstream, ["Red."], model="fake-model-1")
    wait_until_done(send(page, "Name a colour."))
    install_openai_stream(app_server.upstream, ["Blue."], model="fake-model-1")
    wait_until_done(send(page, "Another one."))
    assert thread_texts(page) == ["Name a colour.", "Red.", "Another one.", "Blue."]

    first = page.locator("article.msg-user").first
    first.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("textbox", name="Edit your message").fill("Name a fruit.")
    install_openai_stream(app_server.upstream, ["Apple."], model="fake-model-1")
    page.get_by_role("button", name="Save and send").click()

    # The new branch: the edited message and its answer, with "2 / 2" under the message.
    expect(page.locator("article.msg-user").first.locator("[data-branch-count]")).to_have_text(
        "2 / 2"
    )
    assert thread_texts(page) == ["Name a fruit.", "Apple."]
    assert sent_messages(app_server) == [{"role": "user", "content": "Name a fruit."}]

    page.locator("article.msg-user").first.get_by_role("button", name="Previous version").click()
    expect(page.locator("article.msg-user").first.locator("[data-branch-count]")).to_have_text(
        "1 / 2"
    )
    assert thread_texts(page) == ["Name a colour.", "Red.", "Another one.", "Blue."]

    page.reload()  # the branch looked at last is remembered
    wait_for_chat(page)
    assert thread_texts(page) == ["Name a colour.", "Red.", "Another one.", "Blue."]
    page.locator("article.msg-user").first.get_by_role("button", name="Next version").click()
    expect(page.locator("article.msg-reply")).to_have_count(1)
    assert thread_texts(page) == ["Name a fruit.", "Apple."]


def test_compare_three_models_pick_the_second_and_continue(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    page.get_by_role("button", name="Compare", exact=True).click()
    dialog = page.get_by_role("dialog", name="Compare models")
    dialog.locator(f'input[value="{LOCAL}"]').check()
    dialog.locator(f'input[value="{FAKE_2}"]').check()
    dialog.get_by_role("button", name="Compare", exact=True).click()
    expect(page.locator("#compare-note")).to_have_text("Comparing 3 models")

    page.get_by_role("textbox", name="Message", exact=True).fill("Say hello.")
    page.get_by_role("textbox", name="Message", exact=True).press("Enter")
    columns = page.locator("[data-compare] article.msg-reply")
    expect(columns).to_have_count(3)
    expect(columns.nth(0)).to_have_attribute("data-model", "fake-model-1")
    expect(columns.nth(1)).to_have_attribute("data-provider", "local")
    expect(columns.nth(2)).to_have_attribute("data-model", "fake-model-2")
    for i in range(3):
        wait_until_done(columns.nth(i), timeout=LOCAL_REPLY_TIMEOUT)
    local_text = (
        columns.nth(1).locator("template[data-source]").evaluate("t => t.content.textContent")
    )
    assert local_text.strip()

    # Side by side on a wide screen.
    boxes = [columns.nth(i).bounding_box() for i in range(3)]
    assert boxes[0]["y"] == pytest.approx(boxes[1]["y"], abs=4)
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]

    columns.nth(1).get_by_role("button", name="Continue with this one").click()
    expect(page.locator("[data-compare]")).to_have_count(0)
    expect(page.locator("article.msg-reply")).to_have_count(1)
    expect(page.locator("article.msg-reply")).to_have_attribute("data-provider", "local")

    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_role("dialog", name="Compare models").get_by_role(
        "button", name="Stop comparing"
    ).click()
    install_openai_stream(app_server.upstream, ["Went on."], model="fake-model-1")
    wait_until_done(send(page, "And then?"))
    history = sent_messages(app_server)
    assert history[-3]["content"] == "Say hello."
    assert history[-2] == {"role": "assistant", "content": local_text}
    assert history[-1]["content"] == "And then?"


def test_compare_columns_stack_on_a_phone(page: Page, app_server: AppServer) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    sign_up(page)
    choose_model(page, FAKE_1)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_role("dialog", name="Compare models").locator(f'input[value="{FAKE_2}"]').check()
    page.get_by_role("dialog", name="Compare models").get_by_role(
        "button", name="Compare", exact=True
    ).click()
    page.get_by_role("textbox", name="Message", exact=True).fill("Hi")
    page.get_by_role("textbox", name="Message", exact=True).press("Enter")
    columns = page.locator("[data-compare] article.msg-reply")
    expect(columns).to_have_count(2)
    wait_until_done(columns.nth(0))
    wait_until_done(columns.nth(1))
    expect(columns.nth(1).locator(".msg-ttft")).to_be_visible()  # the server's columns
    first, second = columns.nth(0).bounding_box(), columns.nth(1).bounding_box()
    assert second["y"] >= first["y"] + first["height"] - 1  # stacked, not side by side
    assert second["x"] + second["width"] <= 390 + 1  # nothing runs off the screen


def test_stop_in_one_compared_column_stops_only_that_reply(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    page.get_by_role("button", name="Compare", exact=True).click()
    dialog = page.get_by_role("dialog", name="Compare models")
    dialog.locator(f'input[value="{FAKE_2}"]').check()
    dialog.get_by_role("button", name="Compare", exact=True).click()
    for _ in range(2):
        install_openai_stream(
            app_server.upstream, [f"w{i} " for i in range(40)], pause=0.1, model="fake-model-1"
        )
    page.get_by_role("textbox", name="Message", exact=True).fill("Count slowly.")
    page.get_by_role("textbox", name="Message", exact=True).press("Enter")
    columns = page.locator("[data-compare] article.msg-reply")
    expect(columns).to_have_count(2)
    expect(columns.nth(1)).to_contain_text("w2")
    # Reachable while it streams, named after its model.
    page.get_by_role("button", name="Stop fake-model-2").click()
    wait_until_done(columns.nth(1), "stopped")
    expect(columns.nth(0)).to_have_attribute("data-status", "streaming")
    wait_until_done(columns.nth(0))
    expect(columns.nth(0)).to_contain_text("w39")
    expect(page.get_by_role("button", name="Continue with this one (fake-model-2)")).to_be_visible()


def test_keyboard_focus_stays_on_the_version_arrows(page: Page, app_server: AppServer) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(app_server.upstream, ["One."], model="fake-model-1")
    reply = send(page, "Say something.")
    wait_until_done(reply)
    install_openai_stream(app_server.upstream, ["Two."], model="fake-model-1")
    reply.get_by_role("button", name="Regenerate").click()
    expect(page.locator("article.msg-reply [data-branch-count]")).to_have_text("2 / 2")
    page.get_by_role("button", name="Previous version").focus()
    page.keyboard.press("Enter")
    expect(page.locator("article.msg-reply [data-branch-count]")).to_have_text("1 / 2")
    expect(page.get_by_role("button", name="Next version")).to_be_focused()
