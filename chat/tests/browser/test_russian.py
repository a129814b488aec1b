"""The whole chat flow in Russian, in Chromium (issue 13): a browser that asks for Russian
gets every page in Russian, found by role and label in Russian, with no English left in
what the page shows; and the language switcher's choice follows the account to another
browser."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from chat.tests.fakes.openai_fake import install_openai_stream

from .conftest import AppServer
from .test_chat_e2e import FAKE_1, PASSWORD, wait_for_chat, wait_until_done

pytestmark = pytest.mark.browser

# Latin words a Russian page may show: names of products, providers and models, key
# names, file types, and the switcher's "English" (a language named in its own language).
ALLOWED_LATIN = {
    "AI",
    "Anthropic",
    "API",
    "Claude",
    "English",
    "Enter",
    "FakeAI",
    "Gemini",
    "GGUF",
    "Google",
    "llama",
    "cpp",
    "Mistral",
    "OpenAI",
    "PDF",
    "Shift",
    "SmolLM",
}

# Everything a person reads: visible text, and the placeholders, tooltips and accessible
# names of elements on the page (<template> copies and hidden data attributes aside).
SHOWN_TEXT_JS = """() => {
  const parts = [document.body.innerText, document.title];
  for (const el of document.body.querySelectorAll("[placeholder], [title], [aria-label]")) {
    if (el.closest("template")) continue;
    for (const name of ["placeholder", "title", "aria-label"]) {
      const value = el.getAttribute(name);
      if (value) parts.push(value);
    }
  }
  return parts.join("\\n");
}"""


@pytest.fixture
def context(browser: Browser, app_server: AppServer) -> Iterator[BrowserContext]:
    """A browser set to Russian (its Accept-Language says ru-RU)."""
    context = browser.new_context(
        base_url=app_server.url, locale="ru-RU", viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(10_000)
    page_errors: list[str] = []
    context.on("weberror", lambda error: page_errors.append(str(error.error)))
    yield context
    context.close()
    assert not page_errors, f"JavaScript errors in the page: {page_errors}"


def sign_up_in_russian(page: Page) -> str:
    username = f"user-{uuid.uuid4().hex[:8]}"
    page.goto("/accounts/signup/")
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("heading", level=1)).to_have_text("Создание учётной записи")
    page.get_by_label("Имя пользователя").fill(username)
    page.get_by_label("Пароль", exact=True).fill(PASSWORD)
    page.get_by_label("Подтверждение пароля").fill(PASSWORD)
    page.get_by_role("button", name="Зарегистрироваться").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Новый чат")
    wait_for_chat(page)
    return username


def english_left(page: Page) -> list[str]:
    """The lines of what the page shows that still hold Latin-script words other than
    the allowed names: leftovers of English. Model ids (the values of the model menu,
    "fake-model-1") and user names are names too."""
    text = page.evaluate(SHOWN_TEXT_JS)
    names = page.locator("#model-select option").evaluate_all(
        "options => options.map(o => o.value.split('::').pop())"
    )
    names += page.locator(".user-name").all_inner_texts()
    for name in filter(None, names):
        text = text.replace(name, " ")
    return [
        line
        for line in dict.fromkeys(text.splitlines())
        if any(
            word not in ALLOWED_LATIN and not re.fullmatch(r"[A-Z0-9_]+", word)
            for word in re.findall(r"[A-Za-z][A-Za-z'’]+", line)
        )
    ]


def test_the_whole_chat_flow_in_russian_shows_no_english(
    context: BrowserContext, app_server: AppServer
) -> None:
    page = context.new_page()
    sign_up_in_russian(page)
    assert english_left(page) == [], "English left on the empty chat page"

    page.get_by_label("Модель", exact=True).select_option(FAKE_1)
    install_openai_stream(app_server.upstream, ["Привет! ", "Всё хорошо."], model="fake-model-1")
    box = page.get_by_role("textbox", name="Сообщение", exact=True)
    box.fill("Привет, как дела?")
    page.get_by_role("button", name="Отправить").click()
    reply = page.locator("article.msg-reply").last
    wait_until_done(reply)
    expect(reply.locator("[data-content]")).to_have_text("Привет! Всё хорошо.")
    expect(reply.get_by_role("button", name="Копировать")).to_be_visible()
    assert english_left(page) == [], "English left on the chat page after a reply"

    page.get_by_role("button", name="Настройки").click()
    dialog = page.get_by_role("dialog", name="Настройки чата")
    expect(dialog).to_be_visible()
    assert english_left(page) == [], "English left in the settings dialog"
    dialog.get_by_role("button", name="Отмена").click()
    expect(dialog).to_be_hidden()

    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg-reply [data-content]")).to_have_text("Привет! Всё хорошо.")
    assert english_left(page) == [], "English left on the reloaded chat page"

    # Longer Russian words leave room: the user's name whole (it was cut to "u…"), and
    # the usage tables within their panels (902 px in 886).
    assert page.locator(".user-name").evaluate("e => e.scrollWidth <= e.clientWidth")
    page.goto("/usage/")
    page.locator("details.usage-day-table summary").click()
    widths = page.locator(".usage-table-wrap").evaluate_all(
        "wraps => wraps.map(w => [w.scrollWidth, w.clientWidth])"
    )
    assert len(widths) == 3 and all(scroll <= client for scroll, client in widths), widths
    # A phone: the model menu keeps its name readable (it shrank to "Loca").
    page.set_viewport_size({"width": 390, "height": 800})
    page.go_back()
    wait_for_chat(page)
    menu = page.get_by_label("Модель", exact=True).bounding_box()
    assert menu is not None and menu["width"] >= 144, menu


def test_the_switchers_choice_follows_the_account_to_another_browser(
    browser: Browser, context: BrowserContext, app_server: AppServer
) -> None:
    page = context.new_page()
    username = sign_up_in_russian(page)
    page.get_by_label("Язык").select_option("en")
    page.get_by_role("button", name="Применить").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("New chat")

    other = browser.new_context(base_url=app_server.url, locale="ru-RU")
    try:
        other_page = other.new_page()
        other_page.goto("/accounts/login/")
        expect(other_page.get_by_role("heading", level=1)).to_have_text("Войти")
        other_page.get_by_label("Имя пользователя").fill(username)
        other_page.get_by_label("Пароль").fill(PASSWORD)
        other_page.get_by_role("button", name="Войти").click()
        expect(other_page.get_by_role("heading", level=1)).to_have_text("New chat")
        expect(other_page.locator("html")).to_have_attribute("lang", "en")
    finally:
        other.close()
