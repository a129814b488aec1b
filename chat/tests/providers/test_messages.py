"""Content parts in the history: what ``normalize_messages`` accepts and refuses, and the
helpers that reshape a history keeping images and PDFs intact."""

from __future__ import annotations

from typing import Any

import pytest

from chat.providers.base_provider import (
    BadRequestError,
    merge_consecutive,
    normalize_messages,
    split_system,
    text_only,
    with_system_prompt,
)
from chat.providers.messages import (
    content_text,
    image_source,
    is_blank,
    media_kinds,
    pdf_source,
)
from chat.tests.providers.media import PDF, PNG, PNG_B64, PNG_URL, image, pdf, text

# --- normalize_messages -------------------------------------------------------------------


def test_user_parts_come_back_in_their_canonical_shape() -> None:
    parts = [text("Look"), image(), pdf()]
    [message] = normalize_messages([{"role": "user", "content": parts}])
    assert message == {"role": "user", "content": parts}
    assert message["content"] is not parts  # a copy: the caller's list is not shared


def test_image_detail_is_kept_for_openai() -> None:
    part = {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}}
    [message] = normalize_messages([{"role": "user", "content": [part]}])
    assert message["content"] == [part]


def test_jpg_is_read_as_the_registered_jpeg_type() -> None:
    [message] = normalize_messages(
        [{"role": "user", "content": [image(f"data:image/jpg;base64,{PNG_B64}")]}]
    )
    assert message["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_system_and_assistant_text_parts_become_text() -> None:
    messages = normalize_messages(
        [
            {"role": "system", "content": [text("Be brief."), text("Be kind.")]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [text("Hello")]},
        ]
    )
    assert messages[0]["content"] == "Be brief.\n\nBe kind."
    assert messages[2]["content"] == "Hello"


@pytest.mark.parametrize(
    ("part", "words"),
    [
        ("just a string", "object with a type"),
        ({"text": "no type"}, "object with a type"),
        ({"type": "input_audio", "input_audio": {}}, "unknown content part type 'input_audio'"),
        ({"type": "text"}, "text part needs its text"),
        ({"type": "image_url", "image_url": "data:image/png;base64,AAAA"}, "needs {'url'"),
        (image("https://example.com/cat.png"), "data: URL (links are not fetched)"),
        (image("data:image/png,notbase64"), "not a base64 data: URL"),
        (image("data:image/bmp;base64,AAAA"), "image/bmp are not accepted"),
        (image("data:image/png;base64,"), "the file is empty"),
        (image("data:image/png;base64,%%%%"), "base64 data is damaged"),
        (image("data:image/png;base64,AAA"), "base64 data is damaged"),
        (pdf(data_url=PNG_URL), "image/png are not accepted"),
        ({"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}, "filename"),
        ({"type": "file", "file": {"file_id": "file-123"}}, "file ids are not accepted"),
        ({"type": "image_url", "image_url": {"url": PNG_URL, "detail": "max"}}, "detail"),
    ],
)
def test_a_bad_part_is_refused_with_a_clear_message(part: Any, words: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        normalize_messages([{"role": "user", "content": [text("hi"), part]}])
    assert "message 0, part 1" in str(caught.value)
    assert words in str(caught.value)


def test_an_image_outside_a_user_message_is_refused() -> None:
    with pytest.raises(BadRequestError, match="only user messages may carry images"):
        normalize_messages(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [image()]}]
        )


def test_content_that_is_neither_text_nor_parts_is_refused() -> None:
    with pytest.raises(BadRequestError, match="text or a list of content parts"):
        normalize_messages([{"role": "user", "content": {"type": "text", "text": "x"}}])


# --- reading content ----------------------------------------------------------------------


def test_content_text_joins_the_text_parts_only() -> None:
    assert content_text([text("One"), image(), text("  "), text("Two")]) == "One\n\nTwo"
    assert content_text("plain") == "plain"


def test_a_turn_with_only_an_image_is_not_blank() -> None:
    assert not is_blank([image()])
    assert is_blank([text("  ")])
    assert is_blank([])
    assert is_blank(" \n")


def test_media_kinds_names_images_and_pdfs() -> None:
    messages = [
        {"role": "user", "content": [image()]},
        {"role": "user", "content": [pdf(), text("x")]},
        {"role": "assistant", "content": "ok"},
    ]
    assert media_kinds(messages) == {"image", "pdf"}
    assert media_kinds([{"role": "user", "content": "plain"}]) == set()


def test_sources_give_the_type_and_the_bytes() -> None:
    png = image_source(image())
    assert (png.mime_type, png.data()) == ("image/png", PNG)
    filename, document = pdf_source(pdf("q3.pdf"))
    assert (filename, document.mime_type, document.data()) == ("q3.pdf", "application/pdf", PDF)


# --- reshaping keeps the parts ------------------------------------------------------------


def test_merging_two_user_turns_concatenates_their_parts() -> None:
    merged = merge_consecutive(
        [
            {"role": "user", "content": [image(), text("What is this?")]},
            {"role": "user", "content": [pdf(), text("And this?")]},
        ]
    )
    assert merged == [
        {"role": "user", "content": [image(), text("What is this?"), pdf(), text("And this?")]}
    ]


def test_merging_text_beside_parts_makes_the_text_a_part() -> None:
    merged = merge_consecutive(
        [
            {"role": "user", "content": "First question"},
            {"role": "user", "content": [image(), text("Second")]},
        ]
    )
    assert merged == [
        {"role": "user", "content": [text("First question"), image(), text("Second")]}
    ]


def test_merging_text_turns_still_joins_them_with_a_blank_line() -> None:
    merged = merge_consecutive(
        [{"role": "user", "content": "One"}, {"role": "user", "content": "Two"}]
    )
    assert merged == [{"role": "user", "content": "One\n\nTwo"}]


def test_merging_does_not_change_the_callers_lists() -> None:
    first = [image()]
    merge_consecutive([{"role": "user", "content": first}, {"role": "user", "content": "x"}])
    assert first == [image()]


def test_split_system_keeps_the_parts_of_user_turns() -> None:
    system, turns = split_system(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [image()]}],
        "Rules.",
    )
    assert system == "Rules.\n\nBe brief."
    assert turns == [{"role": "user", "content": [image()]}]


def test_with_system_prompt_keeps_the_parts() -> None:
    result = with_system_prompt([{"role": "user", "content": [pdf(), text("Sum up")]}], "Short.")
    assert result == [
        {"role": "system", "content": "Short."},
        {"role": "user", "content": [pdf(), text("Sum up")]},
    ]


def test_text_only_flattens_text_parts() -> None:
    flat = text_only([{"role": "user", "content": [text("A"), text("B")]}], "Acme")
    assert flat == [{"role": "user", "content": "A\n\nB"}]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ([image(), pdf()], "Acme: cannot read images/PDF files"),
        ([image()], "Acme: cannot read images"),
        ([pdf()], "Acme: cannot read PDF files"),
    ],
)
def test_text_only_refuses_images_and_pdfs_naming_the_provider(
    content: list[dict[str, Any]], words: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        text_only([{"role": "user", "content": content}], "Acme")
    assert str(caught.value) == words
