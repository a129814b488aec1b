"""Hostile model output, titles, system prompts and messages execute nothing, in the
chat page (stored and while streaming), in search, and in the admin: checked in
Chromium, where a payload that ran would set ``window.__xss`` or open a dialog.

Every test runs twice: with the app's Content-Security-Policy (the page fixture fails on
any violation, i.e. on active content reaching the page) and with the header stripped
from every page, where the server's sanitizer and the page's script alone must hold.
Markers are read on the page where the payload arrived, before any reload or
navigation wipes them.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, Route, expect

from chat.tests.fakes.openai_fake import install_openai_stream
from chat.tests.xss_corpus import ALL_IN_ONE, PAYLOADS

from .conftest import STAFF_PASSWORD, STAFF_USERNAME, AppServer
from .test_chat_e2e import (
    FAKE_1,
    choose_model,
    send,
    sign_up,
    stream_chunks,
    wait_for_chat,
    wait_until_done,
)

pytestmark = pytest.mark.browser

HOSTILE_TITLE = '<img src=x onerror="window.__xss = 100">"><script>window.__xss=101</script>'
# Elements and attributes that have no business in a reply's content.
ACTIVE_CONTENT = "script, iframe, object, embed, svg, img, style, form, input, link, meta, base"


def strip_csp(route: Route) -> None:
    """Serve pages without their Content-Security-Policy header (other requests, the
    reply stream included, go through untouched)."""
    if route.request.resource_type != "document":
        route.continue_()
        return
    response = route.fetch()
    headers = {
        name: value
        for name, value in response.headers.items()
        if name.lower() != "content-security-policy"
    }
    route.fulfill(response=response, headers=headers)


@pytest.fixture(params=["with-csp", "without-csp"])
def page(page: Page, request: pytest.FixtureRequest) -> Page:
    """The browser page, once as served and once with the CSP header removed."""
    if request.param == "without-csp":
        page.route("**/*", strip_csp)
        response = page.goto("/accounts/login/")
        assert response is not None
        assert "content-security-policy" not in response.headers  # really off
    return page


def watch_for_execution(page: Page) -> list[str]:
    """Dialogs opened by the page; window.__xss is checked separately."""
    dialogs: list[str] = []

    def on_dialog(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", on_dialog)
    return dialogs


def assert_nothing_ran(page: Page, dialogs: list[str]) -> None:
    """On the page as it is now: a handler that fires after an image fails to load or
    on a timer has had its chance once the load event passed and a moment went by."""
    page.wait_for_load_state("load")
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 100))")
    assert page.evaluate("() => window.__xss === undefined"), page.evaluate("window.__xss")
    assert dialogs == []


def watch_reply_content(page: Page) -> None:
    """From now on, note every change to a reply's content (the text as it streams in,
    then the final rendering): how many, any active element or ``on*``/javascript:
    attribute it brings, and ``window.__xss`` as soon as it is set."""
    page.evaluate(
        """(activeContent) => {
          window.__contentChanges = 0;
          window.__activeContent = [];
          const note = (what) => window.__activeContent.push(String(what).slice(0, 200));
          const inspect = (node) => {
            const element = node.nodeType === 1 ? node : node.parentElement;
            if (!element || !element.closest("[data-content]")) return;
            window.__contentChanges += 1;
            for (const el of [element, ...element.querySelectorAll("*")]) {
              if (el.matches(activeContent)) note(el.outerHTML);
              for (const attr of el.attributes) {
                if (/^on/i.test(attr.name) || /^\\s*javascript:/i.test(attr.value)) {
                  note(el.outerHTML);
                }
              }
            }
          };
          new MutationObserver((records) => {
            for (const record of records) {
              inspect(record.target);
              record.addedNodes.forEach(inspect);
            }
            if (window.__xss !== undefined) note(`window.__xss = ${window.__xss}`);
          }).observe(document.getElementById("thread"), {
            subtree: true, childList: true, characterData: true, attributes: true,
          });
        }""",
        ACTIVE_CONTENT,
    )


def create_hostile_conversation(app_server: AppServer, username: str) -> str:
    script = (
        "from django.contrib.auth.models import User\n"
        "from chat.markdown import render_markdown\n"
        "from chat.models import Conversation, Message\n"
        f"payload = {json.dumps(ALL_IN_ONE)}\n"
        f"owner = User.objects.get(username={username!r})\n"
        f"conv = Conversation.objects.create(owner=owner, title={json.dumps(HOSTILE_TITLE)},"
        " provider='fakeai', model='fake-model-1', system_prompt=payload)\n"
        "Message.objects.create(conversation=conv, role='user', content=payload)\n"
        "Message.objects.create(conversation=conv, role='assistant', content=payload,"
        " content_html=render_markdown(payload), provider='fakeai', model='fake-model-1')\n"
        "Message.objects.create(conversation=conv, role='assistant', content='', status='error',"
        " error=payload, provider='fakeai', model='fake-model-1')\n"
        "print(conv.pk)\n"
    )
    return app_server.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def test_stored_hostile_content_runs_nothing_in_the_chat_page(
    page: Page, app_server: AppServer
) -> None:
    dialogs = watch_for_execution(page)
    username = sign_up(page)
    conversation_id = create_hostile_conversation(app_server, username)
    page.goto(f"/c/{conversation_id}/")
    wait_for_chat(page)
    thread = page.get_by_role("log", name="Messages")
    # The payloads are shown as text, not run.
    expect(thread.locator("article.msg-user")).to_contain_text("<script>window.__xss = 1</script>")
    expect(page.get_by_role("heading", level=1)).to_have_text(HOSTILE_TITLE)
    page.get_by_role("button", name="Settings").click()
    expect(page.get_by_label("System prompt")).to_have_value(ALL_IN_ONE)
    page.keyboard.press("Escape")
    page.get_by_role("link", name="Show earlier messages").count()  # the page is settled
    assert_nothing_ran(page, dialogs)
    assert thread.locator("script, iframe, object, svg, img, style, form, input").count() == 0


def test_hostile_search_query_runs_nothing(page: Page) -> None:
    dialogs = watch_for_execution(page)
    sign_up(page)
    for payload in PAYLOADS:
        page.goto("/?q=" + quote(payload, safe=""))
        # A search box holds one line: the browser drops the line breaks.
        expect(page.get_by_role("searchbox")).to_have_value(payload.replace("\n", ""))
        assert_nothing_ran(page, dialogs)  # on the page that showed this query


def test_hostile_reply_runs_nothing_while_streaming_and_after(
    page: Page, app_server: AppServer
) -> None:
    dialogs = watch_for_execution(page)
    sign_up(page)
    choose_model(page, FAKE_1)
    install_openai_stream(
        app_server.upstream, stream_chunks(ALL_IN_ONE, size=7), pause=0.005, model="fake-model-1"
    )
    watch_reply_content(page)
    reply = send(page, "Say something dangerous.")
    wait_until_done(reply)
    # Right after the stream, on the page that received it: nothing active ever
    # appeared in the reply while it streamed or when it was rendered, nothing ran.
    assert page.evaluate("window.__contentChanges") > 2  # it was watched as it streamed
    assert page.evaluate("window.__activeContent") == []
    assert_nothing_ran(page, dialogs)
    expect(reply.locator(".md")).to_contain_text("window.__xss = 1")
    assert reply.locator(ACTIVE_CONTENT).count() == 0
    # And the stored reply, rendered by the server on a fresh page.
    page.reload()
    wait_for_chat(page)
    expect(page.locator("article.msg-reply").last).to_contain_text("window.__xss = 1")
    assert page.locator("article.msg-reply").last.locator(ACTIVE_CONTENT).count() == 0
    assert_nothing_ran(page, dialogs)


def test_hostile_content_runs_nothing_in_the_admin(page: Page, app_server: AppServer) -> None:
    dialogs = watch_for_execution(page)
    username = sign_up(page)
    conversation_id = create_hostile_conversation(app_server, username)
    page.get_by_role("button", name="Log out").click()
    page.goto("/admin/")
    page.get_by_label("Username").fill(STAFF_USERNAME)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/admin/chat/conversation/?q=__xss")
    expect(page.locator("#result_list")).to_contain_text(HOSTILE_TITLE)
    page.goto(f"/admin/chat/conversation/{conversation_id}/change/")
    # The page is a read-only transcript: the title and the rendered messages as text.
    expect(page.locator(".field-title .readonly")).to_have_text(HOSTILE_TITLE)
    expect(page.locator(".transcript")).to_be_visible()
    assert_nothing_ran(page, dialogs)
