"""README_PROVIDERS.md describes the real code: its example provider is taken from the
document, registered, and answers through both interfaces against a loopback server."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chat.providers import (
    PROVIDER_REGISTRY,
    AuthenticationError,
    ChatOptions,
    Finish,
    RateLimitedError,
    TextDelta,
    get_provider,
    list_providers,
)
from chat.tests.fakes.server import FakeUpstream, JsonResponse

GUIDE = Path(__file__).resolve().parents[2] / "providers" / "README_PROVIDERS.md"
MESSAGES = [{"role": "user", "content": "Say hi"}]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)


def example_module() -> ModuleType:
    """The guide's example provider, loaded as chat.providers.yourprovider_provider."""
    source = next(b for b in python_blocks() if "class YourProviderProvider" in b)
    name = "chat.providers.yourprovider_provider"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "chat.providers"
    sys.modules[name] = module
    exec(compile(source, str(GUIDE), "exec"), module.__dict__)
    return module


@pytest.fixture
def registered(settings: Any, upstream: FakeUpstream) -> Iterator[type]:
    cls = example_module().YourProviderProvider
    PROVIDER_REGISTRY["yourprovider"] = cls
    settings.YOURPROVIDER_API_KEY = "test-key-123"
    settings.YOURPROVIDER_BASE_URL = upstream.url + "/v1"
    settings.YOURPROVIDER_TIMEOUT = 2.0
    try:
        yield cls
    finally:
        PROVIDER_REGISTRY.pop("yourprovider", None)
        sys.modules.pop("chat.providers.yourprovider_provider", None)


def test_guide_lists_every_provider_module() -> None:
    text = GUIDE.read_text()
    modules = sorted(p.name for p in GUIDE.parent.glob("*.py"))
    for module in modules:
        assert f"`{module}`" in text, f"{module} is not described in README_PROVIDERS.md"


def test_guide_names_only_real_registry_keys() -> None:
    table = GUIDE.read_text().split("## Быстрый старт", 1)[1].split("###", 1)[0]
    names = set(re.findall(r"^\| [^|]+ \| `([a-z]+)` \|", table, re.MULTILINE))
    assert names and names <= set(PROVIDER_REGISTRY)


def test_guide_does_not_recommend_retired_mistral_ids() -> None:
    from chat.providers.mistral_provider import MistralProvider

    text = GUIDE.read_text()
    for model in MistralProvider.default_models:
        assert f"`{model}`" in text
    assert "не идентификаторы API" in text


def test_example_provider_answers_through_get_response(
    registered: type, upstream: FakeUpstream
) -> None:
    upstream.add("POST", "/v1/chat", JsonResponse({"text": "Hi from the example"}))
    provider = get_provider("yourprovider")
    assert provider.get_response(MESSAGES, "your-model-small", temperature=0.2) == (
        "Hi from the example"
    )
    request = upstream.requests[0]
    assert request.headers["authorization"] == "Bearer test-key-123"
    assert request.json() == {
        "model": "your-model-small",
        "messages": MESSAGES,
        "temperature": 0.2,
    }


async def test_example_provider_streams_in_the_app(
    registered: type, upstream: FakeUpstream
) -> None:
    upstream.add("POST", "/v1/chat", JsonResponse({"text": "one chunk"}))
    provider = get_provider("yourprovider")
    options = ChatOptions(system_prompt="Be brief")
    events = [e async for e in provider.stream(MESSAGES, "your-model-small", options)]
    assert events == [TextDelta("one chunk"), Finish("stop")]
    assert upstream.requests[0].json()["messages"][0] == {"role": "system", "content": "Be brief"}


def test_example_provider_errors_are_text_for_get_response(
    registered: type, upstream: FakeUpstream
) -> None:
    upstream.add("POST", "/v1/chat", JsonResponse({"error": "bad key"}, status=401))
    answer = get_provider("yourprovider").get_response(MESSAGES, "your-model-small")
    assert answer.startswith("Error: Your Provider:")


async def test_example_provider_errors_are_errors_in_the_app(
    registered: type, upstream: FakeUpstream
) -> None:
    upstream.add("POST", "/v1/chat", JsonResponse({"error": "bad key"}, status=401))
    with pytest.raises(AuthenticationError):
        _ = [e async for e in get_provider("yourprovider").stream(MESSAGES, "your-model-small")]


async def test_example_provider_rate_limit_is_retried(
    registered: type, upstream: FakeUpstream
) -> None:
    upstream.add(
        "POST",
        "/v1/chat",
        JsonResponse({"error": "slow down"}, status=429, headers={"Retry-After": "0"}),
        JsonResponse({"text": "after the wait"}),
    )
    provider = get_provider("yourprovider")
    provider.retry_policy = type(provider.retry_policy)(max_retries=1, base_delay=0.01)
    text = await provider.complete(MESSAGES, "your-model-small")
    assert text == "after the wait"
    assert len(upstream.requests) == 2
    assert RateLimitedError.kind == "rate_limited"


def test_example_provider_shows_in_the_provider_list(registered: type) -> None:
    states = {s.name: s for s in list_providers()}
    assert states["yourprovider"].usable
    assert states["yourprovider"].label == "Your Provider"


def test_example_provider_without_key_says_which_setting(settings: Any, registered: type) -> None:
    settings.YOURPROVIDER_API_KEY = ""
    status = get_provider("yourprovider").status()
    assert not status.usable and "YOURPROVIDER_API_KEY" in status.hint
