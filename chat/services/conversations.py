"""Conversations: create, rename, delete, settings, and what the sidebar shows of them
(a reply in progress, a finished reply not seen yet)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from ..dbtext import storable_text
from ..models import Conversation
from ..providers import PROVIDER_REGISTRY, BaseProvider, ChatOptions, ProviderError, get_provider
from .fallback import fallback_chain_parse

TITLE_MAX_CHARS = 60


def conversation_create(
    *,
    owner: AbstractBaseUser,
    provider: str = "",
    model: str = "",
    title: str = "",
) -> Conversation:
    """A new, empty conversation with the given (or default) provider and model."""
    provider = provider or settings.CHAT_DEFAULT_PROVIDER or "local"
    if provider not in PROVIDER_REGISTRY:
        raise ValidationError(_("Unknown provider."))
    provider_obj = get_provider(provider)
    if model:
        _check_model(provider_obj, model)
    else:
        model = provider_obj.default_model()
    return Conversation.objects.create(
        owner=owner, provider=provider, model=model, title=title.strip()[:200]
    )


def _check_model(provider: BaseProvider, model: str) -> None:
    """Reject a model the provider is known not to have (when its list is known)."""
    known = provider.known_models()
    if known is not None and model not in known:
        raise ValidationError(
            _("Unknown model “%(model)s” for %(label)s.")
            % {"model": model, "label": provider.shown_label()}
        )


def chat_options_checked(**options: Any) -> ChatOptions:
    """``ChatOptions(**options)`` (system prompt, temperature, max tokens, reasoning
    effort, thinking budget); ValidationError with the reason when a value is out of
    range, for a form to show."""
    try:
        return ChatOptions(**options)
    except ProviderError as e:
        raise ValidationError(e.message) from e


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Give ``conversation`` the title a person typed (spaces collapsed, at most 200
    characters). Raises ValidationError for a blank title."""
    title = " ".join(storable_text(title).split())
    if not title:
        raise ValidationError(_("The title cannot be empty."))
    conversation.title = title[:200]
    conversation.save(update_fields=["title"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete ``conversation`` with all its messages."""
    conversation.delete()


def conversation_update_settings(
    *,
    conversation: Conversation,
    system_prompt: str,
    temperature: float | None,
    max_tokens: int | None,
    reasoning_effort: str | None = None,
    thinking_budget: int | None = None,
    fallback_models: list[str] | None = None,
) -> Conversation:
    """Save the conversation's system prompt, temperature (0 to 2), maximum reply tokens,
    reasoning effort (one of ``REASONING_EFFORTS``: "minimal", "low", "medium", "high")
    and thinking budget (tokens, within ``THINKING_BUDGET_RANGE``). None (or "" for the
    effort) means the model's default. A model that does not take one of them is sent
    none (``BaseProvider.unsupported_options``); the value stays for another model.
    ``fallback_models``: "provider/model" strings tried in order when the model fails
    before answering (``fallback.py``; [] or None: the administrator's chain); each must
    be a model the owner may use. Raises ValidationError for a value out of range, a
    fallback that is not provider/model or that the owner may not use."""
    system_prompt = storable_text(system_prompt)
    reasoning_effort = reasoning_effort or None
    chat_options_checked(
        system_prompt=system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        reasoning_effort=reasoning_effort,
        thinking_budget=thinking_budget,
    )
    chain = fallback_chain_parse(fallback_models or [])
    if chain:
        from access.services import model_access_for

        access = model_access_for(user=conversation.owner)
        for provider, model in chain:
            reason = access.reason(provider, model)
            if reason:
                raise ValidationError(reason)
    conversation.fallback_models = [f"{p}/{m}" for p, m in chain] or None
    conversation.system_prompt = system_prompt
    conversation.temperature = temperature
    conversation.max_tokens = max_tokens
    conversation.reasoning_effort = reasoning_effort
    conversation.thinking_budget = thinking_budget
    conversation.save(
        update_fields=[
            "system_prompt",
            "temperature",
            "max_tokens",
            "reasoning_effort",
            "thinking_budget",
            "fallback_models",
        ]
    )
    return conversation


_TITLE_MARKS = re.compile(r"\*\*|__|~~|`+")


def title_line(text: str) -> str:
    """The first line of ``text`` that says something, as plain text: code fences
    skipped, Markdown marks (``**``, ``__``, ``~~``, backticks, a heading's ``#``, a
    quote's ``>``, a list's ``-``/``*``) removed. "" when there is none."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("```", "~~~")):
            continue
        line = " ".join(_TITLE_MARKS.sub("", line).lstrip("#>*-+ ").split())
        if line:
            return line
    return ""


def title_shorten(line: str) -> str:
    """``line`` cut to TITLE_MAX_CHARS at a word boundary, with "…" when cut (a final
    period or comma is dropped before it)."""
    if len(line) <= TITLE_MAX_CHARS:
        return line
    cut = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    cut = cut if len(cut) > TITLE_MAX_CHARS // 2 else line[:TITLE_MAX_CHARS]
    return cut.rstrip(" .,;:!?-–—") + "…"


def title_from_text(text: str) -> str:
    """A short title from the first message: its first line that says something, as
    plain text, cut at a word boundary. Costs nothing (no model call)."""
    return title_shorten(title_line(text))


def conversation_mark_seen(*, owner: AbstractBaseUser, conversation_id: int) -> bool:
    """The person has seen the conversation's latest reply: the sidebar stops marking it.
    True when there was a mark to clear. One UPDATE, scoped to ``owner``."""
    return bool(
        Conversation.objects.filter(
            pk=conversation_id, owner=owner, reply_unseen_at__isnull=False
        ).update(reply_unseen_at=None)
    )
