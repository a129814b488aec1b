"""Conversations as trees (issue 11): edits and regenerated replies are siblings, the
context is the path to the message answered, the branch shown is remembered, fork,
delete a branch, and compare (several models answering one message side by side)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from chat import services
from chat.models import Conversation, Message
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("bob", password="pw-bob-12345"))
    return client


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def conversation(alice: User, fake_provider: type) -> Conversation:
    return Conversation.objects.create(owner=alice, provider="fake", model="fake-small")


@pytest.fixture
def second_fake(fake_provider: type) -> Iterator[str]:
    """The same scripted provider registered a second time, as "fake2" (a second
    provider for compare)."""
    from chat.providers import PROVIDER_REGISTRY

    PROVIDER_REGISTRY["fake2"] = fake_provider
    try:
        yield "fake2"
    finally:
        PROVIDER_REGISTRY.pop("fake2", None)


def answer(conversation: Conversation, **kwargs: Any) -> services.PreparedReply:
    """Prepare one reply and run it to its end (action "send" unless given)."""
    kwargs.setdefault("action", "send")

    async def go() -> services.PreparedReply:
        prepared = await sync_to_async(services.reply_prepare)(conversation=conversation, **kwargs)
        runs = [services.get_hub().start_run(p) for p in (prepared, *prepared.compared)]
        for run in runs:
            await run.done()
        return prepared

    from asgiref.sync import async_to_sync

    return async_to_sync(go)()


def thread_texts(conversation: Conversation) -> list[str]:
    from chat.selectors import thread_page

    conversation.refresh_from_db()
    return [m.content for m in thread_page(conversation=conversation).messages]


def scripted(fake_provider: type, *texts: str) -> None:
    fake_provider.scripts += [Script(chunks=[t]) for t in texts]


# --- edit and regenerate make siblings --------------------------------------------------


def test_editing_an_early_message_keeps_the_old_branch(
    conversation: Conversation, fake_provider: type
) -> None:
    scripted(fake_provider, "A1", "A2", "A1 again")
    first = answer(conversation, content="Q1")
    answer(conversation, content="Q2")
    answer(conversation, action="edit", message_id=first.user_message_id, content="Q1 edited")

    assert thread_texts(conversation) == ["Q1 edited", "A1 again"]
    # The model saw only the new path: not Q2, not the old Q1.
    assert fake_provider.calls[-1]["messages"] == [{"role": "user", "content": "Q1 edited"}]
    # Nothing was lost: the old branch is one arrow away.
    assert Message.objects.filter(conversation=conversation).count() == 6
    services.branch_show(owner=conversation.owner, message_id=first.user_message_id)
    assert thread_texts(conversation) == ["Q1", "A1", "Q2", "A2"]


def test_regenerating_any_reply_adds_a_sibling_and_sends_only_its_path(
    conversation: Conversation, fake_provider: type
) -> None:
    scripted(fake_provider, "A1", "A2", "A1 bis")
    first = answer(conversation, content="Q1")
    answer(conversation, content="Q2")
    again = answer(conversation, action="regenerate", reply_id=first.reply_id)

    assert thread_texts(conversation) == ["Q1", "A1 bis"]
    assert fake_provider.calls[-1]["messages"] == [{"role": "user", "content": "Q1"}]
    siblings = list(
        Message.objects.filter(parent_id=first.user_message_id).values_list("content", flat=True)
    )
    assert siblings == ["A1", "A1 bis"]
    assert Message.objects.get(pk=again.reply_id).parent_id == first.user_message_id


def test_a_message_sent_after_switching_branch_follows_the_branch_shown(
    conversation: Conversation, fake_provider: type
) -> None:
    scripted(fake_provider, "A1", "A2", "B2", "after A2")
    answer(conversation, content="Q1")
    q2 = answer(conversation, content="Q2")
    answer(conversation, action="edit", message_id=q2.user_message_id, content="Q2 other")
    services.branch_show(owner=conversation.owner, message_id=q2.user_message_id)
    conversation.refresh_from_db()

    answer(conversation, content="Q3")
    assert fake_provider.calls[-1]["messages"] == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
        {"role": "user", "content": "Q3"},
    ]


def test_a_parent_from_another_conversation_is_refused_and_nothing_saved(
    conversation: Conversation, alice: User, fake_provider: type
) -> None:
    other = Conversation.objects.create(owner=alice, provider="fake", model="fake-small")
    elsewhere = answer(other, content="elsewhere")
    before = Message.objects.count()
    with pytest.raises(ValidationError, match="no longer in this conversation"):
        services.reply_prepare(
            conversation=conversation,
            action="send",
            content="hi",
            parent_id=elsewhere.reply_id,
        )
    assert Message.objects.count() == before


# --- the branch shown, the page ---------------------------------------------------------


def test_the_page_shows_the_arrows_and_remembers_the_branch(
    conversation: Conversation, fake_provider: type, alice_client: Client
) -> None:
    scripted(fake_provider, "first answer", "second answer")
    prepared = answer(conversation, content="Question")
    answer(conversation, action="regenerate", reply_id=prepared.reply_id)
    url = reverse("chat:conversation", args=[conversation.pk])

    page = alice_client.get(url).content.decode()
    assert "second answer" in page and "first answer" not in page
    assert "2 / 2" in page

    response = alice_client.post(reverse("chat:show", args=[prepared.reply_id]))
    assert response.status_code == 200
    assert "first answer" in response.content.decode()
    page = alice_client.get(url).content.decode()  # a reload shows the branch chosen
    assert "first answer" in page and "second answer" not in page and "1 / 2" in page


def test_a_search_hit_on_another_branch_opens_that_branch(
    conversation: Conversation, fake_provider: type, alice_client: Client
) -> None:
    scripted(fake_provider, "walrus facts", "penguin facts")
    prepared = answer(conversation, content="Tell me")
    answer(conversation, action="regenerate", reply_id=prepared.reply_id)
    url = reverse("chat:conversation", args=[conversation.pk])
    page = alice_client.get(url, {"q": "walrus", "hit": prepared.reply_id}).content.decode()
    assert "walrus facts" in page and "penguin facts" not in page


def test_the_earlier_messages_of_a_branch_come_from_that_branch(
    conversation: Conversation, fake_provider: type, alice_client: Client
) -> None:
    from chat.selectors import thread_page

    for i in range(4):
        scripted(fake_provider, f"A{i}")
        answer(conversation, content=f"Q{i}")
    conversation.refresh_from_db()
    page = thread_page(conversation=conversation, limit=3)
    assert [m.content for m in page.messages] == ["A2", "Q3", "A3"]
    earlier = alice_client.get(
        reverse("chat:messages", args=[conversation.pk]),
        {"before": page.earlier_id, "leaf": page.leaf_id},
    )
    assert earlier.status_code == 200 and "Q0" in earlier.content.decode()


# --- fork and delete --------------------------------------------------------------------


def test_fork_copies_the_path_into_a_new_conversation(
    conversation: Conversation, fake_provider: type, alice_client: Client
) -> None:
    scripted(fake_provider, "A1", "A2")
    first = answer(conversation, content="Q1")
    answer(conversation, content="Q2")
    response = alice_client.post(reverse("chat:fork", args=[first.reply_id]))
    assert response.status_code == 201
    fork = Conversation.objects.get(pk=response.json()["id"])
    assert fork.owner == conversation.owner and fork.pk != conversation.pk
    assert thread_texts(fork) == ["Q1", "A1"]
    assert thread_texts(conversation) == ["Q1", "A1", "Q2", "A2"]  # untouched
    copied = fork.messages.get(role="assistant")
    assert copied.provider == "fake" and copied.output_tokens == 3


def test_deleting_a_branch_removes_it_and_shows_its_sibling(
    conversation: Conversation, fake_provider: type, alice_client: Client
) -> None:
    scripted(fake_provider, "A1", "A2", "B2")
    answer(conversation, content="Q1")
    q2 = answer(conversation, content="Q2")
    edited = answer(conversation, action="edit", message_id=q2.user_message_id, content="Q2b")

    response = alice_client.post(reverse("chat:message_delete", args=[edited.user_message_id]))
    assert response.status_code == 200
    assert not Message.objects.filter(pk__in=[edited.user_message_id, edited.reply_id]).exists()
    assert thread_texts(conversation) == ["Q1", "A1", "Q2", "A2"]


def test_a_branch_being_written_cannot_be_deleted(
    conversation: Conversation, fake_provider: type
) -> None:
    prepared = services.reply_prepare(conversation=conversation, action="send", content="Q")
    with pytest.raises(ValidationError, match="being written"):
        services.branch_delete(owner=conversation.owner, message_id=prepared.user_message_id)
    assert Message.objects.filter(pk=prepared.reply_id).exists()


@pytest.mark.parametrize("name", ["show", "fork", "message_delete"])
def test_another_persons_message_is_404_for_branch_actions(
    conversation: Conversation, fake_provider: type, bob_client: Client, name: str
) -> None:
    prepared = answer(conversation, content="private")
    response = bob_client.post(reverse(f"chat:{name}", args=[prepared.reply_id]))
    assert response.status_code == 404
    assert Message.objects.filter(pk=prepared.reply_id).exists()
    assert Conversation.objects.count() == 1


# --- compare ----------------------------------------------------------------------------


def test_compare_answers_one_message_with_several_models_as_siblings(
    conversation: Conversation, fake_provider: type, second_fake: str
) -> None:
    prepared = answer(
        conversation,
        content="Which is best?",
        compare=[("fake", "fake-small"), ("fake", "fake-large"), (second_fake, "fake-small")],
    )
    replies = list(Message.objects.filter(parent_id=prepared.user_message_id).order_by("id"))
    assert [(r.provider, r.model) for r in replies] == [
        ("fake", "fake-small"),
        ("fake", "fake-large"),
        ("fake2", "fake-small"),
    ]
    assert all(r.status == "complete" and r.content for r in replies)
    assert {c["model"] for c in fake_provider.calls} == {"fake-small", "fake-large"}
    conversation.refresh_from_db()
    # The question stays the end of the branch until the person picks a reply.
    assert conversation.current_leaf_id == prepared.user_message_id
    with pytest.raises(ValidationError, match="Pick the reply"):
        services.reply_prepare(conversation=conversation, action="send", content="next")

    services.branch_show(owner=conversation.owner, message_id=replies[1].pk)
    conversation.refresh_from_db()
    follow = answer(conversation, content="Go on")
    assert Message.objects.get(pk=follow.user_message_id).parent_id == replies[1].pk
    assert fake_provider.calls[-1]["messages"][-2]["content"] == replies[1].content


@pytest.mark.parametrize("count", [1, 5])
def test_compare_takes_two_to_four_models(
    conversation: Conversation, fake_provider: type, count: int
) -> None:
    with pytest.raises(ValidationError, match="2 to 4"):
        services.reply_prepare(
            conversation=conversation,
            action="send",
            content="hi",
            compare=[("fake", f"model-{i}") for i in range(count)],
        )
    assert not Message.objects.exists()


def test_the_compare_endpoint_starts_every_reply_and_says_where_to_follow(
    alice_client: Client, fake_provider: type, second_fake: str
) -> None:
    response = alice_client.post(
        reverse("chat:reply_new"),
        {"content": "Compare us", "compare": ["fake/fake-small", "fake2/fake-large"]},
    )
    assert response.status_code == 201
    data = response.json()
    assert data["created"] and len(data["replies"]) == 2
    page = alice_client.get(data["url"]).content.decode()
    assert "data-compare" in page and "Continue with this one" in page
    for reply in data["replies"]:
        assert reply["events_url"] == reverse("chat:events", args=[reply["id"]])


# --- every branch in exports and the admin ----------------------------------------------


def test_exports_hold_every_branch_with_its_tree(
    conversation: Conversation, fake_provider: type
) -> None:
    from chat.exports import conversations_export_rows, conversations_to_markdown

    scripted(fake_provider, "first answer", "second answer")
    prepared = answer(conversation, content="Question")
    answer(conversation, action="regenerate", reply_id=prepared.reply_id)
    services.branch_show(owner=conversation.owner, message_id=prepared.reply_id)

    (row,) = conversations_export_rows(Conversation.objects.filter(pk=conversation.pk))
    by_content = {m["content"]: m for m in row["messages"]}
    assert by_content["first answer"]["parent_id"] == prepared.user_message_id
    assert by_content["second answer"]["parent_id"] == prepared.user_message_id
    assert by_content["first answer"]["version"] == {"index": 1, "count": 2}
    assert by_content["first answer"]["on_branch_shown"]
    assert not by_content["second answer"]["on_branch_shown"]
    assert row["branch_shown"] == prepared.reply_id
    markdown = conversations_to_markdown([row])
    assert "(version 1 of 2)" in markdown and "(version 2 of 2)" in markdown
    assert "second answer" in markdown


def test_the_admin_transcript_shows_every_branch(
    conversation: Conversation, fake_provider: type, client: Client
) -> None:
    scripted(fake_provider, "first answer", "second answer")
    prepared = answer(conversation, content="Question")
    answer(conversation, action="regenerate", reply_id=prepared.reply_id)
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw-root-12345"))
    page = client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    html = page.content.decode()
    assert "first answer" in html and "second answer" in html
    assert "version 1 of 2" in html and "not on the branch shown" in html


def test_compared_replies_show_their_cost_when_a_price_is_known(
    alice_client: Client, fake_provider: type, second_fake: str
) -> None:
    from decimal import Decimal

    from usage.models import ModelPrice

    ModelPrice.objects.create(
        provider="fake",
        model="fake-small",
        input_per_mtok=Decimal("1000"),
        output_per_mtok=Decimal("2000"),
        source="admin",
    )
    response = alice_client.post(
        reverse("chat:reply_new"),
        {"content": "Price us", "compare": ["fake/fake-small", "fake2/fake-large"]},
    )
    data = response.json()
    from chat.services import get_hub

    async def settle() -> None:
        for reply in data["replies"]:
            run = get_hub().get(reply["id"])
            if run is not None:
                await run.done()

    from asgiref.sync import async_to_sync

    async_to_sync(settle)()
    page = alice_client.get(data["url"]).content.decode()
    # The fake reports 10 input and 3 output tokens: 10 x 1000 + 3 x 2000 per million.
    assert "$0.016" in page
    assert page.count("data-cost") == 1  # fake2 has no price: no cost shown
