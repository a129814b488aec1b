"""Files sent with a message (issue 11): they go with the message into the history the
model receives, in the form the model reads; an image to a model that reads none is
refused before anything is saved; an edited message keeps its files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from chat import services
from chat.models import Attachment, Conversation, Message
from chat.providers import PROVIDER_REGISTRY
from chat.services import attachments as attachment_service
from chat.tests.test_attachments import CapableProvider, image_bytes, pdf_bytes, upload
from chat.tests.test_views import stream_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def capable(fake_provider: type) -> Iterator[type[CapableProvider]]:
    CapableProvider.scripts = fake_provider.scripts
    CapableProvider.calls = fake_provider.calls
    PROVIDER_REGISTRY["capable"] = CapableProvider
    try:
        yield CapableProvider
    finally:
        PROVIDER_REGISTRY.pop("capable", None)


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def conversation(alice: User, capable: type) -> Conversation:
    return Conversation.objects.create(owner=alice, provider="capable", model="sees-all")


def answer(conversation: Conversation, **kwargs: Any) -> services.PreparedReply:
    kwargs.setdefault("action", "send")

    async def go() -> services.PreparedReply:
        from asgiref.sync import sync_to_async

        prepared = await sync_to_async(services.reply_prepare)(conversation=conversation, **kwargs)
        await services.get_hub().start_run(prepared).done()
        return prepared

    return async_to_sync(go)()


def uploaded(owner: User, name: str, data: bytes) -> Attachment:
    return attachment_service.attachment_create(owner=owner, upload=upload(name, data))


def test_an_image_goes_to_a_vision_model_as_an_image_part(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    image = uploaded(alice, "cat.png", image_bytes())
    prepared = answer(conversation, content="What is this?", attachment_ids=[image.pk])

    sent = capable.calls[-1]["messages"][-1]
    assert sent["role"] == "user"
    parts = sent["content"]
    assert parts[0]["type"] == "image_url"
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[-1] == {"type": "text", "text": "What is this?"}
    image.refresh_from_db()
    assert image.message_id == prepared.user_message_id


def test_an_image_alone_can_be_sent(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    image = uploaded(alice, "cat.png", image_bytes())
    answer(conversation, content="   ", attachment_ids=[image.pk])
    assert [p["type"] for p in capable.calls[-1]["messages"][-1]["content"]] == ["image_url"]


def test_an_image_to_a_text_only_model_is_refused_and_nothing_saved(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    image = uploaded(alice, "cat.png", image_bytes())
    with pytest.raises(ValidationError) as refused:
        services.reply_prepare(
            conversation=conversation,
            action="send",
            content="What is this?",
            provider="capable",
            model="text-only",
            attachment_ids=[image.pk],
        )
    assert "sees-all" in str(refused.value)  # names a model that can read it
    assert not Message.objects.exists()
    image.refresh_from_db()
    assert image.message_id is None  # still attachable to another message


def test_a_pdf_goes_as_its_text_where_the_model_reads_no_pdf_and_the_person_is_told(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    pdf = uploaded(alice, "report.pdf", pdf_bytes("Quarterly revenue grew"))
    prepared = answer(
        conversation,
        content="Summarise",
        provider="capable",
        model="no-pdf",
        attachment_ids=[pdf.pk],
    )
    parts = capable.calls[-1]["messages"][-1]["content"]
    assert parts[0]["type"] == "text" and "Quarterly revenue grew" in parts[0]["text"]
    assert "report.pdf" in parts[0]["text"]
    assert prepared.notes and "report.pdf" in " ".join(prepared.notes)


def test_a_pdf_goes_natively_to_a_model_that_reads_pdfs(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    pdf = uploaded(alice, "report.pdf", pdf_bytes())
    prepared = answer(conversation, content="Summarise", attachment_ids=[pdf.pk])
    part = capable.calls[-1]["messages"][-1]["content"][0]
    assert part["type"] == "file"
    assert part["file"]["file_data"].startswith("data:application/pdf;base64,")
    assert not prepared.notes


def test_an_earlier_image_stays_in_the_history_of_later_turns(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    image = uploaded(alice, "cat.png", image_bytes())
    answer(conversation, content="What is this?", attachment_ids=[image.pk])
    answer(conversation, content="And its colour?")
    history = capable.calls[-1]["messages"]
    assert history[0]["content"][0]["type"] == "image_url"
    assert history[-1] == {"role": "user", "content": "And its colour?"}


def test_a_text_only_model_can_go_on_after_an_image_which_is_left_out_and_named(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    image = uploaded(alice, "cat.png", image_bytes())
    answer(conversation, content="What is this?", attachment_ids=[image.pk])
    prepared = answer(conversation, content="Go on", provider="capable", model="text-only")
    history = capable.calls[-1]["messages"]
    first = history[0]["content"]
    assert "image_url" not in str(first)
    assert "“cat.png” left out" in str(first) and "What is this?" in str(first)
    assert history[-1] == {"role": "user", "content": "Go on"}
    assert any("Earlier images" in note for note in prepared.notes)


def test_a_new_image_to_a_text_only_model_is_still_refused_after_earlier_ones(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    answer(conversation, content="hi", attachment_ids=[uploaded(alice, "a.png", image_bytes()).pk])
    count = Message.objects.count()
    with pytest.raises(ValidationError, match="cannot read images"):
        services.reply_prepare(
            conversation=conversation,
            action="send",
            content="And this one?",
            provider="capable",
            model="text-only",
            attachment_ids=[uploaded(alice, "b.png", image_bytes()).pk],
        )
    assert Message.objects.count() == count


def test_an_edited_message_keeps_its_files(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    image = uploaded(alice, "cat.png", image_bytes())
    first = answer(conversation, content="What is this?", attachment_ids=[image.pk])
    edited = answer(
        conversation, action="edit", message_id=first.user_message_id, content="Describe it."
    )
    copy = Attachment.objects.get(message_id=edited.user_message_id)
    assert copy.name == "cat.png" and copy.file.name != image.file.name
    assert capable.calls[-1]["messages"][-1]["content"][0]["type"] == "image_url"
    # Deleting the old branch leaves the copy's file in place.
    services.branch_delete(owner=alice, message_id=first.user_message_id)
    assert Path(copy.file.path).exists()


def test_the_page_sends_attachment_ids_with_the_message(
    alice: User, capable: type, media: Path
) -> None:
    client = Client()
    client.force_login(alice)
    image = uploaded(alice, "cat.png", image_bytes())
    response = client.post(
        reverse("chat:reply_new"),
        {
            "content": "Look",
            "provider": "capable",
            "model": "sees-all",
            "attachments": [str(image.pk)],
        },
    )
    assert response.status_code == 200
    async_to_sync(stream_body)(response)
    image.refresh_from_db()
    assert image.message is not None and image.message.content == "Look"
    page = client.get(reverse("chat:conversation", args=[image.message.conversation_id]))
    assert reverse("chat:attachment", args=[image.pk]) in page.content.decode()


def test_files_keep_the_order_the_person_attached_them_in(
    conversation: Conversation, alice: User, capable: type, media: Path
) -> None:
    # Uploads finish in any order: the later upload was attached first.
    second = uploaded(alice, "second.txt", b"second file")
    first = uploaded(alice, "first.txt", b"first file")
    prepared = answer(conversation, content="Compare them", attachment_ids=[first.pk, second.pk])
    parts = capable.calls[-1]["messages"][-1]["content"]
    assert "first.txt" in parts[0]["text"] and "second.txt" in parts[1]["text"]
    shown = Message.objects.get(pk=prepared.user_message_id).attachments.all()
    assert [a.name for a in shown] == ["first.txt", "second.txt"]
