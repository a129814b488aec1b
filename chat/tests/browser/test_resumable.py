"""Replies that outlive the tab, and the chat page's live reply (issue 10), in Chromium:
a reload, another conversation and back, a second tab: the same reply goes on live to
its end with its text neither lost nor doubled; Stop in one tab stops it in all; a
message sent meanwhile is queued, said so, then sent; Markdown takes shape as it
arrives and nothing unsanitized reaches the page; the sidebar marks conversations with a
reply being written or not seen yet; focus after Stop, Regenerate and a cancelled edit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from chat.tests.fakes.openai_fake import install_openai_stream, stream_chunks
from chat.tests.fakes.server import Pause, StreamResponse

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

CHAT_ROUTE = "/v1/chat/completions"


# --- Helpers ----------------------------------------------------------------------------


def words(count: int, prefix: str = "w") -> list[str]:
    """Deltas "w0 ", "w1 "...: each piece of text appears once, so a doubled or missing
    piece shows in the text."""
    return [f"{prefix}{i} " for i in range(count)]


def held_stream(deltas: Sequence[str], *, pause: float = 0.0, hold: float = 0.0) -> StreamResponse:
    """A streamed reply that sends all its text, then waits ``hold`` seconds before it
    finishes: the whole text is on the page while the reply is still being written."""

    def items() -> list[object]:
        body = stream_chunks(deltas, model="fake-model-1", pause=pause)
        return [*body[:-3], Pause(hold), *body[-3:]]  # before: finish, usage, [DONE]

    return StreamResponse(items)


def squash(text: str) -> str:
    return " ".join(text.split())


def record_streaming_text(page: Page) -> None:
    """From now on, note the text of the reply being written at every change of the
    thread (window.__states)."""
    page.evaluate(
        """() => {
          window.__states = [];
          const thread = document.getElementById("thread");
          new MutationObserver(() => {
            const reply = thread.querySelector("article.msg-reply[data-status=streaming]");
            if (reply) window.__states.push(reply.querySelector("[data-content]").textContent);
          }).observe(thread, { subtree: true, childList: true, characterData: true });
        }"""
    )


def recorded_states(page: Page) -> list[str]:
    return [squash(text) for text in page.evaluate("window.__states") if text.strip()]


def assert_only_prefixes(states: list[str], full: str) -> None:
    """Each text seen while streaming is the start of the full text: nothing was shown
    twice, nothing skipped."""
    for state in states:
        assert full.startswith(state), f"shown while streaming: {state!r}\nfull text: {full!r}"


def reply_source(reply: Locator) -> str:
    """The reply's Markdown source as the page holds it (what Copy copies)."""
    return reply.evaluate("el => el.querySelector('template[data-source]').content.textContent")


def sidebar_item(page: Page, conversation_id: str) -> Locator:
    return page.locator(f'#conversation-list li[data-conversation-id="{conversation_id}"]')


def conversation_id(page: Page) -> str:
    match = re.search(r"/c/(\d+)/", page.url)
    assert match, page.url
    return match[1]


def wait_for(predicate: Callable[[], bool], page: Page, timeout: float = 10.0) -> None:
    for _ in range(int(timeout * 10)):
        if predicate():
            return
        page.wait_for_timeout(100)
    raise AssertionError("condition not met in time")


# --- A reply outlives the page ----------------------------------------------------------


def test_reload_mid_reply_continues_the_same_reply_live_to_its_end(
    page: Page, app_server: AppServer
) -> None:
    deltas = words(60)
    install_openai_stream(app_server.upstream, deltas, pause=0.1, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Count slowly.")
    expect(reply.locator("[data-content]")).to_contain_text("w8")
    reply_id = reply.get_attribute("data-message-id")

    page.reload()
    wait_for_chat(page)
    record_streaming_text(page)
    reply = page.locator("article.msg-reply")
    expect(reply).to_have_count(1)
    expect(reply).to_have_attribute("data-message-id", reply_id)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    wait_until_done(reply)
    full = squash("".join(deltas))
    states = recorded_states(page)
    assert_only_prefixes(states, full)
    # Live, not a reload's snapshot now and then: the text grew piece by piece.
    assert len(set(states)) >= 10, f"the reply did not grow live after the reload: {states}"
    expect(reply.locator("[data-content]")).to_have_text(full)
    assert reply_source(reply).strip() == "".join(deltas).strip()
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_a_reply_whose_connection_broke_is_picked_up_where_it_was(
    page: Page, app_server: AppServer
) -> None:
    deltas = words(40)
    install_openai_stream(app_server.upstream, deltas, pause=0.02, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)

    def cut_short(route: Route) -> None:
        # The reply's response ends after its first few events, before "done" (a
        # connection lost mid-reply); the reply itself goes on on the server.
        response = route.fetch()
        blocks = response.text().split("\n\n")
        route.fulfill(response=response, body="\n\n".join(blocks[:6]) + "\n\n")

    page.route("**/c/new/reply/", cut_short)
    follows: list[str] = []
    page.on("request", lambda r: follows.append(r.url) if "/events/" in r.url else None)
    reply = send(page, "Count.")

    wait_until_done(reply)
    assert any(re.search(r"[?&]after=[1-9]", url) for url in follows), follows
    full = squash("".join(deltas))
    expect(reply.locator("[data-content]")).to_have_text(full)
    assert reply_source(reply).strip() == "".join(deltas).strip()  # what Copy copies


def test_leaving_for_another_conversation_and_back_the_reply_goes_on_and_the_sidebar_says_so(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "A first chat"))
    first_id = conversation_id(page)
    page.get_by_role("link", name="New chat").click()
    wait_for_chat(page)
    deltas = words(70)
    install_openai_stream(upstream, deltas, pause=0.1, model="fake-model-1")
    reply = send(page, "Count slowly.")
    expect(reply.locator("[data-content]")).to_contain_text("w3")
    second_id = conversation_id(page)

    page.locator(f"#conv-title-{first_id}").click()
    wait_for_chat(page)
    running = sidebar_item(page, second_id)
    expect(running).to_have_class(re.compile(r"\bis-running\b"))
    expect(running.locator(".conv-mark")).to_be_visible()
    expect(running.locator("[data-conv-state]")).to_have_text("A reply is being written")

    running.locator(".conv-link").click()  # back, while it is still being written
    wait_for_chat(page)
    record_streaming_text(page)
    reply = page.locator("article.msg-reply").last
    expect(reply).to_have_attribute("data-status", "streaming")
    wait_until_done(reply)
    full = squash("".join(deltas))
    assert_only_prefixes(recorded_states(page), full)
    expect(reply.locator("[data-content]")).to_have_text(full)
    expect(sidebar_item(page, second_id)).not_to_have_class(re.compile(r"\bis-(running|unseen)\b"))

    # A reply that finishes while another conversation is open is marked as not seen yet,
    # without a reload, until it is opened.
    install_openai_stream(upstream, words(50), pause=0.1, model="fake-model-1")
    expect(send(page, "Once more.").locator("[data-content]")).to_contain_text("w1")
    page.locator(f"#conv-title-{first_id}").click()
    wait_for_chat(page)
    unseen = sidebar_item(page, second_id)
    expect(unseen).to_have_class(re.compile(r"\bis-running\b"))
    expect(unseen).to_have_class(re.compile(r"\bis-unseen\b"), timeout=15_000)
    expect(unseen.locator("[data-conv-state]")).to_have_text("New reply")
    expect(unseen.locator(".conv-mark")).to_be_visible()
    unseen.locator(".conv-link").click()
    wait_for_chat(page)
    expect(page.locator("article.msg-reply").last).to_have_attribute("data-status", "complete")
    expect(sidebar_item(page, second_id)).not_to_have_class(re.compile(r"\bis-unseen\b"))


def test_two_tabs_follow_one_reply_and_stop_in_either_stops_it_in_both(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    install_openai_stream(upstream, words(300), pause=0.05, model="fake-model-1")
    sent_before = len(chat_requests(upstream))
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Tell me a very long story.")
    expect(reply.locator("[data-content]")).to_contain_text("w3")

    other = page.context.new_page()
    other.goto(page.url)
    wait_for_chat(other)
    record_streaming_text(other)
    followed = other.locator("article.msg-reply").last
    expect(followed).to_have_attribute("data-status", "streaming")
    wait_for(lambda: len(set(recorded_states(other))) >= 5, other)  # live in the second tab

    other.get_by_role("button", name="Stop").click()

    wait_until_done(followed, "stopped", timeout=5_000)
    wait_until_done(reply, "stopped", timeout=5_000)
    expect(message_box(other)).to_be_focused()
    for tab, article in ((page, reply), (other, followed)):
        expect(article.locator("[data-status-label]")).to_have_text("Stopped")
        expect(tab.get_by_role("button", name="Send")).to_be_visible()
    assert "w299" not in reply.inner_text()
    assert squash(reply.locator("[data-content]").inner_text()) == squash(
        followed.locator("[data-content]").inner_text()
    )
    assert_only_prefixes(recorded_states(other), squash("".join(words(300))))
    upstream_request = upstream.wait_for_requests(sent_before + 1)[-1]
    assert upstream_request.client_closed.wait(5), "the upstream stream was not closed"


def test_the_sidebar_and_the_title_follow_a_rename_made_in_another_tab(
    page: Page, app_server: AppServer
) -> None:
    install_openai_stream(app_server.upstream, words(80), pause=0.1, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Plan a long trip.")
    expect(reply.locator("[data-content]")).to_contain_text("w2")
    current = conversation_id(page)

    other = page.context.new_page()
    other.goto(page.url)
    wait_for_chat(other)
    other.locator(f"#conv-rename-{current}").click()
    dialog = other.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("Grand tour")
    dialog.get_by_role("button", name="Save").click()
    expect(other.locator(".notices")).to_contain_text("Saved.")

    # The first tab hears of it while its reply is being written.
    expect(page.locator(f"#conv-title-{current}")).to_have_text("Grand tour", timeout=8_000)
    expect(page.get_by_role("heading", level=1)).to_have_text("Grand tour")
    expect(page).to_have_title(re.compile(r"^Grand tour · "))
    other.get_by_role("button", name="Stop").click()
    wait_until_done(reply, "stopped")


def test_two_replies_being_written_are_followed_at_once_each_in_its_place(
    page: Page, app_server: AppServer
) -> None:
    username = sign_up(page)
    # Two replies still "streaming" whose runs are nowhere (their worker went away): the
    # page follows both, each shows its own text, and each ends when its row does.
    script = (
        "from django.contrib.auth.models import User\n"
        "from chat.models import Conversation, Message\n"
        f"owner = User.objects.get(username={username!r})\n"
        "conv = Conversation.objects.create(owner=owner, title='Two at once', provider='fakeai',"
        " model='fake-model-1')\n"
        "ids = []\n"
        "for n in ('first', 'second'):\n"
        "    Message.objects.create(conversation=conv, role='user', content=f'The {n} question')\n"
        "    ids.append(Message.objects.create(conversation=conv, role='assistant',"
        " content=f'The {n} answer so far', status='streaming', provider='fakeai',"
        " model='fake-model-1').pk)\n"
        "print(conv.pk, *ids)\n"
    )
    conv, first_id, second_id = (
        app_server.manage("shell", "-c", script).stdout.strip().splitlines()[-1].split()
    )
    page.goto(f"/c/{conv}/")
    wait_for_chat(page)
    first = page.locator(f'article.msg-reply[data-message-id="{first_id}"]')
    second = page.locator(f'article.msg-reply[data-message-id="{second_id}"]')
    for reply in (first, second):
        expect(reply).to_have_attribute("data-status", "streaming")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    finish = (
        "from chat.markdown import render_markdown\n"
        "from chat.models import Message\n"
        f"for pk, text in (({first_id}, 'The *first* answer.'), ({second_id}, 'The second.')):\n"
        "    Message.objects.filter(pk=pk).update(status='complete', content=text,"
        " content_html=render_markdown(text))\n"
    )
    app_server.manage("shell", "-c", finish)
    wait_until_done(first)
    wait_until_done(second)
    expect(first.locator("[data-content]")).to_have_text("The first answer.")
    expect(first.locator("[data-content] em")).to_have_text("first")
    expect(second.locator("[data-content]")).to_have_text("The second.")
    assert reply_source(first) == "The *first* answer."
    expect(page.get_by_role("button", name="Send")).to_be_visible()


# --- A message sent meanwhile -----------------------------------------------------------


def test_a_message_sent_while_a_reply_streams_is_queued_said_so_and_sent_after(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    first_words = words(30)
    install_openai_stream(upstream, first_words, pause=0.1, model="fake-model-1")
    install_openai_stream(upstream, ["Second answer."], model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    sent_before = len(chat_requests(upstream))
    first = send(page, "First question.")
    expect(first.locator("[data-content]")).to_contain_text("w2")

    message_box(page).fill("Second question.")
    message_box(page).press("Enter")
    queued = page.locator("article.msg-user.is-queued")
    expect(queued).to_have_count(1)
    expect(queued).to_contain_text("Second question.")
    expect(queued).to_contain_text("Queued: it will be sent when the reply finishes")
    expect(message_box(page)).to_have_value("")

    # Another one, cancelled: its text comes back to the message box, it is never sent.
    message_box(page).fill("Never mind this one.")
    message_box(page).press("Enter")
    expect(queued).to_have_count(2)
    queued.nth(1).get_by_role("button", name="Cancel").click()
    expect(queued).to_have_count(1)
    expect(message_box(page)).to_have_value("Never mind this one.")
    expect(message_box(page)).to_be_focused()
    message_box(page).fill("")

    wait_until_done(first)
    replies = page.locator("article.msg-reply")
    expect(replies).to_have_count(2)
    wait_until_done(replies.nth(1))
    expect(replies.nth(1)).to_contain_text("Second answer.")
    expect(page.locator(".notices")).to_contain_text("Your queued message was sent.")
    expect(page.locator("article.msg-user.is-queued")).to_have_count(0)
    expect(page.locator("article.msg-user [data-content]")).to_have_text(
        ["First question.", "Second question."]
    )

    upstream.wait_for_requests(sent_before + 2)
    sent = [r.json()["messages"] for r in chat_requests(upstream)[-2:]]
    assert sent[1][-1] == {"role": "user", "content": "Second question."}
    assert sent[1][-2]["content"].strip() == "".join(first_words).strip()  # after the reply
    # (Earlier tests of the session sent their own "Never mind." to the shared upstream.)
    assert all("Never mind" not in r.body.decode() for r in chat_requests(upstream)[sent_before:])
    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg-user [data-content]")).to_have_text(
        ["First question.", "Second question."]
    )


def test_a_message_still_queued_when_the_page_is_reloaded_comes_back_in_the_message_box(
    page: Page, app_server: AppServer
) -> None:
    upstream = app_server.upstream
    install_openai_stream(upstream, words(80), pause=0.1, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    sent_before = len(chat_requests(upstream))
    reply = send(page, "First question.")
    expect(reply.locator("[data-content]")).to_contain_text("w2")
    message_box(page).fill("Queued, then reloaded.")
    message_box(page).press("Enter")
    expect(page.locator("article.msg-user.is-queued")).to_have_count(1)

    page.reload()
    wait_for_chat(page)
    expect(message_box(page)).to_have_value("Queued, then reloaded.")
    expect(page.locator("article.msg-user.is-queued")).to_have_count(0)
    page.get_by_role("button", name="Stop").click()
    wait_until_done(page.locator("article.msg-reply").last, "stopped")
    assert len(chat_requests(upstream)) == sent_before + 1  # not sent behind the person's back


# --- Markdown as it arrives -------------------------------------------------------------

LIVE_MARKDOWN = (
    "Here are the scores:\n\n"
    "| Name | Score |\n|---|---|\n| Ada | 10 |\n| Linus | 9 |\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "- one\n- two\n\n"
    "That is all."
)


def test_tables_code_and_lists_take_shape_while_the_reply_streams_with_no_jump_at_the_end(
    page: Page, app_server: AppServer
) -> None:
    chunks = [LIVE_MARKDOWN[i : i + 8] for i in range(0, len(LIVE_MARKDOWN), 8)]
    app_server.upstream.add("POST", CHAT_ROUTE, held_stream(chunks, pause=0.02, hold=2.5))
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Scores, code and a list, please.")
    content = reply.locator("[data-content]")

    expect(content.locator("table td").first).to_have_text("Ada")
    expect(content.locator("pre code")).to_contain_text("return a + b")
    expect(content.locator("li")).to_have_count(2)
    expect(content).to_contain_text("That is all.")
    expect(reply).to_have_attribute("data-status", "streaming")  # all this before the end
    expect(content.locator("table tbody tr")).to_have_count(2)
    assert content.locator("text=```").count() == 0  # no raw fences on screen
    live_height = content.bounding_box()["height"]

    wait_until_done(reply)
    expect(content.locator("pre.code-block .tok-k").first).to_have_text("def")  # the server's
    assert abs(content.bounding_box()["height"] - live_height) <= 2, "the reply jumped at its end"


def test_without_its_markdown_libraries_the_page_streams_plain_text_and_keeps_working(
    page: Page, app_server: AppServer
) -> None:
    page.context.route("**/static/chat/vendor/**", lambda route: route.abort())
    chunks = [LIVE_MARKDOWN[i : i + 8] for i in range(0, len(LIVE_MARKDOWN), 8)]
    app_server.upstream.add("POST", CHAT_ROUTE, held_stream(chunks, pause=0.01, hold=1.5))
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Scores, please.")
    content = reply.locator("[data-content]")

    expect(content).to_contain_text("| Ada | 10 |")  # the text as it came, as text
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(content.locator("table")).to_have_count(0)
    wait_until_done(reply)
    expect(content.locator("table td").first).to_have_text("Ada")  # the server's rendering
    expect(content.locator("pre.code-block")).to_be_visible()


HOSTILE_MARKDOWN = (
    "| a | b |\n|---|---|\n"
    '| <img src=x onerror="window.__xss = 1"> | [x](javascript:window.__xss=2) |\n\n'
    "![y](javascript:window.__xss=3) <script>window.__xss = 4</script>\n"
    '<a href="javascript:window.__xss=5" onclick="window.__xss=6">a</a>\n\n'
    "```\n</code></pre><img src=x onerror=window.__xss=7>\n```\n"
)


def test_markdown_rendered_while_streaming_is_sanitized_before_it_reaches_the_page(
    page: Page, app_server: AppServer
) -> None:
    chunks = [HOSTILE_MARKDOWN[i : i + 5] for i in range(0, len(HOSTILE_MARKDOWN), 5)]
    app_server.upstream.add("POST", CHAT_ROUTE, held_stream(chunks, pause=0.01, hold=2.0))
    sign_up(page)
    page.evaluate(
        """() => {
          window.__unsafe = [];
          new MutationObserver((records) => {
            for (const record of records) {
              for (const node of record.addedNodes) {
                if (node.nodeType !== 1) continue;
                for (const el of [node, ...node.querySelectorAll("*")]) {
                  const active = el.matches("img, script, iframe, svg, object, embed");
                  const handler = [...el.attributes].some(
                    (a) => /^on/i.test(a.name) || /^\\s*javascript:/i.test(a.value)
                  );
                  if (active || handler) window.__unsafe.push(el.outerHTML);
                }
              }
            }
          }).observe(document.getElementById("thread"), { subtree: true, childList: true });
        }"""
    )
    choose_model(page, FAKE_1)
    reply = send(page, "Say something dangerous.")
    content = reply.locator("[data-content]")

    expect(content.locator("table")).to_be_visible()  # rendered as Markdown while streaming
    expect(content.locator("pre")).to_contain_text("<img src=x onerror=window.__xss=7>")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(content).to_contain_text('<img src=x onerror="window.__xss = 1">')  # as text
    assert page.evaluate("window.__unsafe") == []
    wait_until_done(reply)
    assert page.evaluate("window.__unsafe") == []
    assert page.evaluate("window.__xss === undefined")


# --- Focus ------------------------------------------------------------------------------


def test_after_stop_the_focus_is_back_in_the_message_box(page: Page, app_server: AppServer) -> None:
    install_openai_stream(app_server.upstream, words(200), pause=0.05, model="fake-model-1")
    sign_up(page)
    choose_model(page, FAKE_1)
    reply = send(page, "Talk for a while.")
    expect(reply.locator("[data-content]")).to_contain_text("w2")
    page.get_by_role("button", name="Stop").focus()
    page.keyboard.press("Enter")
    wait_until_done(reply, "stopped", timeout=5_000)
    expect(message_box(page)).to_be_focused()


def test_regenerate_moves_the_focus_to_stop_then_back_to_the_message_box(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Name a colour."))
    install_openai_stream(app_server.upstream, words(20), pause=0.1, model="fake-model-1")
    page.get_by_role("button", name="Regenerate").click()
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_focused()
    reply = page.locator("article.msg-reply").last
    expect(reply).to_have_attribute("data-status", "streaming")
    wait_until_done(reply)
    expect(message_box(page)).to_be_focused()
    expect(reply.locator("[data-content]")).to_have_text(squash("".join(words(20))))


def test_cancelling_an_edit_returns_the_focus_to_that_messages_edit_button(
    page: Page, app_server: AppServer
) -> None:
    sign_up(page)
    choose_model(page, FAKE_1)
    wait_until_done(send(page, "Name a colour."))
    edit = page.locator("article.msg-user").last.get_by_role("button", name="Edit", exact=True)

    edit.click()
    box = page.get_by_role("textbox", name="Edit your message")
    expect(box).to_be_focused()
    box.press("Escape")
    expect(box).to_have_count(0)
    expect(edit).to_be_focused()

    edit.click()
    page.get_by_role("button", name="Cancel").click()
    expect(edit).to_be_focused()
