"""The provider registry: ``PROVIDER_REGISTRY`` and ``get_provider(name)``.

Add a provider by importing its class and putting it in ``PROVIDER_REGISTRY`` under the
name people select (see README_PROVIDERS.md). Keys, base URLs and timeouts come from
Django settings (``<NAME>_API_KEY``, ``<NAME>_BASE_URL``, ``<NAME>_TIMEOUT``), which read
the environment. OpenAI-compatible endpoints declared in the environment
(``OPENAI_COMPATIBLE_PROVIDERS``) get an entry each, registered when the app starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from .anthropic_provider import AnthropicProvider
from .base_provider import (
    REASONING_EFFORTS,
    REASONING_OPTIONS,
    THINKING_BUDGET_RANGE,
    AuthenticationError,
    BadRequestError,
    BaseProvider,
    ChatOptions,
    ErrorKind,
    Finish,
    FinishReason,
    ModelCapabilities,
    ModelNotFoundError,
    NotConfiguredError,
    PermissionDeniedError,
    ProviderError,
    ProviderStatus,
    ProviderTimeoutError,
    RateLimitedError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    gettext,
)
from .google_provider import GoogleProvider
from .local_provider import LocalProvider
from .messages import IMAGE_MIME_TYPES, PDF_MIME_TYPE, media_kinds
from .mistral_provider import MistralProvider
from .openai_provider import OpenAICompatibleProvider, OpenAIProvider

__all__ = [
    "IMAGE_MIME_TYPES",
    "PDF_MIME_TYPE",
    "PROVIDER_REGISTRY",
    "REASONING_EFFORTS",
    "REASONING_OPTIONS",
    "THINKING_BUDGET_RANGE",
    "AuthenticationError",
    "BadRequestError",
    "BaseProvider",
    "ChatOptions",
    "ErrorKind",
    "Finish",
    "FinishReason",
    "ModelCapabilities",
    "ModelNotFoundError",
    "NotConfiguredError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderStatus",
    "ProviderTimeoutError",
    "RateLimitedError",
    "ReasoningDelta",
    "StreamEvent",
    "TextDelta",
    "UnavailableError",
    "UnknownProviderError",
    "Usage",
    "get_provider",
    "list_providers",
    "media_kinds",
    "register_openai_compatible",
]

PROVIDER_REGISTRY: dict[str, type[BaseProvider]] = {
    "local": LocalProvider,
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "google": GoogleProvider,
    "mistral": MistralProvider,
}


class UnknownProviderError(BadRequestError, ValueError):
    """``get_provider`` was asked for a name that is not registered."""


def register_openai_compatible(endpoints: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Register one provider per OpenAI-compatible endpoint (name -> base_url, api_key,
    models, label, timeout). Returns the names registered. Each gets its own subclass,
    so its label and settings are its own."""
    names = []
    for name, config in endpoints.items():
        label = str(config.get("label") or name)
        cls = type(
            f"{name.title().replace('-', '').replace('_', '')}CompatibleProvider",
            (OpenAICompatibleProvider,),
            {
                "label": label,
                "endpoint_config": dict(config),
                "api_key_setting": f"{name.upper().replace('-', '_')}_API_KEY",
            },
        )
        PROVIDER_REGISTRY[name] = cls
        names.append(name)
    return names


def provider_config(name: str, cls: type[BaseProvider]) -> dict[str, Any]:
    """Constructor arguments for ``cls`` from Django settings."""
    from django.conf import settings

    prefix = name.upper().replace("-", "_")
    default_timeout = getattr(settings, "LLM_REQUEST_TIMEOUT", 60.0)
    config: dict[str, Any] = {
        "api_key": getattr(settings, f"{prefix}_API_KEY", "") or "",
        "base_url": getattr(settings, f"{prefix}_BASE_URL", "") or None,
        "timeout": getattr(settings, f"{prefix}_TIMEOUT", default_timeout),
        "max_retries": getattr(settings, "LLM_MAX_RETRIES", 2),
        "name": name,
    }
    endpoint = getattr(cls, "endpoint_config", None)
    if endpoint:
        config.update(
            api_key=endpoint.get("api_key") or "",
            base_url=endpoint.get("base_url") or None,
            timeout=endpoint.get("timeout") or default_timeout,
            models=list(endpoint.get("models") or ()),
            label=endpoint.get("label") or name,
        )
    settings_config = getattr(cls, "settings_config", None)
    if callable(settings_config):
        config.update(settings_config(settings))
    return config


def get_provider(name: str) -> BaseProvider:
    """A ready provider instance for ``name``; raises UnknownProviderError for a name
    that is not registered. A provider without its key is still returned (its
    ``status()`` says why it cannot be used, and a request raises NotConfiguredError)."""
    cls = PROVIDER_REGISTRY.get(name)
    if cls is None:
        known = ", ".join(sorted(PROVIDER_REGISTRY)) or "none"
        raise UnknownProviderError(f"unknown provider {name!r} (available: {known})")
    config = provider_config(name, cls)
    return cls(**_accepted_kwargs(cls, config))


def list_providers() -> list[ProviderStatus]:
    """Every registered provider with whether it is usable and, if not, why and how to
    enable it. Makes no network call."""
    statuses = []
    for name in PROVIDER_REGISTRY:
        try:
            statuses.append(get_provider(name).status())
        except Exception as e:  # a broken third-party provider must not hide the others
            statuses.append(
                ProviderStatus(
                    name,
                    name,
                    False,
                    reason=gettext("failed to start: %(error)s") % {"error": type(e).__name__},
                )
            )
    return statuses


def _accepted_kwargs(cls: type[BaseProvider], config: dict[str, Any]) -> dict[str, Any]:
    """Guide-style providers take only ``api_key``; ours take the whole config."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return config
    return {k: v for k, v in config.items() if k in params}
