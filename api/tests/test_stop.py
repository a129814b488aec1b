"""Stop sequences through the OpenAI-compatible API (issue 12), with the official
``openai`` SDK as the client over httpx's ASGI transport (no network): ``stop`` as a
list or a string reaches the provider as ``ChatOptions.stop``; a bad ``stop`` is an
OpenAI-shaped 400 naming the ``stop`` param, and nothing reaches the provider."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "Count to ten"}]


async def test_a_list_of_stop_sequences_reaches_the_provider(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["1, 2, 3"], finish="stop"))
    completion = await client.chat.completions.create(
        model="fake/fake-small", messages=HI, stop=["END", "\n\n"]
    )
    assert fake_provider.calls[-1]["options"].stop == ("END", "\n\n")
    assert completion.choices[0].message.content == "1, 2, 3"
    assert completion.choices[0].finish_reason == "stop"


async def test_a_single_stop_string_is_one_sequence_streamed_too(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    stream = await client.chat.completions.create(
        model="fake/fake-small", messages=HI, stop="END", stream=True
    )
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
    assert fake_provider.calls[-1]["options"].stop == ("END",)
    assert finish == "stop"


async def test_no_stop_sends_none(client: openai.AsyncOpenAI, fake_provider: type) -> None:
    await client.chat.completions.create(model="fake/fake-small", messages=HI, stop=None)
    assert fake_provider.calls[-1]["options"].stop == ()


@pytest.mark.parametrize(
    ("stop", "words"),
    [
        (["a", "b", "c", "d", "e"], "at most 4"),
        (42, "string or a list of strings"),
        (["END", 7], "string or a list of strings"),
        ([""], "must not be empty"),
        (["x" * 201], "at most 200 characters"),
    ],
    ids=["five-sequences", "number", "number-in-list", "empty", "too-long"],
)
async def test_a_bad_stop_is_a_400_naming_the_stop_param(
    client: openai.AsyncOpenAI, fake_provider: type, stop: Any, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model="fake/fake-small",
            messages=HI,
            extra_body={"stop": stop},  # the SDK's types would not let some through
        )
    error = refused.value
    assert (error.status_code, error.param, error.type) == (400, "stop", "invalid_request_error")
    assert words in error.message
    assert fake_provider.calls == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"n": 2}, "n"), ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools")],
    ids=["n", "tools"],
)
async def test_n_and_tools_stay_refused(
    client: openai.AsyncOpenAI, fake_provider: type, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="fake/fake-small", messages=HI, **fields)
    assert refused.value.param == param
    assert fake_provider.calls == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ],
    ids=["temperature", "max_tokens", "max_completion_tokens", "reasoning_effort"],
)
async def test_an_option_out_of_range_is_named_in_param(
    client: openai.AsyncOpenAI, fake_provider: type, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model="fake/fake-small", messages=HI, extra_body=fields
        )
    assert (refused.value.status_code, refused.value.param) == (400, param)
    assert fake_provider.calls == []
