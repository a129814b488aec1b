"""What the chat page receives: run events encoded as the page's SSE by
chat/services/chat_stream.py (start, delta, reasoning, done, error; ids; heartbeats;
``detail`` for staff only). Read with chat.sse.parse_sse, the reader the benchmarks
use too. What a reply does (its run events and the database) is tested in
test_services.py and test_services_outcomes.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from chat import services
from chat.models import Conversation, Message
from chat.providers import AuthenticationError, ReasoningDelta, TextDelta, Usage
from chat.services.chat_stream import encode_events
from chat.sse import SSEEvent, parse_sse
from chat.tests.conftest import PageStream
from chat.tests.fakes.fake_provider import Script

# The tests that run a reply need the database; the encoder's unit tests do not.
with_database = pytest.mark.django_db(transaction=True)


def deltas(events: list[SSEEvent]) -> str:
    """The reply's text as the page builds it from ``delta`` events."""
    return "".join(event.data["text"] for event in events if event.event == "delta")


# --- a reply as the page receives it -------------------------------------------------------


@with_database
@pytest.mark.parametrize("pause", [0.0, 0.005], ids=["all-at-once", "one-by-one"])
async def test_the_chat_stream_sends_every_piece_in_order_with_increasing_ids(
    page_stream: PageStream, conversation: Conversation, fake_provider: type, pause: float
) -> None:
    """However pieces are merged (all at once, or as they come), the page gets the
    whole text in order, and every event's id is larger than the one before."""
    words = [f"w{i} " for i in range(20)]
    fake_provider.scripts.append(Script(chunks=["**Hello**", *words], usage=(12, 4), pause=pause))
    events = parse_sse(await page_stream(conversation, content="Hi"))
    assert events[0].event == "start" and events[-1].event == "done"
    assert {e.event for e in events[1:-1]} == {"delta"}
    assert deltas(events) == "**Hello**" + "".join(words)
    ids = [e.id for e in events]
    assert None not in ids and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[-1].data["output_tokens"] == 4


@with_database
async def test_reasoning_and_text_that_arrive_together_are_one_event_each(
    page_stream: PageStream, conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(
        Script(reasoning=["The user greets.", " Greet back."], chunks=["Hello!"])
    )
    events = parse_sse(await page_stream(conversation, content="Hi"))
    assert [e.event for e in events] == ["start", "reasoning", "delta", "done"]
    assert events[1].data == {"text": "The user greets. Greet back."}
    assert events[2].data == {"text": "Hello!"}


@with_database
async def test_done_and_error_say_how_long_the_model_thought(
    page_stream: PageStream, conversation: Conversation
) -> None:
    script = Script(reasoning=["Hmm."], chunks=["Hi", " there."], pause=0.2)
    done = parse_sse(await page_stream(conversation, script, content="Hi"))[-1]
    reply = await Message.objects.aget(pk=done.data["message_id"])
    assert done.event == "done"
    assert done.data["reasoning_ms"] == reply.reasoning_ms
    assert 180 <= reply.reasoning_ms < reply.duration_ms - 150  # to the first word only

    script = Script(reasoning=["Hmm."], chunks=[], error=AuthenticationError("bad key"))
    error = parse_sse(await page_stream(conversation, script, content="Hi"))[-1]
    reply = await Message.objects.aget(pk=error.data["message_id"])
    assert error.event == "error"
    assert error.data["reasoning_ms"] == reply.reasoning_ms is not None


@with_database
async def test_start_names_the_reply_and_the_conversation_a_first_message_created(
    page_stream: PageStream, user: User, fake_provider: type
) -> None:
    events = parse_sse(await page_stream(None, owner=user, content="Hello there", provider="fake"))
    conversation = await Conversation.objects.aget(owner=user)
    reply = await Message.objects.aget(role="assistant")
    question = await Message.objects.aget(role="user")
    start = events[0]
    assert (start.event, start.id) == ("start", 1)
    assert start.data == {
        "message_id": reply.pk,
        "user_message_id": question.pk,
        "conversation_id": conversation.pk,
        "provider": "fake",
        "model": "fake-small",
        "title": "Hello there",
        "trimmed": 0,
        "trimmed_note": "",
        "continuing": False,
    }


@with_database
async def test_start_says_a_continue_is_continuing(
    page_stream: PageStream, conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["The first half"], finish="length"))
    await page_stream(conversation, content="Tell me everything")
    cut = await Message.objects.aget(role="assistant")
    fake_provider.scripts.append(Script(chunks=[" and the second half."]))
    events = parse_sse(await page_stream(conversation, action="continue", reply_id=cut.pk))
    assert events[0].event == "start"
    assert events[0].data["continuing"] is True and events[0].data["message_id"] == cut.pk
    assert deltas(events) == " and the second half."  # only the new text is sent


@with_database
async def test_start_carries_the_note_about_messages_left_out(
    page_stream: PageStream, conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.context_tokens = 600
    try:
        for i in range(4):
            fake_provider.scripts.append(Script(chunks=["r" * 300]))
            events = parse_sse(await page_stream(conversation, content=f"q{i} " + "x" * 300))
    finally:
        del fake_provider.context_tokens
    start = events[0].data
    reply = await Message.objects.aget(pk=start["message_id"])
    assert start["trimmed"] == reply.context_trimmed and start["trimmed"] > 0
    assert start["trimmed_note"] == reply.trimmed_note
    assert f"{start['trimmed']} earlier messages were left out" in start["trimmed_note"]


@with_database
async def test_done_carries_what_the_page_shows_under_a_cut_reply(
    page_stream: PageStream, conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["A **long** answer"], finish="length"))
    events = parse_sse(await page_stream(conversation, content="Tell me everything"))
    done = events[-1]
    reply = await Message.objects.aget(role="assistant")
    assert done.event == "done"
    assert done.data == {
        "message_id": reply.pk,
        "status": "incomplete",
        "html": reply.content_html,
        "input_tokens": 10,
        "output_tokens": 3,
        "reasoning_tokens": None,
        "finish_reason": "length",
        "notice": reply.notice,
        "can_continue": True,
        "reasoning_ms": None,
    }
    assert "<strong>long</strong>" in done.data["html"] and "token limit" in done.data["notice"]


@with_database
async def test_the_error_detail_is_sent_to_staff_only(
    page_stream: PageStream, conversation: Conversation, fake_provider: type
) -> None:
    detail = "invalid API key (check OPENAI_API_KEY)"
    fake_provider.scripts.append(Script(chunks=[], error=AuthenticationError(detail)))
    raw = await page_stream(conversation, content="Hi")
    error = parse_sse(raw)[-1]
    assert error.event == "error" and "credentials" in error.data["message"]
    assert "detail" not in error.data
    assert b"OPENAI_API_KEY" not in b"".join(raw)  # nowhere in what a person receives
    assert (error.data["status"], error.data["can_continue"]) == ("error", False)

    fake_provider.scripts.append(Script(chunks=[], error=AuthenticationError(detail)))
    error = parse_sse(await page_stream(conversation, content="Hi", show_detail=True))[-1]
    assert error.event == "error" and "OPENAI_API_KEY" in error.data["detail"]


@with_database
async def test_heartbeats_keep_a_slow_stream_alive(
    page_stream: PageStream, conversation: Conversation, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_HEARTBEAT_SECONDS = 0.05
    fake_provider.scripts.append(Script(chunks=["late"], first_delay=0.3))
    raw = await page_stream(conversation, content="Hi")
    assert raw.count(services.HEARTBEAT) >= 2
    events = parse_sse(raw)
    assert [e.event for e in events] == ["start", "delta", "done"]  # heartbeats are no events


# --- the encoder -------------------------------------------------------------------------

STARTED = services.RunStarted(
    reply_id=7, conversation_id=3, user_message_id=6, provider="fake", model="fake-small"
)
FINISHED = services.RunFinished(
    status="complete", finish_reason="stop", html="<p>ab</p>", usage=Usage(5, 2)
)


def encoded(events: list[Any], first_seq: int = 1, **kwargs: Any) -> tuple[list[SSEEvent], bool]:
    """``encode_events`` read back: (SSE events, whether the run ended)."""
    kwargs.setdefault("reply_id", 7)
    kwargs.setdefault("show_detail", False)
    raw, ended = encode_events(events, first_seq, **kwargs)
    return parse_sse(raw), ended


def test_encode_events_merges_pieces_and_numbers_them_by_the_last_one() -> None:
    events, ended = encoded(
        [
            STARTED,  # 1
            TextDelta("a"),  # 2
            TextDelta("b"),  # 3
            ReasoningDelta("r1"),  # 4
            ReasoningDelta("r2"),  # 5
            TextDelta("c"),  # 6
            Usage(5, 2),  # 7
            FINISHED,  # 8
        ]
    )
    assert [(e.event, e.id) for e in events] == [
        ("start", 1),
        ("delta", 3),
        ("reasoning", 5),
        ("delta", 6),
        ("done", 8),
    ]
    assert [e.data["text"] for e in events[1:4]] == ["ab", "r1r2", "c"]
    assert ended


def test_encode_events_sends_usage_only_inside_the_ending() -> None:
    events, ended = encoded([TextDelta("x"), Usage(5, 2)], first_seq=4)
    assert [(e.event, e.id, e.data) for e in events] == [("delta", 4, {"text": "x"})]
    assert not ended
    events, _ = encoded([Usage(5, 2), FINISHED], first_seq=9)
    assert [(e.event, e.id) for e in events] == [("done", 10)]
    assert (events[0].data["input_tokens"], events[0].data["output_tokens"]) == (5, 2)


def test_encode_events_numbers_a_batch_from_its_first_sequence_number() -> None:
    """A follower reads the log in batches: ids go on from where the batch starts, so a
    page that reconnects with Last-Event-ID resumes at the right place."""
    events, ended = encoded([TextDelta("d"), TextDelta("e")], first_seq=12)
    assert [(e.event, e.id, e.data) for e in events] == [("delta", 13, {"text": "de"})]
    assert not ended
    events, ended = encoded([STARTED], first_seq=1)
    assert [(e.event, e.id) for e in events] == [("start", 1)]
    assert not ended  # the start is no ending


@pytest.mark.parametrize(
    ("terminal", "name", "status"),
    [
        (FINISHED, "done", "complete"),
        (
            services.RunFinished(status="incomplete", finish_reason="length", html="<p>a</p>"),
            "done",
            "incomplete",
        ),
        (services.RunFailed("It failed.", "unavailable", "d", "error", ""), "error", "error"),
        (services.RunStopped("stop", "stopped", "<p>a</p>"), "done", "stopped"),
        (
            services.RunStopped("time_limit", "error", "", message="Too long."),
            "error",
            "error",
        ),
    ],
    ids=["finished", "incomplete", "failed", "stopped", "stopped-without-text"],
)
def test_encode_events_ends_at_a_terminal_event(terminal: Any, name: str, status: str) -> None:
    events, ended = encoded([TextDelta("a"), terminal], first_seq=2)
    assert [(e.event, e.id) for e in events] == [("delta", 2), (name, 3)]
    assert (events[-1].data["message_id"], events[-1].data["status"]) == (7, status)
    assert ended


def test_encode_events_carries_the_thinking_time_in_the_ending() -> None:
    finished = services.RunFinished("complete", "stop", "<p>a</p>", reasoning_ms=12_000)
    stopped = services.RunStopped("stop", "stopped", "<p>a</p>", reasoning_ms=800)
    failed = services.RunFailed("It failed.", "unavailable", "", "error", "", reasoning_ms=5)
    for event, expected in ((finished, 12_000), (stopped, 800), (failed, 5), (FINISHED, None)):
        events, _ = encoded([event])
        assert events[0].data["reasoning_ms"] == expected
    # An error without reasoning says nothing of it.
    events, _ = encoded([services.RunFailed("It failed.", "unavailable", "", "error", "")])
    assert "reasoning_ms" not in events[0].data


def test_encode_events_puts_the_detail_in_errors_for_staff_only() -> None:
    failed = services.RunFailed("It failed.", "authentication", "bad key sk-x", "error", "")
    for show_detail, expected in ((False, None), (True, "bad key sk-x")):
        events, _ = encoded([failed], show_detail=show_detail)
        assert events[0].event == "error" and events[0].data["message"] == "It failed."
        assert events[0].data.get("detail") == expected
