"""A reasoning reply in Chromium (issue 11): the model's thoughts stream into a collapsed
block above the answer whose summary counts the seconds ("Thinking… 1 s"), then says how
long the model thought ("Thought for 2 s") once the answer starts, and the same after a
reload; a person who opens the block while it streams keeps it open and follows it. The
reasoning settings of a conversation are saved from its settings dialog, and disabled
with the provider's reason for a model that does not take them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from chat.tests.fakes.openai_fake import DONE, chunk
from chat.tests.fakes.server import Pause, StreamResponse, sse

from .conftest import AppServer
from .test_chat_e2e import FAKE_1, choose_model, send, sign_up, wait_for_chat, wait_until_done

pytestmark = pytest.mark.browser

CHAT_ROUTE = "/v1/chat/completions"
THOUGHTS = ["The person asks about the sky. ", "Blue light scatters more. ", "Say so."]


def thinking_stream(*, think: float, hold: float = 1.5) -> StreamResponse:
    """Reasoning pieces (``reasoning_content``, as DeepSeek and vLLM send them) spread
    over ``think`` seconds, then the answer in two pieces ``hold`` seconds apart."""

    def items() -> list[object]:
        def part(delta: dict[str, str] | None = None, **fields: object) -> bytes:
            return sse(chunk("c1", model="fake-model-1", delta=delta, **fields))  # type: ignore[arg-type]

        out: list[object] = [part({"role": "assistant", "content": ""})]
        for thought in THOUGHTS:
            out += [part({"reasoning_content": thought}), Pause(think / len(THOUGHTS))]
        out += [part({"content": "Rayleigh "}), Pause(hold), part({"content": "scattering."})]
        out += [part(finish_reason="stop"), part(usage=(12, 40), with_choice=False), DONE]
        return out

    return StreamResponse(items)


def test_a_reasoning_reply_thinks_collapsed_then_says_how_long_also_after_reload(
    page: Page, app_server: AppServer
) -> None:
    app_server.upstream.add("POST", CHAT_ROUTE, thinking_stream(think=2.4))
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Why is the sky blue?")
    block = reply.locator("details[data-reasoning]")
    summary = block.locator("[data-reasoning-summary]")

    expect(block).to_be_visible()
    expect(summary).to_have_text(re.compile(r"^Thinking…"))
    expect(block).not_to_have_attribute("open", "")  # collapsed while it streams
    expect(block.locator("[data-reasoning-text]")).to_be_hidden()
    expect(summary).to_have_text(re.compile(r"^Thinking… [12] s$"))  # the seconds go by

    # The answer starts (the reply is still being written): the time is said.
    expect(reply.locator("[data-content]")).to_contain_text("Rayleigh")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(summary).to_have_text(re.compile(r"^Thought for [23] s$"))
    wait_until_done(reply)
    said = summary.inner_text()
    assert re.fullmatch(r"Thought for [23] s", said)
    expect(block).not_to_have_attribute("open", "")

    page.reload()
    wait_for_chat(page)
    block = page.locator("article.msg-reply details[data-reasoning]").last
    expect(block.locator("[data-reasoning-summary]")).to_have_text(said)
    expect(block).not_to_have_attribute("open", "")
    block.locator("summary").click()
    expect(block.locator("[data-reasoning-text]")).to_have_text("".join(THOUGHTS))
    assert "Blue light" not in page.locator("article.msg-reply .md").last.inner_text()


def test_a_block_opened_while_the_model_thinks_stays_open_and_follows(
    page: Page, app_server: AppServer
) -> None:
    app_server.upstream.add("POST", CHAT_ROUTE, thinking_stream(think=2.4, hold=0.2))
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Why is the sky blue?")
    block = reply.locator("details[data-reasoning]")
    text = block.locator("[data-reasoning-text]")
    expect(text).to_be_attached()
    expect(block).to_be_visible()
    block.locator("summary").click()
    expect(block).to_have_attribute("open", "")
    expect(text).to_have_text("".join(THOUGHTS))  # the rest streamed in, shown
    wait_until_done(reply)
    expect(block).to_have_attribute("open", "")  # the answer did not fold it


def test_reasoning_settings_are_saved_from_the_dialog(page: Page, app_server: AppServer) -> None:
    """An OpenAI-compatible model takes a reasoning effort (passed to the server) but no
    thinking budget: the effort is saved, the budget field is disabled with the reason."""
    sign_up(page)
    choose_model(page, FAKE_1)
    app_server.upstream.add("POST", CHAT_ROUTE, thinking_stream(think=0.1, hold=0))
    wait_until_done(send(page, "Hello"))
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    dialog.get_by_label("Reasoning effort").select_option("high")
    expect(dialog.get_by_label("Thinking budget (tokens)")).to_be_disabled()
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()
    conversation_id = page.locator("#app").get_attribute("data-conversation-id")
    saved = (
        app_server.manage(
            "shell",
            "-c",
            "from chat.models import Conversation; "
            f"c = Conversation.objects.get(pk={conversation_id}); "
            "print(c.reasoning_effort, c.thinking_budget)",
        )
        .stdout.strip()
        .splitlines()[-1]
        .split()
    )
    assert saved == ["high", "None"]
    page.reload()  # the dialog shows what was saved
    page.get_by_role("button", name="Settings").click()
    expect(dialog.get_by_label("Reasoning effort")).to_have_value("high")


def test_a_reasoning_setting_the_model_does_not_take_is_disabled_with_the_reason(
    page: Page,
) -> None:
    """The model menu's option names the settings its model does not take
    (data-no-reasoning-effort / data-no-thinking-budget, from the provider's
    ``unsupported_options``); the dialog disables those, saying why, and enables them
    again for a model that takes them."""
    sign_up(page)
    reason = "OpenAI-compatible servers take a reasoning effort, not a thinking budget"
    # A model that takes a thinking budget: the second fake model, told so here (no
    # configured provider takes one without a key).
    page.evaluate(
        """(value) => {
          const option = [...document.querySelectorAll("#model-select option")]
            .find((o) => o.value === value);
          delete option.dataset.noThinkingBudget;
        }""",
        "fakeai::fake-model-2",
    )
    choose_model(page, FAKE_1)
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    budget = page.locator("#id_thinking_budget")  # found in the closed dialog too
    note = page.locator("#settings-dialog").get_by_text(reason)
    expect(budget).to_be_disabled()
    expect(note).to_be_visible()
    expect(dialog.get_by_label("Reasoning effort")).to_be_enabled()
    page.keyboard.press("Escape")
    page.get_by_label("Model", exact=True).select_option("fakeai::fake-model-2")
    expect(budget).to_be_enabled()
    expect(note).to_be_hidden()
