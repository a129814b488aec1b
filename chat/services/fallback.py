"""Fallback: another model answers when the chosen one fails before its first token.

The chain comes from the conversation (its owner's choice, ``Conversation.fallback_models``)
or else from the admin (``access.models.FallbackChain`` for the model, then for every
model of its provider). Each model of the chain is checked when the reply is prepared:
the person may use it (access rules), its provider is usable and offers it, and it can
read the question's files; a model that fails a check is left out. The run
(``runs.ReplyRun``) moves on to the next model only for the kinds in
``FALLBACK_KINDS`` and only while nothing has been streamed; after the first token there
is no fallback (the text would be duplicated). The reply records the models that failed
(``Message.fallback``) and the one that answered (``Message.provider``/``model``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.text import get_text_list
from django.utils.translation import gettext as _

from ..providers import PROVIDER_REGISTRY, ErrorKind

# The failures another model may answer for: the model (or its provider) could not take
# the request right now. A refusal of the request itself (bad request, credentials,
# permission, unknown model) would fail the same way elsewhere, or should be seen.
FALLBACK_KINDS = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT})

FALLBACK_MAX = 3  # models after the chosen one


@dataclass(frozen=True, slots=True)
class FallbackHop:
    """One model of a reply's fallback chain, checked and ready: ``label`` is its
    provider's name in the menu; ``history`` the conversation as that model reads it
    (None: the same as the chosen model's)."""

    provider: str
    model: str
    label: str
    history: list[dict[str, Any]] | None = None


def fallback_chain_parse(values: Iterable[str]) -> list[tuple[str, str]]:
    """``(provider, model)`` pairs from "provider/model" strings (blank ones skipped,
    repeats dropped, order kept). Raises ValidationError naming the first value that is
    not "provider/model" with a registered provider, or when there are more than
    ``FALLBACK_MAX``."""
    chain: list[tuple[str, str]] = []
    for raw in values:
        value = str(raw or "").strip()
        if not value:
            continue
        provider, slash, model = value.partition("/")
        provider, model = provider.strip(), model.strip()
        if not slash or not provider or not model:
            raise ValidationError(
                _("“%(value)s” is not a model: write provider/model, for example %(example)s.")
                % {"value": value, "example": "openai/gpt-4o-mini"}
            )
        if provider not in PROVIDER_REGISTRY:
            raise ValidationError(
                _("“%(value)s”: there is no provider named “%(name)s”.")
                % {"value": value, "name": provider}
            )
        if (provider, model) not in chain:
            chain.append((provider, model))
    if len(chain) > FALLBACK_MAX:
        raise ValidationError(_("Choose at most %(max)d fallback models.") % {"max": FALLBACK_MAX})
    return chain


def fallback_chain_for(
    *,
    provider: str,
    model: str,
    conversation_chain: Sequence[str] | None = None,
    chains: dict[str, list[str]] | None = None,
) -> list[tuple[str, str]]:
    """The fallback chain for a reply by ``provider``/``model``: the conversation's own
    (``conversation_chain``, "provider/model" strings) when it has one, else the admin's
    for this model, else the admin's for every model of the provider; [] when none. An
    entry that no longer parses (a provider removed since) is skipped, and the chosen
    model itself never appears. The admin's chains are cached (``access.services.
    fallback_chains``; async code passes them as ``chains``): usually no query."""
    if conversation_chain:
        pairs = _parsed_leniently(conversation_chain)
    else:
        from access.models import ANY
        from access.services import fallback_chains

        if chains is None:
            chains = fallback_chains()
        admin = chains.get(f"{provider}/{model}") or chains.get(f"{provider}/{ANY}") or []
        pairs = _parsed_leniently(admin)
    return [pair for pair in pairs if pair != (provider, model)][:FALLBACK_MAX]


def _parsed_leniently(values: Iterable[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        try:
            pairs += [pair for pair in fallback_chain_parse([value]) if pair not in pairs]
        except ValidationError:
            continue
    return pairs


def fallback_hops(
    chain: Sequence[tuple[str, str]],
    *,
    access: Any,
    usable: Callable[[str, str], Any],
    history_for: Callable[[Any, str], list[dict[str, Any]] | None] | None = None,
    files_fit: Callable[[str, str], Any] | None = None,
) -> tuple[FallbackHop, ...]:
    """The models of ``chain`` a reply may fall back to, in order, each checked:
    ``access.allows(provider, model)`` (the person's access rules), ``usable(provider,
    model)`` (returns the provider object; raises ValidationError when the provider is
    not usable or does not offer the model), ``files_fit(provider, model)`` (raises
    ValidationError when the model cannot read the question's files). A model that fails
    a check is left out. ``history_for(provider_obj, model)`` gives the history fitted to
    that model (None: the chosen model's history as is)."""
    hops: list[FallbackHop] = []
    for provider, model in chain:
        if not access.allows(provider, model):
            continue
        try:
            provider_obj = usable(provider, model)
            if files_fit is not None:
                files_fit(provider, model)
        except ValidationError:
            continue
        history = history_for(provider_obj, model) if history_for is not None else None
        hops.append(FallbackHop(provider, model, provider_obj.shown_label(), history))
    return tuple(hops)


def _why(kind: str) -> str:
    if kind == ErrorKind.RATE_LIMITED:
        return _("was rate limited")
    if kind == ErrorKind.TIMEOUT:
        return _("timed out")
    return _("was unavailable")


def fallback_note(
    attempts: Sequence[dict[str, str]] | None, *, model: str, failed: bool = False
) -> str:
    """The sentence shown beside a reply another model answered: which models failed
    and why, and which one answered (``model``); with ``failed``, that ``model``, the
    last one tried, failed too. "" when ``attempts`` (the reply's ``Message.fallback``:
    [{"provider", "model", "kind"}...]) is empty."""
    if not attempts:
        return ""
    reasons = get_text_list(
        [f"{a.get('model', '')} {_why(a.get('kind', ''))}" for a in attempts], _("and")
    )
    if failed:
        return _("Tried in turn: %(reasons)s, then %(model)s failed too.") % {
            "model": model,
            "reasons": reasons,
        }
    return _("Answered by %(model)s: %(reasons)s.") % {"model": model, "reasons": reasons}
