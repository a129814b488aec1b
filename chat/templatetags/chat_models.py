"""Template tags about providers and models."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django import template

from chat.providers import PROVIDER_REGISTRY, get_provider

register = template.Library()
logger = logging.getLogger("chat")


@register.simple_tag
def provider_label(provider: str, menu: Iterable[Any] = ()) -> str:
    """``{% provider_label message.provider menu as label %}``: the name a provider goes
    by beside its replies. The model menu's label when ``menu`` (the page's
    ``ProviderChoice`` or ``ProviderStatus`` list, each with ``name`` and ``label``) has
    the provider; else the registry's (a provider the menu leaves out: an access rule, a
    key removed), in the active language; "" for a provider no longer registered (or one
    that fails to start): the reply then shows its model alone."""
    for choice in menu or ():
        if choice.name == provider:
            return str(choice.label)
    if not provider or provider not in PROVIDER_REGISTRY:
        return ""
    try:
        return get_provider(provider).shown_label()
    except Exception:  # a broken third-party provider must not break the page
        logger.warning("provider %s failed to start for its label", provider, exc_info=True)
        return ""
