"""The reply flow in chat/services against the database, with the scripted fake
provider registered as "fake". Assertions are on run events and database state; what
the chat page receives (the SSE encoding) is tested in test_chat_stream.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import OperationalError

from chat import services
from chat.models import Conversation, Message
from chat.providers import AuthenticationError, ReasoningDelta, TextDelta, UnavailableError
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def conversation(user: User, fake_provider: type) -> Conversation:
    return Conversation.objects.create(owner=user, provider="fake", model="fake-small")


async def run_events(conversation: Conversation | None, **kwargs: Any) -> list[Any]:
    """Prepare one reply (``kwargs`` go to ``reply_prepare``; action "send" unless
    given; ``conversation`` None starts a new one) and run it to its end with nobody
    following it. Returns its run events, in order: RunStarted first, the terminal event
    last."""
    kwargs.setdefault("action", "send")
    prepared = await sync_to_async(services.reply_prepare)(conversation=conversation, **kwargs)
    run = services.get_hub().start_run(prepared)
    await run.done()
    return run.events


def kinds(events: list[Any]) -> list[str]:
    """The class name of each run event, in order."""
    return [type(event).__name__ for event in events]


def text_of(events: list[Any]) -> str:
    """The text the run generated: its TextDelta pieces joined (without the prefix a
    Continue starts from)."""
    return "".join(event.text for event in events if type(event) is TextDelta)


def reasoning_of(events: list[Any]) -> str:
    """The reasoning the run generated: its ReasoningDelta pieces joined."""
    return "".join(event.text for event in events if type(event) is ReasoningDelta)


async def wait_for_events(run: services.ReplyRun, count: int) -> None:
    """Return once ``run`` has logged at least ``count`` events (fails if it ends or
    takes over 5 s first)."""
    async with asyncio.timeout(5):
        while len(run.events) < count:
            assert not run.ended, f"the run ended after {kinds(run.events)}"
            await run.wait(len(run.events))


async def reload(obj: Any) -> Any:
    await obj.arefresh_from_db()
    return obj


# --- prepare ----------------------------------------------------------------------------


def test_prepare_saves_the_user_message_and_a_streaming_reply(conversation: Conversation) -> None:
    prepared = services.reply_prepare(conversation=conversation, action="send", content="Hi there")
    user_msg = Message.objects.get(pk=prepared.user_message_id)
    reply = Message.objects.get(pk=prepared.reply_id)
    assert (user_msg.role, user_msg.content) == ("user", "Hi there")
    assert (reply.role, reply.status, reply.model) == ("assistant", "streaming", "fake-small")
    assert prepared.history == [{"role": "user", "content": "Hi there"}]


def test_prepare_titles_a_new_conversation_from_the_first_message(
    conversation: Conversation,
) -> None:
    services.reply_prepare(
        conversation=conversation,
        action="send",
        content="How do I reverse a linked list in Python without recursion or extra memory?",
    )
    conversation.refresh_from_db()
    assert conversation.title.startswith("How do I reverse a linked list")
    assert len(conversation.title) <= services.TITLE_MAX_CHARS + 1


@pytest.mark.parametrize("content", ["", "   \n\t "])
def test_prepare_rejects_an_empty_message(conversation: Conversation, content: str) -> None:
    with pytest.raises(ValidationError, match="empty"):
        services.reply_prepare(conversation=conversation, action="send", content=content)
    assert not Message.objects.exists()


def test_prepare_rejects_a_message_over_the_limit(
    conversation: Conversation, settings: Any
) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    with pytest.raises(ValidationError, match="too long"):
        services.reply_prepare(conversation=conversation, action="send", content="x" * 11)
    assert not Message.objects.exists()


def test_prepare_rejects_an_unknown_provider(conversation: Conversation) -> None:
    with pytest.raises(ValidationError, match="Unknown provider"):
        services.reply_prepare(
            conversation=conversation, action="send", content="hi", provider="nope"
        )
    assert not Message.objects.exists()


def test_prepare_rejects_a_provider_without_key(conversation: Conversation, settings: Any) -> None:
    settings.ANTHROPIC_API_KEY = ""
    with pytest.raises(ValidationError, match="no API key"):
        services.reply_prepare(
            conversation=conversation, action="send", content="hi", provider="anthropic"
        )
    assert not Message.objects.exists()


def test_title_from_text_cuts_at_a_word() -> None:
    title = services.title_from_text("word " * 40)
    assert title.endswith("…") and not title.endswith(" …")
    assert services.title_from_text("\n\n## Short one\nmore") == "Short one"


# --- streaming --------------------------------------------------------------------------


async def test_reply_streams_deltas_and_saves_the_complete_reply(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["**Hello**", " world"], usage=(12, 4)))
    events = await run_events(conversation, content="Hi")
    assert kinds(events) == ["RunStarted", "TextDelta", "TextDelta", "Usage", "RunFinished"]
    assert text_of(events) == "**Hello** world"
    finished = events[-1]
    assert (finished.status, finished.finish_reason) == ("complete", "stop")
    assert "<strong>Hello</strong>" in finished.html
    reply = await Message.objects.aget(pk=events[0].reply_id)
    assert (reply.status, reply.content) == ("complete", "**Hello** world")
    assert (reply.input_tokens, reply.output_tokens) == (12, 4)
    assert reply.duration_ms is not None and reply.time_to_first_token_ms is not None


async def test_reply_sends_conversation_options_to_the_provider(
    conversation: Conversation, fake_provider: type
) -> None:
    conversation.system_prompt, conversation.temperature, conversation.max_tokens = (
        "Be terse",
        0.3,
        50,
    )
    await conversation.asave()
    await run_events(conversation, content="Hi")
    options = fake_provider.calls[0]["options"]
    assert (options.system_prompt, options.temperature, options.max_tokens) == ("Be terse", 0.3, 50)


async def test_provider_error_is_recorded_on_the_message_not_as_a_reply(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=[], error=AuthenticationError(provider="Anthropic")))
    events = await run_events(conversation, content="Hi")
    failed = events[-1]
    assert isinstance(failed, services.RunFailed)
    assert "credentials" in failed.message
    reply = await Message.objects.aget(pk=events[0].reply_id)
    assert (reply.status, reply.error, reply.content) == ("error", failed.message, "")
    assert reply.error_detail == "Anthropic: invalid API key"
    user_messages = await Message.objects.filter(role="user").acount()
    assert user_messages == 1


async def test_error_after_text_keeps_the_partial_text(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(
        Script(chunks=["Half an "], error=UnavailableError(provider="Fake"))
    )
    events = await run_events(conversation, content="Hi")
    reply = await Message.objects.aget(pk=events[0].reply_id)
    assert (reply.status, reply.content) == ("error", "Half an ")


async def test_errors_are_never_sent_back_as_context(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["oops"], error=UnavailableError()))
    await run_events(conversation, content="first")
    await run_events(conversation, content="second")
    sent = fake_provider.calls[-1]["messages"]
    # Neither the failed reply nor its unanswered question goes back to the model.
    assert sent == [{"role": "user", "content": "second"}]


async def test_empty_reply_is_an_error(conversation: Conversation, fake_provider: type) -> None:
    fake_provider.scripts.append(Script(chunks=[]))
    events = await run_events(conversation, content="Hi")
    assert isinstance(events[-1], services.RunFailed)
    assert "empty reply" in events[-1].message


async def test_stop_keeps_the_partial_reply_and_cancels_the_provider(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=[f"w{i} " for i in range(200)], pause=0.01))
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=conversation, action="send", content="long please"
    )
    run = services.get_hub().start_run(prepared)
    await wait_for_events(run, 4)  # started + 3 deltas
    reply = await Message.objects.aget(pk=prepared.reply_id)
    assert await services.reply_stop(reply=reply)
    await run.done()
    stopped = run.events[-1]
    assert isinstance(stopped, services.RunStopped)
    assert (stopped.reason, stopped.status) == ("stop", "stopped")
    reply = await Message.objects.aget(pk=prepared.reply_id)
    assert reply.status == "stopped"
    assert reply.content.startswith("w0 w1 w2 ")
    assert fake_provider.cancelled == [True]


async def test_the_reply_goes_on_when_its_follower_goes_away(
    conversation: Conversation, fake_provider: type
) -> None:
    """Closing the tab (Django closes the response's stream) no longer stops the reply:
    the run belongs to the server and finishes, saved whole."""
    fake_provider.scripts.append(Script(chunks=[f"w{i} " for i in range(20)], pause=0.01))
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=conversation, action="send", content="long please"
    )
    stream = services.run_follow(services.get_hub().start_run(prepared))
    received = [await anext(stream) for _ in range(3)]
    await stream.aclose()  # what Django does when the browser goes away
    run = services.get_hub().get(prepared.reply_id)
    assert run is not None and len(received) == 3
    await run.done()
    reply = await Message.objects.aget(pk=prepared.reply_id)
    assert (reply.status, reply.content) == ("complete", "".join(f"w{i} " for i in range(20)))
    assert fake_provider.cancelled == []


async def test_checkpoints_save_partial_text_while_streaming(
    conversation: Conversation, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_CHECKPOINT_SECONDS = 0.0
    fake_provider.scripts.append(Script(chunks=["one ", "two ", "three"], pause=0.2))
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=conversation, action="send", content="Hi"
    )
    run = services.get_hub().start_run(prepared)
    await wait_for_events(run, 2)  # started, then the first delta
    # Checkpoints are written by a background task: give it up to a second. (The test
    # database is in-memory SQLite with a shared cache, where a read that meets that
    # task's write fails at once instead of waiting: such a read is tried again.)
    for _ in range(100):
        try:
            reply = await Message.objects.aget(pk=prepared.reply_id)
        except OperationalError:
            reply = None
        if reply is not None and reply.content:
            break
        await asyncio.sleep(0.01)
    assert reply is not None and reply.status == "streaming"
    assert reply.content in ("one ", "one two ")  # the text so far, while it goes on
    assert not run.ended
    await run.done()


# --- regenerate and edit (the branches they make: test_branches.py) ----------------------


def test_regenerate_without_messages_is_rejected(conversation: Conversation) -> None:
    with pytest.raises(ValidationError, match="no message"):
        services.reply_prepare(conversation=conversation, action="regenerate")


async def test_model_switch_mid_conversation_is_recorded_per_reply(
    conversation: Conversation, fake_provider: type
) -> None:
    await run_events(conversation, content="one")
    await run_events(conversation, content="two", model="fake-large")
    models = [
        m
        async for m in Message.objects.filter(role="assistant")
        .order_by("id")
        .values_list("model", flat=True)
    ]
    assert models == ["fake-small", "fake-large"]
    conversation = await reload(conversation)
    assert conversation.model == "fake-large"


async def test_two_tabs_sending_at_once_keep_both_turns(
    conversation: Conversation, fake_provider: type
) -> None:
    """Both sends race: the fake model holds each answer until both streams are open, so
    neither exchange can finish before the other began. Each reply answers its own
    question, whole, right after it."""
    import time

    from chat.providers import PROVIDER_REGISTRY
    from chat.providers.base_provider import Finish, FinishReason, TextDelta, Usage

    open_streams: list[str] = []
    held_together: list[bool] = []

    class HoldingProvider(fake_provider):  # type: ignore[misc, valid-type]
        async def _stream(self, messages: Any, model: str, options: Any) -> Any:
            question = messages[-1]["content"]
            open_streams.append(question)
            deadline = time.monotonic() + 5.0
            while len(open_streams) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            held_together.append(len(open_streams) == 2)
            for piece in ("re: ", question, " (end)"):
                await asyncio.sleep(0.01)  # the two streams interleave
                yield TextDelta(piece)
            yield Usage(10, 3)
            yield Finish(FinishReason.STOP)

    PROVIDER_REGISTRY["fake"] = HoldingProvider  # the fake_provider fixture removes it
    tabs = await asyncio.gather(
        run_events(conversation, content="from tab A"),
        run_events(conversation, content="from tab B"),
    )
    assert held_together == [True, True]  # both replies were being written at once
    assert [kinds(events)[-1] for events in tabs] == ["RunFinished", "RunFinished"]
    assert [events[-1].status for events in tabs] == ["complete", "complete"]
    rows = [
        m
        async for m in Message.objects.order_by("created_at", "id").values_list(
            "role", "content", "status"
        )
    ]
    first, second = rows[0][1], rows[2][1]  # whichever tab the database served first
    assert {first, second} == {"from tab A", "from tab B"}
    assert rows == [
        ("user", first, "complete"),
        ("assistant", f"re: {first} (end)", "complete"),
        ("user", second, "complete"),
        ("assistant", f"re: {second} (end)", "complete"),
    ]


# --- context policy ---------------------------------------------------------------------


def turns(*contents: str) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": c}
        for i, c in enumerate(contents)
    ]


def test_history_fit_keeps_everything_that_fits() -> None:
    history = turns("a", "b", "c")
    assert services.history_fit(history, context_tokens=1000, reserve_tokens=100) == (history, 0)


def test_history_fit_drops_the_oldest_turns_first() -> None:
    history = turns("x" * 300, "y" * 300, "z" * 300)  # about 104 tokens each
    kept, dropped = services.history_fit(history, context_tokens=400, reserve_tokens=100)
    assert kept == history[2:]
    assert dropped == 2


def test_history_fit_starts_with_a_user_turn() -> None:
    history = turns("x" * 300, "y" * 30, "z" * 30)
    kept, _ = services.history_fit(history, context_tokens=150, reserve_tokens=50)
    assert kept[0]["role"] == "user"


def test_history_fit_reserves_room_for_the_system_prompt() -> None:
    history = turns("x" * 300, "y" * 300, "z" * 300)
    kept, _ = services.history_fit(
        history, context_tokens=500, reserve_tokens=100, system_prompt="s" * 600
    )
    assert kept == history[2:]


def test_history_fit_rejects_a_message_larger_than_the_context() -> None:
    with pytest.raises(ValidationError, match="too long for this model"):
        services.history_fit(turns("x" * 3000), context_tokens=500, reserve_tokens=100)


async def test_long_history_is_trimmed_and_the_user_is_told(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.context_tokens = 600
    try:
        for i in range(4):
            fake_provider.scripts.append(Script(chunks=["r" * 300]))
            events = await run_events(conversation, content=f"q{i} " + "x" * 300)
    finally:
        del fake_provider.context_tokens
    started = events[0]
    assert isinstance(started, services.RunStarted)
    assert started.trimmed > 0
    assert f"{started.trimmed} earlier messages were left out" in started.trimmed_note
    reply = await Message.objects.aget(pk=started.reply_id)  # remembered for reloads
    assert (reply.context_trimmed, reply.trimmed_note) == (started.trimmed, started.trimmed_note)
    sent = fake_provider.calls[-1]["messages"]
    assert sent[-1]["content"].startswith("q3 ")
    assert sent[0]["role"] == "user"
    assert len(sent) < 7


def test_message_too_long_for_the_context_saves_nothing(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.context_tokens = 200
    try:
        with pytest.raises(ValidationError, match="too long for this model"):
            services.reply_prepare(conversation=conversation, action="send", content="x" * 3000)
    finally:
        del fake_provider.context_tokens
    assert not Message.objects.exists()


# --- interrupted replies ------------------------------------------------------------------


def make_stale_reply(conversation: Conversation, seconds_ago: int) -> Message:
    from datetime import timedelta

    from django.utils import timezone

    then = timezone.now() - timedelta(seconds=seconds_ago)
    Message.objects.create(conversation=conversation, role="user", content="q", created_at=then)
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        content="half",
        created_at=then,
    )


def test_a_reply_left_streaming_by_a_dead_process_no_longer_blocks_regenerate(
    conversation: Conversation, settings: Any
) -> None:
    settings.CHAT_STALE_STREAM_SECONDS = 60
    stale = make_stale_reply(conversation, seconds_ago=120)
    prepared = services.reply_prepare(conversation=conversation, action="regenerate")
    # Closed as an error, kept as the older version beside the new reply.
    stale.refresh_from_db()
    assert stale.status == "error"
    assert Message.objects.get(pk=prepared.reply_id).parent_id == stale.parent_id


def test_a_recent_streaming_reply_still_blocks_regenerate(
    conversation: Conversation, settings: Any
) -> None:
    settings.CHAT_STALE_STREAM_SECONDS = 600
    make_stale_reply(conversation, seconds_ago=5)
    with pytest.raises(ValidationError, match="Wait for the current reply"):
        services.reply_prepare(conversation=conversation, action="regenerate")


def test_sending_closes_stale_replies_as_interrupted(
    conversation: Conversation, settings: Any
) -> None:
    settings.CHAT_STALE_STREAM_SECONDS = 60
    stale = make_stale_reply(conversation, seconds_ago=120)
    services.reply_prepare(conversation=conversation, action="send", content="next")
    stale.refresh_from_db()
    assert (stale.status, stale.content) == ("error", "half")
    assert "interrupted" in stale.error


async def test_stop_closes_a_stale_reply_at_once(conversation: Conversation, settings: Any) -> None:
    settings.CHAT_STALE_STREAM_SECONDS = 60
    stale = await sync_to_async(make_stale_reply)(conversation, seconds_ago=120)
    reply = await Message.objects.select_related("conversation").aget(pk=stale.pk)
    assert await services.reply_stop(reply=reply)
    await stale.arefresh_from_db()
    assert stale.status == "error"


async def test_final_save_waits_out_a_busy_database(
    conversation: Conversation, fake_provider: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from chat.services import persistence

    real_save = persistence.save_outcome
    failures = iter([True, True, False])

    def flaky_save(*args: Any, **kwargs: Any) -> str:
        if next(failures):
            raise OperationalError("database is locked")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(persistence, "save_outcome", flaky_save)
    monkeypatch.setattr(persistence, "SAVE_RETRY_DELAYS", (0.01, 0.01, 0.01))
    events = await run_events(conversation, content="Hi")
    assert isinstance(events[-1], services.RunFinished)
    assert events[-1].status == "complete"
    reply = await Message.objects.aget(pk=events[0].reply_id)
    assert reply.status == "complete"


async def test_stop_closes_a_reply_whose_stream_is_gone(
    conversation: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart cut the stream off: no worker answers Stop, so Stop closes the reply
    itself, keeping the text of its last checkpoint."""
    monkeypatch.setattr(services, "STOP_GRACE_SECONDS", 0.3)
    orphan = await sync_to_async(make_stale_reply)(conversation, seconds_ago=1)
    reply = await Message.objects.aget(pk=orphan.pk)
    assert await services.reply_stop(reply=reply)
    await orphan.arefresh_from_db()
    assert (orphan.status, orphan.content) == ("stopped", "half")


def test_prepare_rejects_a_model_the_provider_does_not_have(conversation: Conversation) -> None:
    with pytest.raises(ValidationError, match="Unknown model “gpt-nope” for Fake"):
        services.reply_prepare(
            conversation=conversation, action="send", content="hi", model="gpt-nope"
        )
    assert not Message.objects.exists()


async def test_an_unlisted_model_is_tried_when_the_live_list_is_unknown(
    conversation: Conversation, fake_provider: type
) -> None:
    """Providers whose model list is live and not fetched yet let the upstream decide."""

    class Live(fake_provider):  # type: ignore[misc, valid-type]
        async def fetch_models(self) -> list[str]:
            return ["live-1"]

    from chat.providers import PROVIDER_REGISTRY

    PROVIDER_REGISTRY["fake"] = Live
    await run_events(conversation, content="hi", model="brand-new-model")
    assert fake_provider.calls[-1]["model"] == "brand-new-model"
