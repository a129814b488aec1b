"""Reading each import format into neutral conversations, and the refusals that name
the file, the conversation and what is wrong."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from transfer.formats import read_source
from transfer.formats.base import SourceConversation

from .conftest import fixture_bytes, png_bytes

BUDGET = 10 * 1024 * 1024


def read(data: bytes, name: str = "upload.json"):
    return read_source(io.BytesIO(data), file_name=name, unpacked_budget=BUDGET)


def refusal(data: bytes, name: str = "upload.json") -> list[str]:
    with pytest.raises(ValidationError) as caught:
        read(data, name)
    return caught.value.messages


def shape(conversation: SourceConversation) -> list[tuple[str, str | None, str]]:
    """(text, parent's text, role) of every message, in order."""
    text = {m.key: m.text for m in conversation.messages}
    return [
        (m.text, text.get(m.parent) if m.parent else None, m.role) for m in conversation.messages
    ]


def test_chatgpt_tree_keeps_edits_and_regenerations_as_branches() -> None:
    source = read(fixture_bytes("chatgpt_conversations.json"))
    assert source.format.name == "chatgpt"
    capitals, cat = source.conversations
    assert capitals.title == "Capitals"
    assert shape(capitals) == [
        # the hidden system message and the placeholder root are gone: two first messages
        ("What is the capital of France?", None, "user"),
        ("Paris.", "What is the capital of France?", "assistant"),
        ("It is **Paris**.", "What is the capital of France?", "assistant"),
        ("And Germany? Check with Python.", "It is **Paris**.", "user"),
        # the reply around the tool call is one reply; the code and its output are left out
        ("Let me check.\n\nBerlin.", "And Germany? Check with Python.", "assistant"),
        ("What is the capital of Italy?", None, "user"),
        ("Rome.", "What is the capital of Italy?", "assistant"),
    ]
    by_text = {m.text: m for m in capitals.messages}
    assert capitals.current_leaf == by_text["Let me check.\n\nBerlin."].key
    assert by_text["Rome."].reasoning == "Recalling\n\nItaly's capital is Rome."
    assert by_text["Rome."].model == "o3" and by_text["Paris."].provider == "openai"
    assert capitals.model == "gpt-4o" and capitals.external_id.endswith("0001")
    assert capitals.created_at.year == 2023
    assert cat.messages[0].text == "What is in this picture?"
    # conversations.json alone: the picture is named but not there
    assert [(a.name, a.data) for a in cat.messages[0].attachments] == [("cat.png", None)]
    assert any("3 system, tool or hidden messages were left out" in n for n in source.notes)


def test_chatgpt_export_zip_brings_its_pictures() -> None:
    picture = png_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("conversations.json", fixture_bytes("chatgpt_conversations.json"))
        zf.writestr("chat.html", "<html></html>")
        zf.writestr("file-CatPic01-cat.png", picture)
    source = read(buffer.getvalue(), "export.zip")
    attachment = source.conversations[1].messages[0].attachments[0]
    assert (attachment.name, attachment.data) == ("cat.png", picture)


def test_claude_export_text_reasoning_documents_and_branches() -> None:
    source = read(fixture_bytes("claude_conversations.json"))
    assert source.format.name == "claude"
    notes, haiku = source.conversations
    assert shape(notes) == [
        ("Please summarise the attached notes.", None, "user"),
        (
            "The meeting is on Monday and the budget was approved.",
            "Please summarise the attached notes.",
            "assistant",
        ),
        ("Thanks!", "The meeting is on Monday and the budget was approved.", "user"),
    ]
    assert notes.messages[1].reasoning == "Two facts: a meeting, a budget."
    document, picture = notes.messages[0].attachments
    assert (document.name, document.data) == (
        "notes.docx.txt",
        b"Meeting on Monday. Budget approved.",
    )
    assert (picture.name, picture.data) == ("whiteboard.jpg", None)
    assert notes.provider == "anthropic" and notes.external_id.endswith("0001")
    # parent_message_uuid: both replies answer the question; the first one was shown
    assert shape(haiku) == [
        ("Write a haiku about the sea.", None, "user"),
        ("Waves fold into foam", "Write a haiku about the sea.", "assistant"),
        ("Salt wind on the shore", "Write a haiku about the sea.", "assistant"),
    ]
    assert haiku.current_leaf == haiku.messages[1].key
    assert any("2 tool calls or tool results were left out" in n for n in source.notes)


def test_openai_message_list_is_one_conversation() -> None:
    source = read(fixture_bytes("openai_messages.json"))
    assert source.format.name == "openai"
    (conversation,) = source.conversations
    assert conversation.system_prompt == "You are a terse assistant."
    assert shape(conversation) == [
        ("How many legs does a spider have?", None, "user"),
        ("Eight.", "How many legs does a spider have?", "assistant"),
        ("And an ant?", "Eight.", "user"),
        ("Six.", "And an ant?", "assistant"),
    ]
    assert conversation.title == "How many legs does a spider have?"
    assert conversation.messages[3].reasoning == "Insects have six legs."
    assert any("file at a web address was left out" in n for n in source.notes)


def test_openai_messages_object_and_data_url_image() -> None:
    import base64

    picture = png_bytes()
    url = "data:image/png;base64," + base64.b64encode(picture).decode()
    document = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]},
            {"role": "assistant", "content": "A square."},
        ],
    }
    (conversation,) = read(json.dumps(document).encode()).conversations
    attachment = conversation.messages[0].attachments[0]
    assert attachment.data == picture and attachment.name.endswith(".png")
    assert conversation.model == "gpt-4.1" and conversation.messages[1].model == "gpt-4.1"


def test_the_format_comes_from_the_content_not_the_name() -> None:
    source = read(fixture_bytes("claude_conversations.json"), "chatgpt-backup.txt")
    assert source.format.name == "claude"


def test_bad_json_names_the_file_and_the_place() -> None:
    (message,) = refusal(b'[{"role": "user", "content": "hi"}', "broken.json")
    assert "“broken.json”" in message and "not valid JSON" in message and "line 1" in message


@pytest.mark.parametrize(
    ("data", "language", "expected"),
    [
        (b'{"messages": [1, }', "en", "at line 1, column 18: a value is missing"),
        (b'[\n  {"role" "user"}]', "en", "at line 2, column 11: a colon is missing"),
        (b'{"messages": [1, }', "ru", "в строке 1, столбце 18: не хватает значения"),
        (b"[1] [2]", "ru", "в строке 1, столбце 5: после конца"),
    ],
)
def test_bad_json_says_what_is_wrong_in_the_persons_language(
    data: bytes, language: str, expected: str
) -> None:
    # Python's English ("Expecting value") used to show, even on a Russian page.
    with translation.override(language):
        (message,) = refusal(data, "broken.json")
    assert "broken.json" in message and expected in message
    assert "Expecting" not in message and "Extra data" not in message


def test_an_empty_file_is_called_empty() -> None:
    (message,) = refusal(b"", "nothing.json")
    assert "“nothing.json” is empty" in message


def test_binary_that_is_not_zip_is_refused() -> None:
    (message,) = refusal(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "picture.json")
    assert "neither JSON" in message and "picture.json" in message


def test_json_of_another_shape_is_refused_with_the_shapes_read() -> None:
    (message,) = refusal(json.dumps({"hello": "world"}).encode(), "other.json")
    assert "“other.json”" in message and "not in a shape" in message and "ChatGPT" in message


def test_empty_list_has_no_conversations() -> None:
    (message,) = refusal(b"[]", "empty.json")
    assert "has no conversations" in message


def test_one_bad_conversation_among_good_ones_is_named() -> None:
    rows = json.loads(fixture_bytes("claude_conversations.json"))
    rows[1]["chat_messages"][1]["sender"] = "robot"
    messages = refusal(json.dumps(rows).encode(), "claude.json")
    assert messages == [
        "“claude.json”, conversation 2 (“Haiku”): message 2 has the sender “robot”: it must "
        "be “human” or “assistant”."
    ]


def test_chatgpt_structure_errors_name_the_node() -> None:
    rows = json.loads(fixture_bytes("chatgpt_conversations.json"))
    rows[0]["mapping"]["u2"]["children"] = "a2pre"
    (message,) = refusal(json.dumps(rows).encode(), "conversations.json")
    assert message.startswith("“conversations.json”, conversation 1 (“Capitals”): node “u2”")


def test_a_zip_without_conversations_json_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme.txt", "hello")
    (message,) = refusal(buffer.getvalue(), "backup.zip")
    assert "“backup.zip” has no conversations.json" in message


def test_a_zip_that_unpacks_past_the_budget_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", b" " * (BUDGET + 10) + b"[]")
    assert len(buffer.getvalue()) < 100_000  # small packed, large unpacked
    (message,) = refusal(buffer.getvalue(), "bomb.zip")
    assert "“bomb.zip” unpacks to more than" in message


def test_our_own_document_loops_and_missing_parents_are_named() -> None:
    document = {
        "format": "chat_ai.conversations",
        "version": 1,
        "conversations": [
            {
                "title": "Loop",
                "branch_shown": 9,
                "messages": [
                    {"id": 1, "parent_id": 2, "role": "user", "content": "a"},
                    {"id": 2, "parent_id": 1, "role": "assistant", "content": "b"},
                    {"id": 3, "parent_id": 7, "role": "user", "content": "c"},
                ],
            }
        ],
    }
    messages = refusal(json.dumps(document).encode(), "ours.json")
    assert any("message “3” answers message “7”, which is not in it" in m for m in messages)
    assert any("answer each other in a loop" in m for m in messages)
    assert any("the branch shown ends at message “9”" in m for m in messages)
    assert all(m.startswith("“ours.json”, conversation 1 (“Loop”): ") for m in messages)
