"""Share links over HTTP: making one from the chat page, the owner's list and Revoke, the
shared page (who may open it, what it shows and hides, its headers), and "Continue in
my chats"."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import translation

from chat.markdown import render_markdown
from chat.models import Conversation, Message
from chat.tests.xss_corpus import ALL_IN_ONE
from sharing import services
from sharing.models import SharedLink

from .conftest import add

pytestmark = pytest.mark.django_db

SIGNED_IN = SharedLink.Audience.SIGNED_IN
PUBLIC = SharedLink.Audience.PUBLIC
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


def share(owner: User, conversation: Conversation, audience: str = SIGNED_IN) -> SharedLink:
    return services.shared_link_create(
        owner=owner, conversation_id=conversation.pk, audience=audience
    )


def page_url(link: SharedLink) -> str:
    return reverse("sharing:view", args=[link.token])


# --- Making a link ---------------------------------------------------------------------


def test_the_share_dialog_makes_a_link_and_answers_its_address(
    alice_client: Client, conversation: Conversation
) -> None:
    response = alice_client.post(
        reverse("sharing:create", args=[conversation.pk]), {"audience": PUBLIC}, **FETCH
    )
    assert response.status_code == 201
    link = SharedLink.objects.get()
    assert response.json()["url"] == f"http://testserver/s/{link.token}/"
    assert (link.owner.username, link.audience) == ("alice", PUBLIC)


def test_a_link_for_someone_elses_conversation_is_a_404(
    bob_client: Client, conversation: Conversation
) -> None:
    response = bob_client.post(
        reverse("sharing:create", args=[conversation.pk]), {"audience": SIGNED_IN}, **FETCH
    )
    assert response.status_code == 404
    assert "not in your chats" in response.json()["error"]
    assert not SharedLink.objects.exists()


def test_a_public_link_is_refused_with_a_reason_while_forbidden(
    alice_client: Client, conversation: Conversation, settings: object
) -> None:
    settings.CHAT_PUBLIC_SHARE_LINKS = False  # type: ignore[attr-defined]
    response = alice_client.post(
        reverse("sharing:create", args=[conversation.pk]), {"audience": PUBLIC}, **FETCH
    )
    assert response.status_code == 400
    assert "Links for anyone are turned off on this server" in response.json()["error"]
    assert not SharedLink.objects.exists()


def test_the_chat_page_offers_share_and_disables_public_links_when_forbidden(
    alice_client: Client, conversation: Conversation, settings: object
) -> None:
    html = alice_client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert 'id="share-button"' in html and 'id="share-dialog"' in html
    assert reverse("sharing:mine") in html  # the sidebar's "Shared links"
    settings.CHAT_PUBLIC_SHARE_LINKS = False  # type: ignore[attr-defined]
    html = alice_client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert f'value="{PUBLIC}" disabled' in html
    assert "Links for anyone are turned off on this server." in html


def test_anonymous_visitors_cannot_make_links(client: Client, conversation: Conversation) -> None:
    response = client.post(reverse("sharing:create", args=[conversation.pk]), {"audience": PUBLIC})
    assert response.status_code == 302
    assert not SharedLink.objects.exists()


# --- The owner's list and Revoke -------------------------------------------------------


def test_my_links_page_lists_only_my_links(
    alice: User, bob: User, alice_client: Client, conversation: Conversation
) -> None:
    mine = share(alice, conversation)
    theirs_conversation = Conversation.objects.create(
        owner=bob, title="Bob's secret plan", provider="openai", model="gpt-4o"
    )
    add(theirs_conversation, Message.Role.USER, "hello")
    theirs = share(bob, theirs_conversation)
    html = alice_client.get(reverse("sharing:mine")).content.decode()
    assert "Trip plans" in html and mine.token in html
    assert "Bob" not in html and theirs.token not in html


def test_revoking_my_link_makes_it_a_404(
    alice: User, alice_client: Client, client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation, PUBLIC)
    assert client.get(page_url(link)).status_code == 200
    response = alice_client.post(reverse("sharing:revoke", args=[link.pk]), follow=True)
    assert "no longer opens" in response.content.decode()
    assert client.get(page_url(link)).status_code == 404
    assert alice_client.get(page_url(link)).status_code == 404


def test_i_cannot_revoke_someone_elses_link(
    alice: User, bob_client: Client, client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation, PUBLIC)
    assert bob_client.post(reverse("sharing:revoke", args=[link.pk])).status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is None
    assert client.get(page_url(link)).status_code == 200


# --- Who may open the shared page ------------------------------------------------------


def test_anyone_opens_a_public_link(
    alice: User, client: Client, conversation: Conversation
) -> None:
    response = client.get(page_url(share(alice, conversation, PUBLIC)))
    assert response.status_code == 200
    assert "Where should I go in May?" in response.content.decode()


def test_a_signed_in_only_link_sends_anonymous_visitors_to_sign_in(
    alice: User, bob_client: Client, client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation, SIGNED_IN)
    response = client.get(page_url(link))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/s/{link.token}/"
    assert bob_client.get(page_url(link)).status_code == 200


def test_a_public_link_is_signed_in_only_while_public_links_are_forbidden(
    alice: User, client: Client, conversation: Conversation, settings: object
) -> None:
    link = share(alice, conversation, PUBLIC)
    settings.CHAT_PUBLIC_SHARE_LINKS = False  # type: ignore[attr-defined]
    assert client.get(page_url(link)).status_code == 302


@pytest.mark.parametrize("token", ["nope", "x" * 43, "y" * 300])
def test_an_unknown_token_is_a_404(client: Client, token: str) -> None:
    assert client.get(f"/s/{token}/").status_code == 404


def test_views_are_counted_except_the_owners(
    alice: User, alice_client: Client, bob_client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation)
    alice_client.get(page_url(link))
    bob_client.get(page_url(link))
    bob_client.get(page_url(link))
    link.refresh_from_db()
    assert link.view_count == 2


# --- What the shared page shows --------------------------------------------------------


def test_the_page_shows_the_snapshot_and_nothing_else_of_its_owner(
    alice: User, bob_client: Client, conversation: Conversation
) -> None:
    other = Conversation.objects.create(
        owner=alice, title="Salary negotiation", provider="openai", model="gpt-4o"
    )
    add(other, Message.Role.USER, "How much should I ask?")
    html = bob_client.get(page_url(share(alice, conversation))).content.decode()
    assert "Trip plans" in html and "Shared on" in html
    assert "<strong>Lisbon</strong>" in html  # the stored, sanitized HTML
    assert "gpt-4o" in html  # which model wrote the reply
    assert "alice" not in html.lower()  # neither her user name nor her email
    for private in ("Salary negotiation", "private travel agent", "conv-list", "sidebar"):
        assert private not in html
    assert "Continue in my chats" in html


def test_the_page_has_the_sites_policy_noindex_and_no_cache(
    alice: User, client: Client, conversation: Conversation
) -> None:
    response = client.get(page_url(share(alice, conversation, PUBLIC)))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "noindex" in response["X-Robots-Tag"]
    assert '<meta name="robots" content="noindex' in response.content.decode()
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


class _Markup(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_hostile_messages_stay_inert_on_the_shared_page(
    alice: User, client: Client, conversation: Conversation
) -> None:
    add(conversation, Message.Role.USER, ALL_IN_ONE)
    add(conversation, Message.Role.ASSISTANT, ALL_IN_ONE)
    conversation.title = '<script>window.__xss = "title"</script>'
    conversation.save()
    html = client.get(page_url(share(alice, conversation, PUBLIC))).content.decode()
    markup = _Markup()
    markup.feed(html)
    for tag, attrs in markup.tags:
        assert tag not in {"script", "iframe", "object", "embed", "base", "form"} or (
            tag == "form" and attrs.get("action", "").startswith("/s/")
        ), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert "javascript:" not in (value or "").lower(), (tag, name, value)
    assert "window.__xss" in html  # the text is shown, as text


# --- Continue in my chats --------------------------------------------------------------


def test_continue_gives_the_viewer_their_own_copy(
    alice: User, bob: User, bob_client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation)
    response = bob_client.post(reverse("sharing:continue", args=[link.token]))
    copy = Conversation.objects.get(owner=bob)
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[copy.pk])
    assert list(copy.messages.values_list("content", flat=True)) == list(
        conversation.messages.values_list("content", flat=True)
    )
    page = bob_client.get(response["Location"]).content.decode()
    assert "Lisbon" in page and "your own copy" in page


def test_continue_asks_anonymous_visitors_to_sign_in_first(
    alice: User, client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation, PUBLIC)
    response = client.post(reverse("sharing:continue", args=[link.token]))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/s/{link.token}/"
    assert Conversation.objects.count() == 1


def test_continue_on_a_revoked_link_is_a_404(
    alice: User, bob_client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation)
    services.shared_link_revoke(owner=alice, link_id=link.pk)
    assert bob_client.post(reverse("sharing:continue", args=[link.token])).status_code == 404
    assert Conversation.objects.count() == 1


def test_the_page_renders_a_reply_saved_without_html_by_the_same_sanitizer(
    alice: User, client: Client, conversation: Conversation
) -> None:
    text = "**bold** <img src=x onerror=alert(1)>"
    add(conversation, Message.Role.ASSISTANT, text, content_html="")
    html = client.get(page_url(share(alice, conversation, PUBLIC))).content.decode()
    assert "<strong>bold</strong>" in html
    assert render_markdown(text) in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # HTML in Markdown is text


def test_the_shared_page_speaks_the_viewers_language(
    alice: User, client: Client, conversation: Conversation
) -> None:
    link = share(alice, conversation, PUBLIC)
    try:
        html = client.get(page_url(link), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    finally:
        translation.deactivate()  # the client ran the view in this test's thread
    assert "Войдите, чтобы продолжить этот чат" in html
    assert "Опубликовано" in html
