"""The registry in chat/providers/__init__.py: names, configuration from settings,
provider states, OpenAI-compatible endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chat.providers import (
    PROVIDER_REGISTRY,
    BaseProvider,
    UnknownProviderError,
    get_provider,
    list_providers,
    register_openai_compatible,
)


@pytest.fixture
def registry_snapshot() -> Iterator[None]:
    saved = dict(PROVIDER_REGISTRY)
    yield
    PROVIDER_REGISTRY.clear()
    PROVIDER_REGISTRY.update(saved)


def test_registry_has_every_builtin_provider() -> None:
    assert {"local", "openai", "anthropic", "google", "mistral"} <= set(PROVIDER_REGISTRY)


def test_unknown_provider_raises_a_clear_error() -> None:
    with pytest.raises(UnknownProviderError, match=r"unknown provider 'nope'.*openai"):
        get_provider("nope")


def test_keys_and_urls_come_from_settings(settings: Any) -> None:
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9/"
    settings.ANTHROPIC_TIMEOUT = 7.5
    provider = get_provider("anthropic")
    assert provider.api_key == "sk-ant-test"
    assert provider.base_url == "http://127.0.0.1:9/"
    assert provider.timeout == 7.5


def test_list_providers_tells_why_a_provider_is_unusable(settings: Any) -> None:
    settings.OPENAI_API_KEY = ""
    states = {s.name: s for s in list_providers()}
    assert states["openai"].usable is False
    assert states["openai"].reason == "no API key"
    assert "OPENAI_API_KEY" in states["openai"].hint


def test_list_providers_marks_a_configured_provider_usable(settings: Any) -> None:
    settings.MISTRAL_API_KEY = "test-key"
    states = {s.name: s for s in list_providers()}
    assert states["mistral"].usable is True


def test_list_providers_survives_a_provider_that_fails_to_start(registry_snapshot: None) -> None:
    class Exploding(BaseProvider):
        def __init__(self, api_key: str) -> None:
            raise RuntimeError("boom")

    PROVIDER_REGISTRY["exploding"] = Exploding
    states = {s.name: s for s in list_providers()}
    assert states["exploding"].usable is False
    assert "RuntimeError" in states["exploding"].reason
    assert "openai" in states


def test_guide_style_provider_gets_its_key_from_settings(
    settings: Any, registry_snapshot: None
) -> None:
    class YourProviderProvider(BaseProvider):
        def __init__(self, api_key: str) -> None:
            super().__init__(api_key)

        def get_response(self, messages: Any, model: str, **kwargs: Any) -> str:
            return "ok"

    settings.YOURPROVIDER_API_KEY = "from-settings"
    PROVIDER_REGISTRY["yourprovider"] = YourProviderProvider
    assert get_provider("yourprovider").api_key == "from-settings"


def test_compatible_endpoints_get_one_entry_each(registry_snapshot: None) -> None:
    names = register_openai_compatible(
        {
            "ollama": {"base_url": "http://127.0.0.1:11434/v1", "models": ["llama3.2"]},
            "openrouter": {
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": "k",
                "label": "OpenRouter",
            },
        }
    )
    assert names == ["ollama", "openrouter"]
    ollama, openrouter = get_provider("ollama"), get_provider("openrouter")
    assert type(ollama) is not type(openrouter)
    assert ollama.base_url == "http://127.0.0.1:11434/v1"
    assert openrouter.label == "OpenRouter"
    assert ollama.configured_models == ("llama3.2",)
