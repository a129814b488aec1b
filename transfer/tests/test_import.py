"""Importing into the database: trees and branches, round trips, duplicates, limits,
and nothing half-imported."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import Attachment, Conversation, Message
from chat.selectors import conversation_tree
from chat.services.attachments import attachment_create
from transfer.models import ImportBatch, ImportedConversation
from transfer.services import export, importer

from .conftest import fixture_bytes, png_bytes

pytestmark = pytest.mark.django_db


def run_import(owner: Any, data: bytes, name: str = "upload.json") -> ImportBatch:
    return importer.conversations_import(owner=owner, handle=io.BytesIO(data), file_name=name)


def refused(owner: Any, data: bytes, name: str = "upload.json") -> list[str]:
    with pytest.raises(ValidationError) as caught:
        run_import(owner, data, name)
    return caught.value.messages


def signature(conversation: Conversation) -> dict[str, Any]:
    """Everything a person sees of a conversation, without ids: each message (depth
    first) with its parent's text, its place among its versions, its model and status,
    its files' names and bytes; and the thread shown."""
    tree = conversation_tree(conversation_id=conversation.pk)
    rows = {m.pk: m for m in conversation.messages.prefetch_related("attachments")}
    messages = []
    for pk in tree.depth_first():
        m = rows[pk]
        placed = tree.siblings(pk)
        parent = tree.parent[pk]
        files = []
        for a in m.attachments.all():
            with a.file.open("rb") as handle:
                files.append((a.name, a.kind, handle.read()))
        messages.append(
            (
                m.role,
                m.content,
                rows[parent].content if parent else None,
                (placed.index, placed.count),
                m.provider,
                m.model,
                m.status,
                m.finish_reason,
                m.reasoning,
                m.input_tokens,
                m.output_tokens,
                tuple(files),
            )
        )
    return {
        "title": conversation.title,
        "settings": (
            conversation.provider,
            conversation.model,
            conversation.system_prompt,
            conversation.temperature,
            conversation.max_tokens,
        ),
        "messages": messages,
        "shown": [rows[pk].content for pk in tree.thread(conversation.current_leaf_id)],
    }


def branched_conversation(owner: Any, media: Path) -> Conversation:
    """Alice's conversation: an edited first question (two versions), a regenerated
    reply (two versions), files on the question, and the OLDER branch shown."""
    conversation = Conversation.objects.create(
        owner=owner,
        title='Trip "plan" / Paris',
        provider="openai",
        model="gpt-4o",
        system_prompt="Be brief.",
        temperature=0.5,
        max_tokens=300,
    )
    q1 = Message.objects.create(conversation=conversation, role="user", content="Plan a trip")
    for upload in (
        SimpleUploadedFile("map.png", png_bytes()),
        SimpleUploadedFile("notes.txt", b"Museums first."),
    ):
        attachment = attachment_create(owner=owner, upload=upload)
        attachment.message = q1
        attachment.save()
    r1 = Message.objects.create(
        conversation=conversation,
        parent=q1,
        role="assistant",
        content="Day 1: **Louvre**.",
        provider="openai",
        model="gpt-4o",
        finish_reason="stop",
        input_tokens=12,
        output_tokens=30,
        reasoning="Think of museums.",
    )
    Message.objects.create(
        conversation=conversation,
        parent=q1,
        role="assistant",
        content="Day 1: Eiffel tower.",
        provider="anthropic",
        model="claude-sonnet-4-5",
        status="incomplete",
        finish_reason="length",
    )
    follow = Message.objects.create(
        conversation=conversation, parent=r1, role="user", content="And day 2?"
    )
    Message(conversation=conversation, role="user", content="Plan a trip to Rome").save(root=True)
    conversation.current_leaf = follow
    conversation.save()
    return conversation


def test_round_trip_through_the_zip_gives_the_same_tree(alice: Any, bob: Any, media: Path) -> None:
    original = branched_conversation(alice, media)
    archive = b"".join(export.conversations_zip_chunks(queryset=export.conversations_of(alice)))

    batch = run_import(bob, archive, "chat-ai-conversations.zip")

    assert (batch.conversations_imported, batch.messages_imported, batch.attachments_imported) == (
        1,
        5,
        2,
    )
    (copy,) = Conversation.objects.filter(owner=bob)
    assert signature(copy) == signature(original)
    assert signature(copy)["shown"] == ["Plan a trip", "Day 1: **Louvre**.", "And day 2?"]
    # the files are bob's own copies, and the reply is rendered
    assert Attachment.objects.filter(owner=bob).count() == 2
    assert (
        "<strong>Louvre</strong>" in copy.messages.get(content__startswith="Day 1: **").content_html
    )
    assert batch.notes == []


def test_single_json_export_names_files_that_are_left_out(
    alice: Any, bob: Any, media: Path
) -> None:
    original = branched_conversation(alice, media)
    document = export.conversation_export_json(conversation=original)

    batch = run_import(bob, document.encode(), "trip.json")

    (copy,) = Conversation.objects.filter(owner=bob)
    assert [m[:4] for m in signature(copy)["messages"]] == [
        m[:4] for m in signature(original)["messages"]
    ]
    assert batch.attachments_imported == 0
    (note,) = batch.notes
    assert "2 files were only named in the source" in note and "“map.png”" in note


def test_chatgpt_branches_become_versions(alice: Any, media: Path) -> None:
    batch = run_import(alice, fixture_bytes("chatgpt_conversations.json"), "conversations.json")
    assert (batch.conversations_imported, batch.messages_imported) == (2, 9)
    capitals = Conversation.objects.get(owner=alice, title="Capitals")
    seen = signature(capitals)
    versions = {text: place for _role, text, _parent, place, *_rest in seen["messages"]}
    assert versions["What is the capital of France?"] == (1, 2)
    assert versions["What is the capital of Italy?"] == (2, 2)
    assert versions["Paris."] == (1, 2) and versions["It is **Paris**."] == (2, 2)
    assert seen["shown"] == [
        "What is the capital of France?",
        "It is **Paris**.",
        "And Germany? Check with Python.",
        "Let me check.\n\nBerlin.",
    ]
    assert capitals.created_at.year == 2023 and capitals.provider == "openai"
    imported = ImportedConversation.objects.get(conversation=capitals)
    assert imported.source_format == "chatgpt" and imported.external_id.endswith("0001")


def test_claude_import_keeps_the_document_as_a_text_file(alice: Any, media: Path) -> None:
    batch = run_import(alice, fixture_bytes("claude_conversations.json"), "conversations.json")
    assert batch.attachments_imported == 1
    (document,) = Attachment.objects.filter(owner=alice)
    assert document.name == "notes.docx.txt" and document.kind == "text"
    assert document.message.content == "Please summarise the attached notes."
    assert any("“whiteboard.jpg”" in note for note in batch.notes)
    haiku = Conversation.objects.get(owner=alice, title="Haiku")
    assert signature(haiku)["shown"] == ["Write a haiku about the sea.", "Waves fold into foam"]


def test_openai_list_gets_its_system_prompt(alice: Any) -> None:
    run_import(alice, fixture_bytes("openai_messages.json"))
    (conversation,) = Conversation.objects.filter(owner=alice)
    assert conversation.system_prompt == "You are a terse assistant."
    assert signature(conversation)["shown"] == [
        "How many legs does a spider have?",
        "Eight.",
        "And an ant?",
        "Six.",
    ]


def test_a_conversation_twice_in_one_file_is_imported_once(alice: Any) -> None:
    rows = json.loads(fixture_bytes("chatgpt_conversations.json"))
    batch = run_import(alice, json.dumps([*rows, rows[0]]).encode(), "twice.json")
    assert batch.conversations_imported == 2
    capitals = Conversation.objects.get(owner=alice, title="Capitals")
    assert batch.skipped == [{"title": "Capitals", "conversation_id": capitals.pk}]


def test_importing_the_same_file_twice_adds_nothing_twice(alice: Any) -> None:
    data = fixture_bytes("chatgpt_conversations.json")
    first = run_import(alice, data)
    second = run_import(alice, data)
    assert Conversation.objects.filter(owner=alice).count() == 2
    assert second.conversations_imported == 0
    assert sorted(s["title"] for s in second.skipped) == ["A cat picture", "Capitals"]
    assert {s["conversation_id"] for s in second.skipped} == set(
        first.conversations.values_list("conversation_id", flat=True)
    )


def test_another_person_can_import_the_same_file(alice: Any, bob: Any) -> None:
    data = fixture_bytes("openai_messages.json")
    run_import(alice, data)
    assert run_import(bob, data).conversations_imported == 1


def test_a_deleted_import_can_be_imported_again(alice: Any) -> None:
    data = fixture_bytes("openai_messages.json")
    run_import(alice, data)
    Conversation.objects.filter(owner=alice).delete()
    assert run_import(alice, data).conversations_imported == 1


def test_one_bad_conversation_saves_nothing_and_is_named(alice: Any) -> None:
    rows = json.loads(fixture_bytes("chatgpt_conversations.json"))
    rows.append({"title": "Broken", "mapping": "not a tree"})
    messages = refused(alice, json.dumps(rows).encode(), "conversations.json")
    assert messages == [
        "“conversations.json”, conversation 3 (“Broken”): “mapping” is missing or is not an object."
    ]
    assert not Conversation.objects.exists() and not ImportBatch.objects.exists()


def test_a_failure_while_saving_rolls_everything_back(
    alice: Any, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The picture belongs to the conversation saved FIRST; the second one fails.
    rows = json.loads(fixture_bytes("chatgpt_conversations.json"))
    rows.reverse()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("conversations.json", json.dumps(rows))
        zf.writestr("file-CatPic01-cat.png", png_bytes())
    real = importer._save_files
    calls = []

    def save_then_fail(**kwargs: Any) -> Any:
        calls.append(kwargs["item"].source.title)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(**kwargs)

    monkeypatch.setattr(importer, "_save_files", save_then_fail)
    with pytest.raises(RuntimeError):
        run_import(alice, buffer.getvalue(), "export.zip")
    assert calls == ["A cat picture", "Capitals"]
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert not Attachment.objects.exists() and not ImportBatch.objects.exists()
    stored = [p for p in media.rglob("*") if p.is_file()]
    assert stored == []  # the picture stored for the first conversation is gone too


def test_closing_the_steps_midway_rolls_back(alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "SAVE_BATCH", 1)
    steps = importer.conversations_import_steps(
        owner=alice,
        handle=io.BytesIO(fixture_bytes("chatgpt_conversations.json")),
        file_name="c.json",
    )
    for progress in steps:
        if progress.stage == importer.SAVING:
            break  # one conversation saved: the person left the page
    steps.close()
    assert not Conversation.objects.exists()


def test_progress_goes_through_each_stage(alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "SAVE_BATCH", 1)
    steps = importer.conversations_import_steps(
        owner=alice,
        handle=io.BytesIO(fixture_bytes("chatgpt_conversations.json")),
        file_name="c.json",
    )
    seen = [(p.stage, p.done, p.total) for p in steps]
    assert seen == [
        ("reading", 0, 0),
        ("preparing", 1, 2),
        ("preparing", 2, 2),
        ("saving", 1, 2),
        ("saving", 2, 2),
    ]


def test_too_large_a_file_is_refused(alice: Any, settings: Any) -> None:
    settings.TRANSFER_IMPORT_MAX_BYTES = 1000
    (message,) = refused(alice, fixture_bytes("chatgpt_conversations.json"), "big.json")
    assert message.startswith("“big.json” is too large (") and "up to 1000" in message


def test_too_many_conversations_are_refused(alice: Any, settings: Any) -> None:
    settings.TRANSFER_IMPORT_MAX_CONVERSATIONS = 1
    (message,) = refused(alice, fixture_bytes("chatgpt_conversations.json"), "c.json")
    assert "has 2 conversations: one import can have up to 1" in message


def test_too_many_messages_are_refused(alice: Any, settings: Any) -> None:
    settings.TRANSFER_IMPORT_MAX_MESSAGES = 3
    (message,) = refused(alice, fixture_bytes("openai_messages.json"), "m.json")
    assert "has 4 messages: one import can have up to 3" in message


def test_a_file_the_chat_refuses_is_left_out_with_the_reason(alice: Any, media: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("conversations.json", fixture_bytes("chatgpt_conversations.json"))
        zf.writestr("file-CatPic01-cat.png", b"not a picture at all")
    batch = run_import(alice, buffer.getvalue(), "export.zip")
    assert batch.conversations_imported == 2 and batch.attachments_imported == 0
    assert any("“A cat picture”" in n and "a file was left out" in n for n in batch.notes)


def test_a_conversation_with_only_tool_messages_is_left_out(alice: Any) -> None:
    document = [
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ]
        },
        {"messages": [{"role": "tool", "content": "42"}]},
    ]
    batch = run_import(alice, json.dumps(document).encode(), "batch.json")
    assert batch.conversations_imported == 1
    assert any("conversation 2" in n and "no messages to import" in n for n in batch.notes)


def test_the_admins_json_export_imports_too(alice: Any, bob: Any, media: Path) -> None:
    from chat.exports import conversations_export_rows

    original = branched_conversation(alice, media)
    rows = conversations_export_rows(Conversation.objects.filter(pk=original.pk))
    batch = run_import(bob, json.dumps(rows).encode(), "admin-export.json")
    assert batch.source_format == "chat_ai"
    (copy,) = Conversation.objects.filter(owner=bob)
    assert signature(copy)["shown"] == signature(original)["shown"]


# --- Folders, pins and the archive (this app's own format) ------------------------------


def chat_with_one_message(owner: Any, title: str, **fields: Any) -> Conversation:
    conversation = Conversation.objects.create(
        owner=owner, title=title, provider="fake", model="fake-small", **fields
    )
    Message.objects.create(conversation=conversation, role="user", content=f"About {title}")
    return conversation


def alices_travel_folder(alice: Any) -> dict[str, Conversation]:
    """Alice's folder "Travel" (a system prompt, new chats on fake-large) holding a
    pinned and archived chat and a plain one; a pinned chat outside any folder."""
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import Folder

    travel = Folder.objects.create(
        owner=alice,
        name="Travel",
        system_prompt="Use metric units.",
        provider="fake",
        model="fake-large",
    )
    now = timezone.now()
    return {
        "Paris": chat_with_one_message(
            alice,
            "Paris",
            folder=travel,
            pinned_at=now - timedelta(days=2, microseconds=123),
            archived_at=now - timedelta(hours=5),
        ),
        "Rome": chat_with_one_message(alice, "Rome", folder=travel),
        "Bread": chat_with_one_message(alice, "Bread", pinned_at=now - timedelta(minutes=7)),
    }


def placement(conversation: Conversation) -> tuple[Any, ...]:
    """Where a conversation sits: its folder's name, when it was pinned and archived."""
    folder = conversation.folder.name if conversation.folder else None
    return (folder, conversation.pinned_at, conversation.archived_at)


def test_round_trip_keeps_folders_pins_and_the_archive(
    alice: Any, bob: Any, media: Path, fake_provider: Any
) -> None:
    from chat.models import Folder

    originals = alices_travel_folder(alice)
    archive = b"".join(export.conversations_zip_chunks(queryset=export.conversations_of(alice)))

    batch = run_import(bob, archive, "chat-ai-conversations.zip")

    assert batch.conversations_imported == 3 and batch.notes == []
    copies = {c.title: c for c in Conversation.objects.filter(owner=bob).select_related("folder")}
    assert {title: placement(c) for title, c in copies.items()} == {
        title: placement(c) for title, c in originals.items()
    }
    assert copies["Paris"].pinned_at is not None and copies["Paris"].archived_at is not None
    # One folder for the two chats in it, bob's own, with what new chats in it start with.
    (folder,) = Folder.objects.filter(owner=bob)
    assert (folder.name, folder.system_prompt, folder.provider, folder.model) == (
        "Travel",
        "Use metric units.",
        "fake",
        "fake-large",
    )
    assert copies["Paris"].folder == copies["Rome"].folder == folder
    assert Folder.objects.filter(owner=alice).count() == 1  # alice's is untouched


def test_an_imported_folder_goes_into_the_persons_own_folder_of_that_name(
    alice: Any, bob: Any, fake_provider: Any
) -> None:
    from chat.models import Folder

    originals = alices_travel_folder(alice)
    mine = Folder.objects.create(owner=bob, name="TRAVEL", system_prompt="Bob's own prompt.")
    document = export.conversation_export_json(conversation=originals["Paris"])

    run_import(bob, document.encode(), "paris.json")

    (copy,) = Conversation.objects.filter(owner=bob)
    assert copy.folder == mine
    mine.refresh_from_db()
    assert (mine.name, mine.system_prompt, mine.provider, mine.model) == (
        "TRAVEL",
        "Bob's own prompt.",
        "",
        "",
    )
    assert Folder.objects.filter(owner=bob).count() == 1


def test_a_folder_model_the_importer_may_not_use_is_left_out_and_said(
    alice: Any, bob: Any, fake_provider: Any
) -> None:
    from django.contrib.auth.models import Group

    from access.models import ModelAccessRule

    group = Group.objects.create(name="interns")
    group.user_set.add(bob)
    ModelAccessRule.objects.create(group=group, provider="fake", model_pattern="fake-small")
    originals = alices_travel_folder(alice)
    document = export.conversation_export_json(conversation=originals["Rome"])

    batch = run_import(bob, document.encode(), "rome.json")

    (copy,) = Conversation.objects.filter(owner=bob).select_related("folder")
    assert copy.folder is not None
    assert (copy.folder.name, copy.folder.system_prompt, copy.folder.model) == (
        "Travel",
        "Use metric units.",
        "",
    )
    (note,) = batch.notes
    assert "“rome.json”, conversation 1 (“Rome”)" in note
    assert "its folder “Travel” was made without its model fake-large" in note
    assert "may not use fake-large" in note


def test_other_formats_import_outside_any_folder_unpinned(alice: Any) -> None:
    run_import(alice, fixture_bytes("chatgpt_conversations.json"), "conversations.json")
    assert {placement(c) for c in Conversation.objects.filter(owner=alice)} == {(None, None, None)}


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"folder": "Travel"}, "“folder” must be an object with a “name”, or null."),
        ({"folder": {"name": "  "}}, "its folder cannot be made: The folder name cannot be empty."),
        ({"pinned_at": "last Tuesday"}, "“pinned_at” must be a time (ISO 8601) or null."),
        ({"archived_at": True}, "“archived_at” must be a time (ISO 8601) or null."),
    ],
)
def test_a_bad_folder_or_pin_refuses_the_file_and_says_what(
    alice: Any, bob: Any, fields: dict[str, Any], problem: str
) -> None:
    original = chat_with_one_message(alice, "Paris")
    document = json.loads(export.conversation_export_json(conversation=original))
    document["conversations"][0].update(fields)

    messages = refused(bob, json.dumps(document).encode(), "edited.json")

    assert messages == [f"“edited.json”, conversation 1 (“Paris”): {problem}"]
    assert not Conversation.objects.filter(owner=bob).exists()
