"""The README's screenshot (docs/screenshot.png), made from a real session: an image
attached to a message, two models compared side by side, each showing its reasoning
collapsed above the answer. Refreshed when missing or with UPDATE_SCREENSHOT=1; other
runs write test-artifacts/screenshot.png (ignored by git), so a test run leaves the tree
clean."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import BASE_DIR, AppServer
from .test_chat_e2e import FAKE_1, FAKE_2, README_SCREENSHOT, choose_model, sign_up, wait_until_done

pytestmark = pytest.mark.browser

README_SCREENSHOT_RU = README_SCREENSHOT.with_name("screenshot-ru.png")
_UPDATE = os.environ.get("UPDATE_SCREENSHOT") == "1"
SCREENSHOT = (
    README_SCREENSHOT
    if _UPDATE or not README_SCREENSHOT.exists()
    else BASE_DIR / "test-artifacts" / "screenshot.png"
)
# The same conversation in Russian, shown beside the English one in both READMEs.
SCREENSHOT_RU = (
    README_SCREENSHOT_RU
    if _UPDATE or not README_SCREENSHOT_RU.exists()
    else BASE_DIR / "test-artifacts" / "screenshot-ru.png"
)


def bar_chart_png() -> bytes:
    """A small bar chart (sales by month), drawn here."""
    image = Image.new("RGB", (360, 220), "white")
    draw = ImageDraw.Draw(image)
    for i, (height, colour) in enumerate(
        [(80, "#6366f1"), (120, "#22c55e"), (170, "#f59e0b"), (100, "#ef4444")]
    ):
        x = 40 + i * 80
        draw.rectangle([x, 200 - height, x + 50, 200], fill=colour)
    draw.line([30, 200, 340, 200], fill="black", width=2)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_the_readme_screenshot_shows_an_image_compared_by_two_models_with_reasoning(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    page.locator("#attach-input").set_input_files(
        files=[{"name": "sales.png", "mimeType": "image/png", "buffer": bar_chart_png()}]
    )
    expect(page.locator("#attach-chips img")).to_have_count(1)

    page.get_by_role("button", name="Compare", exact=True).click()
    dialog = page.get_by_role("dialog", name="Compare models")
    dialog.locator(f'input[value="{FAKE_2}"]').check()
    dialog.get_by_role("button", name="Compare", exact=True).click()

    for answer in (
        "**March** sold the most: its bar is the tallest, about twice January's. "
        "April fell back below February.",
        "Sales rise from January to a peak in **March**, then drop in April. "
        "Worth checking what drove March.",
    ):
        install_openai_stream(
            app_server.upstream,
            ["<think>", "Four bars, one per month. ", "The third is tallest.", "</think>", answer],
            model="fake-model-1",
            usage=(1210, 64),
            pause=0.4,
        )
    box = page.get_by_role("textbox", name="Message", exact=True)
    box.fill("Which month sold best in this chart?")
    box.press("Enter")
    columns = page.locator("[data-compare] article.msg-reply")
    expect(columns).to_have_count(2)
    for i in range(2):
        wait_until_done(columns.nth(i))
    # After both finish, the server's columns replace the live ones (ids, times).
    expect(columns.first.locator(".msg-ttft")).to_be_visible()
    expect(columns.first.locator("details.msg-reasoning summary")).to_contain_text("Thought")
    expect(page.locator("article.msg-user img")).to_have_count(1)

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000

    # The language switcher (sidebar footer): the same page in Russian.
    page.get_by_label("Language", exact=True).select_option("ru")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("[data-compare] article.msg-reply")).to_have_count(2)
    expect(page.get_by_role("textbox", name="Сообщение", exact=True)).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=str(SCREENSHOT_RU))
    assert SCREENSHOT_RU.stat().st_size > 10_000
