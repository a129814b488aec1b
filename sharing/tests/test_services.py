"""Share links as services: the snapshot (the branch on screen, frozen), revoking, and
continuing a shared conversation as one's own copy."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404

from chat.models import Conversation, Message
from chat.selectors import thread_page
from sharing import selectors, services
from sharing.models import SharedLink
from sharing.snapshot import messages_for_page

from .conftest import add

pytestmark = pytest.mark.django_db

SIGNED_IN = SharedLink.Audience.SIGNED_IN
PUBLIC = SharedLink.Audience.PUBLIC


def share(owner: User, conversation: Conversation, audience: str = SIGNED_IN) -> SharedLink:
    return services.shared_link_create(
        owner=owner, conversation_id=conversation.pk, audience=audience
    )


def texts(link: SharedLink) -> list[str]:
    link.refresh_from_db()
    return [m.content for m in messages_for_page(link.snapshot)]


def test_a_link_has_a_long_random_token(alice: User, conversation: Conversation) -> None:
    first, second = share(alice, conversation), share(alice, conversation)
    assert len(first.token) >= 43
    assert first.token != second.token


def test_the_snapshot_is_not_changed_by_later_edits(
    alice: User, conversation: Conversation
) -> None:
    link = share(alice, conversation)
    before = texts(link)
    reply = conversation.messages.get(role=Message.Role.ASSISTANT)
    reply.content = "Changed my mind: Oslo."
    reply.content_html = "<p>Changed my mind: Oslo.</p>"
    reply.save()
    add(conversation, Message.Role.USER, "A later question")
    conversation.title = "Renamed"
    conversation.save()

    assert before[0] == "Where should I go in May?"
    assert texts(link) == before
    assert "Oslo" not in str(link.snapshot)
    assert "Lisbon" in messages_for_page(link.snapshot)[1].html
    assert link.title == "Trip plans"


def test_the_snapshot_survives_deleting_the_messages(
    alice: User, conversation: Conversation
) -> None:
    link = share(alice, conversation)
    conversation.messages.all().delete()
    assert texts(link)[0] == "Where should I go in May?"


def test_deleting_the_conversation_deletes_its_links(
    alice: User, conversation: Conversation
) -> None:
    link = share(alice, conversation)
    conversation.delete()
    assert not SharedLink.objects.filter(pk=link.pk).exists()
    assert selectors.shared_link_for_token(token=link.token) is None


def test_the_snapshot_is_the_branch_on_screen(alice: User, conversation: Conversation) -> None:
    first_question = conversation.messages.get(role=Message.Role.USER)
    # An edit of the question: a second branch (shown), then the first one shown again.
    edited = Message(conversation=conversation, role=Message.Role.USER, content="Where in June?")
    edited.save(root=True)
    add(conversation, Message.Role.ASSISTANT, "Norway.")
    assert texts(share(alice, conversation)) == ["Where in June?", "Norway."]

    first_reply = conversation.messages.get(parent=first_question)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=first_reply)
    conversation.refresh_from_db()
    assert texts(share(alice, conversation)) == [
        "Where should I go in May?",
        first_reply.content,
    ]


def test_the_snapshot_keeps_nothing_private_of_the_owner(
    alice: User, conversation: Conversation
) -> None:
    reply = conversation.messages.get(role=Message.Role.ASSISTANT)
    Message.objects.filter(pk=reply.pk).update(
        reasoning="secret thoughts", error_detail="upstream said 401 at api.internal"
    )
    dumped = str(share(alice, conversation).snapshot)
    for private in ("private travel agent", "secret thoughts", "api.internal", "alice"):
        assert private not in dumped


def test_a_reply_being_written_cannot_be_shared(alice: User, conversation: Conversation) -> None:
    add(conversation, Message.Role.USER, "More?")
    add(conversation, Message.Role.ASSISTANT, "Wri", status=Message.Status.STREAMING)
    with pytest.raises(ValidationError, match="Wait for the reply to finish"):
        share(alice, conversation)
    assert not SharedLink.objects.exists()


def test_an_empty_conversation_cannot_be_shared(alice: User) -> None:
    empty = Conversation.objects.create(owner=alice, provider="openai", model="gpt-4o")
    with pytest.raises(ValidationError, match="nothing to share"):
        share(alice, empty)


def test_someone_elses_conversation_cannot_be_shared(bob: User, conversation: Conversation) -> None:
    with pytest.raises(Http404):
        share(bob, conversation)
    assert not SharedLink.objects.exists()


def test_public_links_are_refused_while_the_admin_forbids_them(
    alice: User, conversation: Conversation, settings: object
) -> None:
    settings.CHAT_PUBLIC_SHARE_LINKS = False  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="turned off on this server"):
        share(alice, conversation, PUBLIC)
    assert not SharedLink.objects.exists()
    assert share(alice, conversation, SIGNED_IN).audience == SIGNED_IN


def test_existing_public_links_open_for_signed_in_users_only_while_forbidden(
    alice: User, conversation: Conversation, settings: object
) -> None:
    link = share(alice, conversation, PUBLIC)
    settings.CHAT_PUBLIC_SHARE_LINKS = False  # type: ignore[attr-defined]
    assert link.effective_audience == SIGNED_IN
    settings.CHAT_PUBLIC_SHARE_LINKS = True  # type: ignore[attr-defined]
    assert link.effective_audience == PUBLIC


def test_only_the_owner_revokes_a_link(alice: User, bob: User, conversation: Conversation) -> None:
    link = share(alice, conversation)
    with pytest.raises(SharedLink.DoesNotExist):
        services.shared_link_revoke(owner=bob, link_id=link.pk)
    assert selectors.shared_link_for_token(token=link.token) is not None
    services.shared_link_revoke(owner=alice, link_id=link.pk)
    assert selectors.shared_link_for_token(token=link.token) is None


def test_continuing_makes_a_conversation_of_the_viewer_with_the_same_texts(
    alice: User, bob: User, conversation: Conversation
) -> None:
    link = share(alice, conversation)
    copy, images_left_out = services.shared_link_continue(link=link, viewer=bob)

    assert copy.owner == bob and copy.pk != conversation.pk
    assert copy.title == "Trip plans"
    assert (copy.provider, copy.model) == ("openai", "gpt-4o")
    assert copy.system_prompt == ""  # the owner's settings stay theirs
    assert not images_left_out
    page = thread_page(conversation=copy)
    assert [m.content for m in page.messages] == texts(link)
    # A proper chain: each message follows the one before, the last is the branch shown.
    first, second = page.messages
    assert first.parent_id is None and second.parent_id == first.pk
    assert copy.current_leaf_id == second.pk
    assert "<strong>Lisbon</strong>" in second.content_html
    assert conversation.messages.count() == 2  # the original is untouched


def test_replies_compared_side_by_side_stay_side_by_side(
    alice: User, bob: User, conversation: Conversation
) -> None:
    question = add(conversation, Message.Role.USER, "Which city is cheaper?")
    for text in ("Lisbon is.", "Porto is."):
        Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT, content=text, parent=question
        )
    link = share(alice, conversation)
    shown = messages_for_page(link.snapshot)
    assert [(m.content, m.compare) for m in shown[-3:]] == [
        ("Which city is cheaper?", False),
        ("Lisbon is.", True),
        ("Porto is.", True),
    ]

    copy, _ = services.shared_link_continue(link=link, viewer=bob)
    page = thread_page(conversation=copy)
    assert page.messages[-1].content == "Which city is cheaper?"
    assert sorted(m.content for m in page.compare) == ["Lisbon is.", "Porto is."]
