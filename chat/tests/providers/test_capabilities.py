"""What each model reads and whether it reasons: the tables in capabilities.py, seen
through each provider's ``capabilities(model)`` (the model lists' own word is tested with
each provider, through its SDK and fake)."""

from __future__ import annotations

import pytest

from chat.providers import (
    ModelCapabilities,
    get_provider,
    register_openai_compatible,
)
from chat.providers.anthropic_provider import AnthropicProvider
from chat.providers.capabilities import UNKNOWN
from chat.providers.google_provider import GoogleProvider
from chat.providers.local_provider import LocalProvider
from chat.providers.mistral_provider import MistralProvider
from chat.providers.openai_provider import OpenAICompatibleProvider, OpenAIProvider

VISION = ModelCapabilities(images=True, pdf=True, reasoning=False)
VISION_REASONING = ModelCapabilities(images=True, pdf=True, reasoning=True)
TEXT = ModelCapabilities(images=False, pdf=False, reasoning=False)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", VISION),
        ("gpt-4o-2024-08-06", VISION),
        ("ft:gpt-4o-mini:acme::abc123", VISION),
        ("gpt-4.1-nano", VISION),
        ("gpt-5", VISION_REASONING),
        ("gpt-5-mini", VISION_REASONING),
        ("gpt-5-chat-latest", VISION),
        ("o1", VISION_REASONING),
        ("o3", VISION_REASONING),
        ("o4-mini", VISION_REASONING),
        ("o3-mini", ModelCapabilities(images=False, pdf=False, reasoning=True)),
        ("gpt-3.5-turbo", TEXT),
        ("davinci-002", UNKNOWN),
    ],
)
def test_openai_table(model: str, expected: ModelCapabilities) -> None:
    assert OpenAIProvider("k").capabilities(model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-5-5", VISION_REASONING),
        ("claude-opus-4-1-20250805", VISION_REASONING),
        ("claude-3-7-sonnet-20250219", VISION_REASONING),
        ("claude-3-5-sonnet-20241022", VISION),
        ("claude-3-haiku-20240307", VISION),
        ("claude-instant-1.2", TEXT),
    ],
)
def test_anthropic_table(model: str, expected: ModelCapabilities) -> None:
    assert AnthropicProvider("k").capabilities(model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-3.5-flash", VISION_REASONING),
        ("gemini-3.1-pro-preview", VISION_REASONING),
        ("gemini-2.5-flash", VISION_REASONING),
        ("gemini-2.0-flash", VISION),
        ("gemini-1.5-pro", VISION),
        ("models/gemini-2.5-pro", VISION_REASONING),
    ],
)
def test_gemini_table(model: str, expected: ModelCapabilities) -> None:
    assert GoogleProvider("k").capabilities(model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("pixtral-large-latest", ModelCapabilities(images=True, pdf=False, reasoning=False)),
        ("mistral-small-2506", ModelCapabilities(images=True, pdf=False, reasoning=False)),
        ("mistral-medium-latest", ModelCapabilities(images=True, pdf=False, reasoning=False)),
        ("magistral-medium-latest", ModelCapabilities(images=None, pdf=False, reasoning=True)),
        ("codestral-latest", TEXT),
        ("mistral-large-latest", ModelCapabilities(images=None, pdf=False, reasoning=None)),
    ],
)
def test_mistral_table_never_reads_pdfs_natively(model: str, expected: ModelCapabilities) -> None:
    assert MistralProvider("k").capabilities(model) == expected


def test_the_local_model_reads_text_only() -> None:
    assert LocalProvider().capabilities("smollm2-135m-instruct") == TEXT


def test_an_openai_compatible_server_is_unknown_whatever_the_model_is_called() -> None:
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:1/v1", name="ollama")
    assert provider.capabilities("gpt-4o") == UNKNOWN
    assert provider.capabilities("llava:7b") == UNKNOWN


def test_registered_compatible_endpoints_are_unknown_too() -> None:
    from chat.providers import PROVIDER_REGISTRY

    saved = dict(PROVIDER_REGISTRY)
    try:
        register_openai_compatible({"lmstudio": {"base_url": "http://127.0.0.1:1/v1"}})
        assert get_provider("lmstudio").capabilities("qwen2-vl") == UNKNOWN
    finally:
        PROVIDER_REGISTRY.clear()
        PROVIDER_REGISTRY.update(saved)


def test_the_model_lists_word_wins_over_the_table_field_by_field() -> None:
    listed = ModelCapabilities(images=False, pdf=None, reasoning=None)
    assert listed.over(VISION_REASONING) == ModelCapabilities(False, True, True)
    assert ModelCapabilities.from_facts({"images": True}) == ModelCapabilities(images=True)
