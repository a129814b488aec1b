"""What a person does with the chat, in Chromium against the real server (see conftest.py):
sign up, chat with the local model and watch the reply stream in, stop a reply, switch
models mid-conversation, edit and regenerate, rename, search and delete, and find the
conversation in the admin as staff."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from chat.tests.fakes.openai_fake import (
    CHAT_PATH,
    install_openai_error,
    install_openai_stream,
)
from chat.tests.fakes.server import FakeUpstream

from .conftest import BASE_DIR, CHROMIUM_ARGS, STAFF_PASSWORD, STAFF_USERNAME, AppServer

pytestmark = pytest.mark.browser

LOCAL = "local::smollm2-135m-instruct"
FAKE_1 = "fakeai::fake-model-1"
FAKE_2 = "fakeai::fake-model-2"
PASSWORD = "correct-horse-battery-41"
LOCAL_REPLY_TIMEOUT = 60_000  # ms; the real model on a slow CPU
# The README's screenshot (docs/screenshot.png) is made by test_screenshot.py; this one,
# of a chat across three models, goes under test-artifacts/ (ignored by git).
README_SCREENSHOT = BASE_DIR / "docs" / "screenshot.png"
SCREENSHOT = BASE_DIR / "test-artifacts" / "three-models.png"

CODE_REPLY = (
    "Here is a small function:\n\n"
    "```python\n"
    "def greet(name: str) -> str:\n"
    '    """Say hello."""\n'
    '    return f"Hello, {name}!"\n'
    "```\n\n"
    "Call it with `greet('Ada')`."
)

expect.set_options(timeout=10_000)


# --- Helpers ----------------------------------------------------------------------------


def sign_up(page: Page) -> str:
    username = f"user-{uuid.uuid4().hex[:8]}"
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New chat")
    wait_for_chat(page)
    return username


def wait_for_chat(page: Page) -> None:
    """The page's script has bound its handlers: typing Enter now sends. (The module
    script runs after the HTML is shown; a slow machine makes the gap visible.)"""
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")


def message_box(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message", exact=True)


def choose_model(page: Page, value: str) -> None:
    page.get_by_label("Model", exact=True).select_option(value)


def send(page: Page, text: str) -> Locator:
    """Type and press Enter; returns the new reply."""
    count = page.locator("article.msg-reply").count()
    message_box(page).fill(text)
    message_box(page).press("Enter")
    replies = page.locator("article.msg-reply")
    expect(replies).to_have_count(count + 1)
    return replies.nth(count)


def wait_until_done(reply: Locator, status: str = "complete", timeout: float = 15_000) -> None:
    expect(reply).to_have_attribute("data-status", status, timeout=timeout)


def stream_chunks(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def record_reply_lengths(page: Page) -> None:
    """Note the length of the streaming reply's text at every change of the thread."""
    page.evaluate(
        """() => {
          window.__replyLengths = [];
          const thread = document.getElementById("thread");
          new MutationObserver(() => {
            const replies = thread.querySelectorAll("article.msg-reply[data-status=streaming]");
            const text = replies[replies.length - 1]?.querySelector(".stream-text");
            if (text) window.__replyLengths.push(text.textContent.length);
          }).observe(thread, { subtree: true, childList: true, characterData: true });
        }"""
    )


def chat_requests(upstream: FakeUpstream) -> list[Any]:
    return [r for r in upstream.requests if r.method == "POST" and r.route_path == CHAT_PATH]


@pytest.fixture(scope="module")
def bfcache_browser(browser: Browser, chromium_path: Path) -> Iterator[Browser]:
    """Chromium with its back-forward cache on, as people have it (Playwright turns it
    off by default): Back shows the page as it was, without asking the server."""
    launched = browser.browser_type.launch(
        executable_path=str(chromium_path),
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )
    yield launched
    launched.close()


@pytest.fixture
def bfcache_page(bfcache_browser: Browser, app_server: AppServer) -> Iterator[Page]:
    """A page of ``bfcache_browser``, set up as the ``page`` fixture sets up its own; a
    JavaScript error fails the test."""
    context = bfcache_browser.new_context(
        base_url=app_server.url, viewport={"width": 1280, "height": 800}, service_workers="block"
    )
    context.set_default_timeout(10_000)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    yield context.new_page()
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


# --- Tests ------------------------------------------------------------------------------


def test_new_user_signs_up_and_watches_a_local_model_reply_stream_in(page: Page) -> None:
    sign_up(page)
    choose_model(page, LOCAL)
    record_reply_lengths(page)

    reply = send(page, "What is the capital of France? Answer in one sentence.")

    wait_until_done(reply, timeout=LOCAL_REPLY_TIMEOUT)
    lengths = [n for n in page.evaluate("window.__replyLengths") if n > 0]
    assert len(set(lengths)) >= 2, f"the reply did not grow while streaming: {lengths}"
    expect(reply.locator(".md > *").first).to_be_visible()
    expect(reply.locator(".stream-text")).to_have_count(0)  # replaced by the rendered HTML
    expect(reply.locator("[data-model-label]")).to_contain_text("smollm2-135m-instruct")
    expect(page).to_have_url(re.compile(r"/c/\d+/$"))
    expect(page.get_by_role("navigation", name="Conversations")).to_contain_text(
        "What is the capital of France?"
    )


def test_stop_keeps_the_partial_reply_marked_stopped_also_after_reload(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    words = [f"word{i} " for i in range(300)]
    install_openai_stream(upstream, words, pause=0.1, model="fake-model-1")
    sent_before = len(chat_requests(upstream))
    sign_up(page)
    choose_model(page, FAKE_1)

    reply = send(page, "Tell me a very long story.")
    expect(reply.locator(".stream-text")).to_contain_text("word3 ")
    page.get_by_role("button", name="Stop").click()

    wait_until_done(reply, "stopped", timeout=5_000)
    expect(reply.locator("[data-status-label]")).to_have_text("Stopped")
    expect(reply).to_contain_text("word3")
    assert "word299" not in reply.inner_text()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    upstream_request = upstream.wait_for_requests(sent_before + 1)[-1]
    assert upstream_request.client_closed.wait(5), "the upstream stream was not closed"

    page.reload()
    wait_for_chat(page)
    reloaded = page.locator("article.msg-reply").last
    expect(reloaded).to_have_attribute("data-status", "stopped")
    expect(reloaded.locator("[data-status-label]")).to_have_text("Stopped")
    expect(reloaded).to_contain_text("word3")
    expect(reloaded.locator("[data-notice]")).to_be_hidden()

    # Stopped before the first word: a note says so, not a bare "Stopped" header.
    install_openai_stream(upstream, ["Too late."], delay=3, model="fake-model-1")
    early = send(page, "Never mind.")
    page.get_by_role("button", name="Stop").click()
    wait_until_done(early, "stopped", timeout=8_000)
    note = "Stopped before the model answered."
    expect(early.locator("[data-notice]")).to_have_text(note)
    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg-reply").last.locator("[data-notice]")).to_have_text(note)


def test_another_tab_follows_a_reply_still_being_written(page: Page, app_server: AppServer) -> None:
    words = [f"w{i} " for i in range(60)]
    install_openai_stream(app_server.upstream, words, pause=0.1, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Count slowly.")
    expect(reply.locator(".stream-text")).to_contain_text("w5 ")

    other_tab = page.context.new_page()
    other_tab.goto(page.url)
    wait_for_chat(other_tab)
    followed = other_tab.locator("article.msg-reply").last
    expect(followed).to_have_attribute("data-status", "streaming")
    expect(other_tab.get_by_role("button", name="Stop")).to_be_visible()

    wait_until_done(followed)
    expect(followed.locator(".md p")).to_contain_text("w59")
    expect(other_tab.get_by_role("button", name="Send")).to_be_visible()


def test_switching_models_mid_conversation_keeps_history_and_each_reply_names_its_model(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(
        upstream,
        stream_chunks("Sure. Ask me anything: I can answer with **markdown** and code."),
        model="fake-model-1",
    )
    first = send(page, "Hi! Can you help me with Python?")
    wait_until_done(first)

    choose_model(page, LOCAL)
    second = send(page, "Say hello in three words.")
    wait_until_done(second, timeout=LOCAL_REPLY_TIMEOUT)

    choose_model(page, FAKE_2)
    install_openai_stream(upstream, stream_chunks(CODE_REPLY), model="fake-model-2", usage=(96, 41))
    third = send(page, "Show me a Python function that greets someone.")
    wait_until_done(third)
    expect(third.locator("pre.code-block .tok-k").first).to_have_text("def")
    sent = chat_requests(upstream)[-1].json()
    assert sent["model"] == "fake-model-2"
    assert "Hi! Can you help me with Python?" in [m["content"] for m in sent["messages"]]

    page.reload()
    wait_for_chat(page)
    labels = page.locator("article.msg-reply [data-model-label]")
    expect(labels).to_have_text(
        [
            "FakeAI · fake-model-1",
            re.compile(r"smollm2-135m-instruct$"),
            "FakeAI · fake-model-2",
        ]
    )
    expect(page.locator("article.msg-user")).to_have_count(3)
    expect(page.get_by_label("Model", exact=True)).to_have_value(FAKE_2)
    expect(page.locator("article.msg-reply").last.locator("pre.code-block")).to_be_visible()

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_upstream_error_is_shown_on_the_reply_and_the_conversation_goes_on(
    page: Page, app_server: AppServer
) -> None:
    install_openai_error(app_server.upstream, 401, "bad key")
    sign_up(page)
    choose_model(page, FAKE_1)

    failed = send(page, "Hello?")

    wait_until_done(failed, "error")
    # One plain sentence for people: no setting names, no upstream text.
    expect(failed.locator("[data-error]")).to_contain_text(
        "FakeAI refused this server's credentials"
    )
    expect(failed.locator("[data-error]")).not_to_contain_text("FAKEAI_API_KEY")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    answered = send(page, "Hello again?")
    wait_until_done(answered)
    expect(answered).to_contain_text("Fake answer.")


def test_a_refused_message_shows_the_reason_and_keeps_the_typed_text(page: Page) -> None:
    sign_up(page)
    # A provider that went away after the page was loaded (the server was reconfigured).
    page.evaluate(
        """() => {
          const select = document.getElementById("model-select");
          select.add(new Option("old-model", "gone::old-model", true, true));
        }"""
    )
    message_box(page).fill("Please keep this text")
    message_box(page).press("Enter")

    expect(page.get_by_role("alert")).to_contain_text("Unknown provider")
    expect(message_box(page)).to_have_value("Please keep this text")
    expect(page.locator("article.msg")).to_have_count(0)


def test_copy_puts_the_reply_text_on_the_clipboard(page: Page, app_server: AppServer) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_server.url)
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Anything")
    wait_until_done(reply)

    reply.get_by_role("button", name="Copy").click()

    expect(reply.locator("[data-action=copy]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "Fake answer."


def test_edit_the_last_message_and_regenerate_the_last_reply(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Name a colour.")
    wait_until_done(reply)

    page.get_by_role("button", name="Edit", exact=True).click()
    edit_box = page.get_by_role("textbox", name="Edit your message")
    edit_box.fill("Name a fruit.")
    install_openai_stream(upstream, ["Banana."], model="fake-model-1")
    page.get_by_role("button", name="Save and send").click()

    user_messages = page.locator("article.msg-user")
    expect(user_messages).to_have_count(1)
    expect(user_messages.first).to_contain_text("Name a fruit.")
    expect(page.locator("article.msg-reply")).to_have_count(1)
    wait_until_done(page.locator("article.msg-reply").first)
    expect(page.locator("article.msg-reply").first).to_contain_text("Banana.")

    install_openai_stream(upstream, ["Cherry."], model="fake-model-1")
    page.get_by_role("button", name="Regenerate").click()
    regenerated = page.locator("article.msg-reply")
    expect(regenerated).to_have_count(1)
    expect(regenerated.first).to_contain_text("Cherry.")
    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg")).to_have_count(2)
    expect(page.locator("article.msg-reply")).to_contain_text("Cherry.")


def test_rename_search_by_message_text_and_delete_a_conversation(bfcache_page: Page) -> None:
    """Then Back, to the deleted conversation: the browser brings the page back from its
    back-forward cache, which asks the server and goes on to a new chat."""
    page = bfcache_page
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Bake some bread"))
    page.get_by_role("link", name="New chat").click()
    wait_for_chat(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Plan a trip"))
    wait_until_done(send(page, "Include the zebra museum."))
    sidebar = page.get_by_role("navigation", name="Conversations")

    sidebar.get_by_role("button", name="Rename Plan a trip").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("Trip ideas")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Trip ideas")
    expect(sidebar.get_by_role("link", name="Trip ideas")).to_be_visible()

    # Away and Back to a conversation that still exists: the page stays as it was (no
    # reload: what it holds, such as queued messages, is kept).
    page.evaluate("window.__notReloaded = true")
    sidebar.get_by_role("link", name="Bake some bread").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bake some bread")
    wait_for_chat(page)
    with page.expect_response(re.compile(r"/c/status/\?ids=\d+$")) as asked:
        page.go_back(wait_until="commit")  # a page from the cache fires no "load"
    assert asked.value.json()["conversations"]  # it is there
    expect(page.get_by_role("heading", level=1)).to_have_text("Trip ideas")
    assert page.evaluate("window.__notReloaded === true")

    search = sidebar.get_by_role("searchbox", name="Search conversations")
    search.fill("zebra")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=zebra$"))
    wait_for_chat(page)  # a new page: its script binds the Delete dialog
    expect(sidebar.get_by_role("link", name="Trip ideas")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Bake some bread")).to_have_count(0)

    sidebar.get_by_role("button", name="Delete Trip ideas").click()
    confirm = page.get_by_role("dialog", name="Delete this conversation?")
    expect(confirm).to_contain_text("Trip ideas")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("Conversation deleted.")
    expect(sidebar.get_by_role("link", name="Trip ideas")).to_have_count(0)
    expect(sidebar.get_by_role("link", name="Bake some bread")).to_be_visible()

    # Back: the deleted conversation's page comes back from the cache, finds it gone and
    # goes to a new chat, which says so.
    wait_for_chat(page)
    page.go_back(wait_until="commit")
    expect(page.get_by_text("“Trip ideas” was deleted: this is a new chat.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("New chat")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(sidebar.get_by_role("link", name="Trip ideas")).to_have_count(0)


def test_on_a_phone_the_conversation_list_opens_from_a_toggle(page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Hello from a phone"))
    sidebar = page.get_by_role("navigation", name="Conversations")
    expect(sidebar).to_be_hidden()

    page.get_by_role("button", name="Conversations").click()

    expect(sidebar.get_by_role("link", name="Hello from a phone")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()


def test_staff_user_finds_the_conversation_in_the_admin(page: Page) -> None:
    username = sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "A question for the admin to see"))
    page.get_by_role("button", name="Log out").click()

    page.goto("/admin/")
    page.get_by_label("Username").fill(STAFF_USERNAME)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Conversations").click()

    row = page.locator("#result_list tbody tr", has_text="A question for the admin to see")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(username)
    expect(row).to_contain_text("fakeai")


def test_a_long_thread_loads_earlier_messages_on_demand(page: Page, app_server: AppServer) -> None:
    username = sign_up(page)
    script = (
        "from datetime import timedelta\n"
        "from django.contrib.auth.models import User\n"
        "from django.utils import timezone\n"
        "from chat.models import Conversation, Message\n"
        f"owner = User.objects.get(username={username!r})\n"
        "conv = Conversation.objects.create(owner=owner, title='Long one', provider='local',"
        " model='smollm2-135m-instruct')\n"
        "start = timezone.now() - timedelta(hours=1)\n"
        "Message.objects.bulk_create(Message(conversation=conv, role='user' if i % 2 == 0 else"
        " 'assistant', content=f'line {i:03d}', content_html=f'<p>line {i:03d}</p>',"
        " created_at=start + timedelta(seconds=i)) for i in range(120))\n"
        "from chat.services import messages_chain\n"
        "messages_chain(conversation_ids=[conv.pk])\n"
        "print(conv.pk)\n"
    )
    conversation_id = app_server.manage("shell", "-c", script).stdout.strip().splitlines()[-1]
    page.goto(f"/c/{conversation_id}/")
    wait_for_chat(page)
    thread = page.get_by_role("log", name="Messages")
    expect(thread.get_by_text("line 119", exact=True)).to_be_visible()
    expect(thread.get_by_text("line 069", exact=True)).to_have_count(0)

    page.get_by_role("link", name="Show earlier messages").click()
    expect(thread.get_by_text("line 020", exact=True)).to_have_count(1)
    expect(thread.get_by_text("line 019", exact=True)).to_have_count(0)
    page.get_by_role("link", name="Show earlier messages").click()
    expect(thread.get_by_text("line 000", exact=True)).to_have_count(1)
    expect(page.get_by_role("link", name="Show earlier messages")).to_have_count(0)
    assert thread.locator("article.msg").count() == 120


def test_settings_of_a_new_conversation_apply_to_its_next_reply(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(app_server.upstream, ["First."], model="fake-model-1")
    wait_until_done(send(page, "Hello there"))

    page.get_by_role("button", name="Settings").click()  # no reload needed
    page.get_by_label("System prompt").fill("Answer like a pirate.")
    page.get_by_label("Temperature").fill("0.3")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("dialog", name="Conversation settings")).to_be_hidden()

    install_openai_stream(app_server.upstream, ["Arr."], model="fake-model-1")
    wait_until_done(send(page, "And now?"))
    body = chat_requests(app_server.upstream)[-1].json()
    assert body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert body["temperature"] == 0.3
