"""The model menu: which providers and models a person can pick, and which one a new
chat starts on."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from ..models import Conversation
from ..providers import PROVIDER_REGISTRY, BaseProvider, LocalProvider, get_provider, list_providers

logger = logging.getLogger("chat.services")


@dataclass(frozen=True)
class ProviderChoice:
    name: str
    label: str
    usable: bool
    models: list[str]
    hint: str = ""
    # model -> reason it takes no temperature (absent: it takes one)
    no_temperature: dict[str, str] = field(default_factory=dict)
    # model -> {setting: reason} for every setting it does not take (temperature,
    # reasoning_effort, thinking_budget; see BaseProvider.unsupported_options)
    unsupported: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def model_entries(self) -> list[tuple[str, str, str, str]]:
        """(model, why it takes no temperature, no reasoning effort, no thinking budget;
        "" where it takes it) for the menu."""
        return [
            (
                model,
                self.no_temperature.get(model, ""),
                self.unsupported.get(model, {}).get("reasoning_effort", ""),
                self.unsupported.get(model, {}).get("thinking_budget", ""),
            )
            for model in self.models
        ]


async def provider_menu(*, for_staff: bool = True) -> list[ProviderChoice]:
    """Every usable provider with its models. For staff, also each unusable one with
    the reason and how to enable it (setting names, packages); people who are not staff
    never see those, nor providers they cannot use."""
    statuses = await sync_to_async(list_providers, thread_sensitive=False)()
    if not for_staff:
        statuses = [status for status in statuses if status.usable]

    async def choice(status: Any) -> ProviderChoice:
        if not status.usable:
            hint = f"{status.reason}: {status.hint}" if status.hint else status.reason
            return ProviderChoice(status.name, status.label, False, [], hint)
        provider = get_provider(status.name)
        try:
            models = await provider.list_models()
        except Exception:
            logger.warning("model list for %s failed", status.name, exc_info=True)
            models = list(provider.default_models)
        no_temperature = {}
        unsupported = {}
        for model in models:
            unsupported[model] = provider.unsupported_options(model)
            reason = unsupported[model].get("temperature")
            if reason:
                no_temperature[model] = reason
        return ProviderChoice(
            status.name, status.label, True, models, "", no_temperature, unsupported
        )

    return list(await asyncio.gather(*(choice(s) for s in statuses)))


def model_default_for(*, user: AbstractBaseUser, menu: list[ProviderChoice]) -> tuple[str, str]:
    """(provider, model) a new chat starts on for ``user``: the model this person used
    last (their most recently updated conversation), else the admin's default (Site
    configuration in the admin, then CHAT_DEFAULT_PROVIDER / CHAT_DEFAULT_MODEL), else
    the first usable model of a cloud provider; the local model only when nothing else
    is usable. ("", "") when no provider is usable. One query at most."""
    from siteconfig.models import SiteConfiguration

    usable = {choice.name: choice.models for choice in menu if choice.usable and choice.models}
    last = (
        Conversation.objects.filter(owner=user)
        .exclude(model="")
        .order_by("-updated_at", "-id")
        .values_list("provider", "model")
        .first()
    )
    if last and last[1] in usable.get(last[0], ()):
        return last[0], last[1]
    config = SiteConfiguration.current()
    for provider, model in (
        (config.default_provider, config.default_model),
        (settings.CHAT_DEFAULT_PROVIDER, settings.CHAT_DEFAULT_MODEL),
    ):
        if provider in usable:
            models = usable[provider]
            return provider, model if model in models else models[0]
    # The registry's classes say which is local: no provider is built for the question.
    ordered = sorted(
        usable,
        key=lambda name: issubclass(PROVIDER_REGISTRY.get(name, BaseProvider), LocalProvider),
    )
    return (ordered[0], usable[ordered[0]][0]) if ordered else ("", "")
