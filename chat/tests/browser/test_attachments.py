"""Attachments in Chromium (see conftest.py): paste an image and see its chip, drop a
file on the message box, attach and remove a file with the button, a refusal in the
composer, send an image to a (fake) vision model and find its thumbnail after a reload,
a phone-width composer with chips, and another person getting 404 for our file."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import FAKE_1, chat_requests, choose_model, message_box, sign_up

pytestmark = pytest.mark.browser

expect.set_options(timeout=10_000)


def png(size: tuple[int, int] = (60, 40), colour: tuple[int, int, int] = (20, 120, 220)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def paste_file(page: Page, name: str, data: bytes, mime: str) -> None:
    """Paste a file into the message box, as a screenshot tool's clipboard does."""
    page.locator("#message-input").focus()
    page.evaluate(
        """([name, b64, mime]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const data = new DataTransfer();
          data.items.add(new File([bytes], name, { type: mime }));
          const init = { clipboardData: data, bubbles: true, cancelable: true };
          document.getElementById("message-input").dispatchEvent(new ClipboardEvent("paste", init));
        }""",
        [name, base64.b64encode(data).decode(), mime],
    )


def ready_chip(page: Page, name: str) -> Locator:
    chip = page.locator(".attach-chip", has_text=name)
    expect(chip).to_have_attribute("data-state", "ready")
    return chip


def test_a_pasted_image_shows_as_a_chip_with_its_thumbnail(page: Page) -> None:
    sign_up(page)
    paste_file(page, "image.png", png(), "image/png")
    chips = page.get_by_role("list", name="Attached files")
    expect(chips).to_be_visible()
    chip = ready_chip(page, "image.png")
    thumb = chip.locator(".attach-thumb img")
    expect(thumb).to_have_attribute("src", re.compile(r"^/attachments/\d+/\?size=thumb$"))
    assert thumb.evaluate("img => img.complete && img.naturalWidth") == 60
    expect(chip.get_by_role("button", name="Remove image.png")).to_be_visible()
    expect(message_box(page)).to_have_value("")  # the file, not its name, was pasted


def test_a_file_dropped_on_the_message_box_is_attached(page: Page) -> None:
    sign_up(page)
    page.evaluate(
        """() => {
          const data = new DataTransfer();
          data.items.add(new File(["a,b\\n1,2\\n"], "table.csv", { type: "text/csv" }));
          const composer = document.getElementById("composer");
          for (const type of ["dragenter", "dragover", "drop"]) {
            composer.dispatchEvent(
              new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }),
            );
          }
        }"""
    )
    chip = ready_chip(page, "table.csv")
    expect(chip.locator(".attach-meta")).to_have_text("8 B")
    expect(page.locator("#composer")).not_to_have_class(re.compile("is-dragover"))


def test_a_file_attached_with_the_button_can_be_removed(page: Page) -> None:
    sign_up(page)
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files(
        files=[{"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n"}]
    )
    chip = ready_chip(page, "notes.md")
    expect(chip.locator(".att-icon")).to_have_text("TXT")
    url = f"/attachments/{chip.get_attribute('data-attachment-id')}/"
    assert page.request.get(url).status == 200

    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        chip.get_by_role("button", name="Remove notes.md").click()
    assert deleted.value.status == 204
    expect(page.locator(".attach-chip")).to_have_count(0)
    expect(page.get_by_role("list", name="Attached files")).to_be_hidden()
    assert page.request.get(url).status == 404


def test_a_refused_file_is_explained_in_the_composer(page: Page) -> None:
    sign_up(page)
    paste_file(page, "photo.png", b"%PDF-1.4 this is no image", "image/png")
    expect(page.locator("#composer-error")).to_contain_text("photo.png")
    expect(page.locator("#composer-error")).to_contain_text("not what its extension says")
    expect(page.locator(".attach-chip")).to_have_count(0)


def test_another_person_gets_404_for_our_file(
    page: Page, browser: Browser, app_server: AppServer
) -> None:
    sign_up(page)
    paste_file(page, "private.png", png(), "image/png")
    chip = ready_chip(page, "private.png")
    url = f"/attachments/{chip.get_attribute('data-attachment-id')}/"
    assert page.request.get(url).status == 200

    other = browser.new_context(base_url=app_server.url)
    try:
        stranger = other.new_page()
        sign_up(stranger)
        response = stranger.goto(url)
        assert response is not None and response.status == 404
        assert other.request.get(url).status == 404
    finally:
        other.close()


def test_an_image_sent_to_a_vision_model_shows_after_reload(
    page: Page, app_server: AppServer
) -> None:
    """Waits on the send path (chat-page.js sends the chips' ids as "attachments")."""
    upstream = app_server.upstream
    install_openai_stream(upstream, ["A blue ", "rectangle."], model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    sent_before = len(chat_requests(upstream))
    paste_file(page, "shape.png", png(), "image/png")
    ready_chip(page, "shape.png")
    message_box(page).fill("What is this?")
    message_box(page).press("Enter")

    user = page.locator("article.msg-user").last
    expect(user.locator(".msg-attachments img")).to_have_attribute("alt", "shape.png")
    expect(page.locator(".attach-chip")).to_have_count(0)  # the chips went with the message
    reply = page.locator("article.msg-reply").last
    expect(reply).to_have_attribute("data-status", "complete")
    request = upstream.wait_for_requests(sent_before + 1)[-1].json()
    parts = request["messages"][-1]["content"]
    assert any(
        part.get("type") == "image_url"
        and part["image_url"]["url"].startswith("data:image/png;base64,")
        for part in parts
    ), parts

    page.reload()
    thumb = page.locator("article.msg-user").last.locator(".msg-attachments img")
    expect(thumb).to_have_attribute("alt", "shape.png")
    assert thumb.evaluate("img => img.complete && img.naturalWidth") == 60


def test_on_a_phone_the_chips_fit_beside_the_message_box(
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
        long_name = "a-very-long-file-name-for-a-quarterly-report-draft.md"
        paste_file(page, long_name, b"# Draft\n", "text/markdown")
        paste_file(page, "image.png", png(), "image/png")
        ready_chip(page, long_name)
        ready_chip(page, "image.png")
        width = page.evaluate("document.documentElement.clientWidth")
        for box in page.locator(".attach-chip").evaluate_all(
            "chips => chips.map((chip) => chip.getBoundingClientRect().right)"
        ):
            assert box <= width, "a chip sticks out of the screen"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        expect(page.get_by_role("button", name="Attach files")).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_visible()
    finally:
        context.close()
