"""SdkClients (chat/providers/clients.py): one SDK client per event loop and
configuration, closed when it is dropped; then the same through a real provider."""

from __future__ import annotations

import asyncio
from typing import Any

from chat.providers import TextDelta
from chat.providers.clients import ClientConfig, SdkClients
from chat.providers.openai_provider import _CLIENTS as OPENAI_CLIENTS
from chat.providers.openai_provider import OpenAIProvider
from chat.tests.fakes.openai_fake import install_openai_stream
from chat.tests.fakes.server import FakeUpstream

A = ClientConfig("key-a-0123456789", "http://a.example/v1", 30.0)
B = ClientConfig("key-b-0123456789", "http://b.example/v1", 30.0)
HELLO = [{"role": "user", "content": "Hello"}]


class Client:
    """A stand-in SDK client that records whether it was closed."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.closed = False


async def _close(client: Client) -> None:
    client.closed = True


def make_holder(**kwargs: Any) -> tuple[SdkClients[Client], list[Client]]:
    built: list[Client] = []

    def build(config: ClientConfig) -> Client:
        built.append(Client(config))
        return built[-1]

    return SdkClients("test", build=build, close=_close, **kwargs), built


async def test_one_client_per_configuration_within_a_loop() -> None:
    holder, built = make_holder()
    async with holder.lease(A) as first, holder.lease(A) as again, holder.lease(B) as other:
        assert (first is again, first is other) == (True, False)
    async with holder.lease(A) as later:
        assert later is first
    assert [client.config for client in built] == [A, B]


def test_each_loop_gets_its_own_client_closed_when_the_loop_shuts_down() -> None:
    holder, _built = make_holder()

    async def use() -> Client:
        async with holder.lease(A) as client:
            return client

    first, second = asyncio.run(use()), asyncio.run(use())
    assert (first is second, first.closed, second.closed, holder.count()) == (
        False,
        True,
        True,
        0,
    )


async def test_evicted_client_closes_once_its_last_request_ends() -> None:
    holder, _built = make_holder(max_per_loop=1)
    async with holder.lease(A) as busy:
        async with holder.lease(B) as newer:
            assert (busy.closed, newer.closed) == (False, False)
        assert busy.closed is False  # still in use
    assert (busy.closed, newer.closed, holder.count()) == (True, False, 1)


async def test_aclose_closes_the_running_loops_clients() -> None:
    holder, built = make_holder()
    async with holder.lease(A), holder.lease(B):
        pass
    await holder.aclose()
    assert ([client.closed for client in built], holder.count()) == ([True, True], 0)


def test_config_repr_does_not_show_the_key() -> None:
    assert "key-a" not in repr(A)


# --- through a provider --------------------------------------------------------------


async def test_provider_instances_share_one_sdk_client_on_a_loop(upstream: FakeUpstream) -> None:
    """get_provider makes an instance per request; they share the SDK client (and its
    connections) of their configuration instead of building one each."""
    install_openai_stream(upstream, ["Hi"], default=True)
    held = OPENAI_CLIENTS.count()
    for _ in range(3):
        provider = OpenAIProvider("sk-test-0123456789", base_url=upstream.url + "/v1")
        events = [event async for event in provider.stream(HELLO, "gpt-4o-mini")]
        assert TextDelta("Hi") in events
    assert OPENAI_CLIENTS.count() == held + 1


def test_get_response_leaves_no_client_behind(upstream: FakeUpstream) -> None:
    """The guide's synchronous call runs in a loop of its own: the client made there is
    closed with it, not kept."""
    install_openai_stream(upstream, ["Hi"])
    held = OPENAI_CLIENTS.count()
    provider = OpenAIProvider("sk-test-0123456789", base_url=upstream.url + "/v1")
    assert provider.get_response(HELLO, "gpt-4o-mini") == "Hi"
    assert OPENAI_CLIENTS.count() == held
