"""Folders, pins and the archive in Chromium (issue 13): make a folder with a system prompt
and a model, start a chat in it (the model gets the prompt), pin the chat, filter the
list by folder, archive the chat and bring it back from the archive."""

from __future__ import annotations

import json
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


def show(page: Page, option: str) -> None:
    """Pick ``option`` in the folder filter; the list shows it at once (a new page)."""
    before = page.url
    page.get_by_label("Folder", exact=True).select_option(label=option)
    page.wait_for_url(lambda url: url != before)
    wait_for_chat(page)


def open_menu(page: Page, title: str) -> None:
    page.get_by_role("navigation", name="Conversations").get_by_role(
        "button", name=f"More actions {title}"
    ).click()


def test_a_chat_in_a_folder_gets_its_prompt_and_can_be_pinned_archived_and_filtered(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(app_server.upstream, ["Hello."], model="fake-model-1")
    wait_until_done(send(page, "Outside chat"))
    nav = page.get_by_role("navigation", name="Conversations")

    # A folder with its own instructions and model.
    page.get_by_role("button", name="New folder").click()
    dialog = page.get_by_role("dialog", name="New folder")
    dialog.get_by_label("Name").fill("Pirates")
    dialog.get_by_label("Instructions for new chats").fill("Talk like a pirate.")
    dialog.get_by_label("Model for new chats").select_option("fakeai::fake-model-2")
    dialog.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/\?folder=\d+$"))
    wait_for_chat(page)
    expect(page.get_by_label("Folder", exact=True).locator("option:checked")).to_have_text(
        "Pirates"
    )
    expect(page.get_by_text("This chat will be in the folder “Pirates”.")).to_be_visible()
    expect(nav.get_by_role("link", name="Outside chat")).to_have_count(0)  # filtered

    # A new chat there starts on the folder's model, with its system prompt.
    expect(page.get_by_label("Model", exact=True)).to_have_value("fakeai::fake-model-2")
    install_openai_stream(app_server.upstream, ["Arr!"], model="fake-model-2")
    wait_until_done(send(page, "Ahoy"))
    request = json.loads(chat_requests(app_server.upstream)[-1].body)
    assert request["model"] == "fake-model-2"
    assert request["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    expect(page).to_have_url(re.compile(r"/c/\d+/\?folder=\d+$"))

    # Pin it, with the keyboard: the menu opens under it, Escape gives the focus back.
    more = nav.get_by_role("button", name="More actions Ahoy")
    more.focus()
    page.keyboard.press("Enter")
    expect(more).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("button", name="Pin", exact=True)).to_be_focused()
    page.keyboard.press("Escape")
    expect(more).to_be_focused()
    expect(more).to_have_attribute("aria-expanded", "false")
    open_menu(page, "Ahoy")
    nav.get_by_role("button", name="Pin", exact=True).click()
    expect(page.locator("#pinned-list")).to_contain_text("Ahoy")
    expect(nav.get_by_role("heading", name="Pinned")).to_be_visible()

    # All conversations: the pinned one leads the list, after a reload too.
    show(page, "All conversations")
    expect(nav.get_by_role("link", name="Outside chat")).to_be_visible()
    expect(page.locator("#pinned-list")).to_contain_text("Ahoy")
    expect(page.locator("#conversation-list > li.conv")).to_have_count(1)  # only "Outside chat"

    # Archive it: it leaves the list; the archive lists it until it is unarchived.
    open_menu(page, "Ahoy")
    nav.get_by_role("button", name="Archive", exact=True).click()
    expect(nav.get_by_role("link", name="Ahoy")).to_have_count(0)
    show(page, "Archived")
    expect(nav.get_by_role("heading", name="Archived")).to_be_visible()
    expect(nav.get_by_role("link", name="Outside chat")).to_have_count(0)
    open_menu(page, "Ahoy")
    nav.get_by_role("button", name="Unarchive").click()
    expect(nav.get_by_role("link", name="Ahoy")).to_have_count(0)
    # The archive is empty now, and says so as a reload would (it went blank).
    expect(nav.locator(".conv-empty")).to_have_text("No archived conversations.")
    show(page, "All conversations")
    expect(page.locator("#pinned-list")).to_contain_text("Ahoy")
