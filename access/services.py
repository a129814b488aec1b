"""Who may use which model: ``model_access_for(user=...)`` answers for one person.

The rules and how they combine are described in ``access.models`` (and, for admins, on
the group page). Two settings shape them:

- ``CHAT_ACCESS_DEFAULT``: ``"all"`` (default) or ``"none"``, what a person may use when
  none of their groups has a rule. Any other value counts as ``"none"`` (a typo must not
  open every model); the system check ``access.E001`` reports it.
- ``CHAT_ACCESS_STAFF_ALL``: true (default) lets staff and superusers use every model.

Usage, once per request (the answer is cached on the user object, like Django's
permissions, so calling it again in the same request costs nothing)::

    access = model_access_for(user=request.user)  # or: await amodel_access_for(...)
    menu = access.filter_menu(menu)
    if not access.allows(provider, model):
        refuse(access.reason(provider, model))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext

from .models import ANY, ModelAccessRule

if TYPE_CHECKING:
    from chat.services.menu import ProviderChoice

__all__ = [
    "ModelAccess",
    "ModelNotAllowedError",
    "amodel_access_for",
    "model_access_for",
]

DEFAULT_ALL = "all"
DEFAULT_NONE = "none"
_CACHE_ATTR = "_chat_model_access"
_EVERYTHING = translate(ANY)  # the compiled form of the pattern "*"

# (group id, provider, model pattern, allow), as read from the database
RuleRow = tuple[int, str, str, bool]


class ModelNotAllowedError(PermissionDenied):
    """A person asked for a model their access rules do not allow. ``str(error)`` is the
    translated sentence to show them (``ModelAccess.reason``); it names the model and
    the provider, never a rule or a group."""

    def __init__(self, message: str, *, provider: str, model: str) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class _Pattern:
    provider: str  # a provider name, or ANY
    model: re.Pattern[str]  # compiled from the shell-style pattern, for lower-case names

    def matches(self, provider: str, model: str) -> bool:
        return (self.provider == ANY or self.provider == provider) and bool(self.model.match(model))

    def covers_provider(self, provider: str) -> bool:
        return self.provider == ANY or self.provider == provider


@dataclass(frozen=True, slots=True)
class _Grant:
    """What one group with rules gives its members."""

    allow: tuple[_Pattern, ...] | None  # None: every model (the group only refuses)
    refuse: tuple[_Pattern, ...]

    def allows(self, provider: str, model: str) -> bool:
        if self.allow is not None and not any(p.matches(provider, model) for p in self.allow):
            return False
        return not any(p.matches(provider, model) for p in self.refuse)

    def may_allow_provider(self, provider: str) -> bool:
        if any(p.covers_provider(provider) and p.model.pattern == _EVERYTHING for p in self.refuse):
            return False
        return self.allow is None or any(p.covers_provider(provider) for p in self.allow)


def _compile(provider: str, pattern: str) -> _Pattern:
    return _Pattern(provider.strip().lower(), re.compile(translate(pattern.strip().lower())))


def _grants(rows: Iterable[RuleRow]) -> tuple[_Grant, ...]:
    by_group: dict[int, tuple[list[_Pattern], list[_Pattern]]] = {}
    for group_id, provider, pattern, allow in rows:
        allowed, refused = by_group.setdefault(group_id, ([], []))
        (allowed if allow else refused).append(_compile(provider, pattern))
    return tuple(
        _Grant(tuple(allowed) if allowed else None, tuple(refused))
        for allowed, refused in by_group.values()
    )


class ModelAccess:
    """The models one person may use. Built by ``model_access_for``; holds everything it
    needs, so its methods make no query and are safe in async code.

    ``provider`` is a registered provider name (``openai``); ``model`` the model's name
    as that provider spells it (``gpt-4o-mini``). Letter case is ignored."""

    def __init__(self, *, everything: bool, grants: Sequence[_Grant] = ()) -> None:
        """``everything``: the person may use every model whatever ``grants`` says (no
        rule applies to them and the default is "all", or they are exempt staff).
        ``grants``: one per group of theirs with rules; empty and not ``everything``
        means nothing is allowed."""
        self._everything = everything
        self._grants = tuple(grants)
        self._answers: dict[tuple[str, str], bool] = {}

    def __repr__(self) -> str:
        if self._everything:
            return "<ModelAccess: every model>"
        return f"<ModelAccess: {len(self._grants)} group(s) with rules>"

    @property
    def restricted(self) -> bool:
        """False when every model is allowed (callers may skip filtering)."""
        return not self._everything

    @property
    def governed_by_rules(self) -> bool:
        """True when at least one of the person's groups has rules (the refusal then
        speaks of their group rather than of the default)."""
        return bool(self._grants)

    def allows(self, provider: str, model: str) -> bool:
        """Whether the person may use ``model`` of ``provider``."""
        if self._everything:
            return True
        key = (provider.lower(), model.lower())
        answer = self._answers.get(key)
        if answer is None:
            answer = any(grant.allows(*key) for grant in self._grants)
            self._answers[key] = answer
        return answer

    def allows_provider(self, provider: str) -> bool:
        """Whether the person may use at least one model of ``provider`` as far as the
        rules alone can tell (without the provider's model list): False only when no
        rule of theirs can match any of its models."""
        if self._everything:
            return True
        name = provider.lower()
        return any(grant.may_allow_provider(name) for grant in self._grants)

    def reason(self, provider: str, model: str) -> str:
        """The translated sentence that explains a refusal ("Your group may not use
        gpt-4o (OpenAI). Ask an admin."), or "" when the model is allowed."""
        if self.allows(provider, model):
            return ""
        values = {"model": model, "provider": _provider_label(provider)}
        if self._grants:
            return gettext("Your group may not use %(model)s (%(provider)s). Ask an admin.") % (
                values
            )
        return (
            gettext(
                "You may not use %(model)s (%(provider)s): no group of yours gives access to it. "
                "Ask an admin."
            )
            % values
        )

    def check(self, provider: str, model: str) -> None:
        """Returns when the model is allowed; raises ``ModelNotAllowedError`` (a
        ``PermissionDenied``, message = ``reason``) otherwise."""
        if not self.allows(provider, model):
            raise ModelNotAllowedError(self.reason(provider, model), provider=provider, model=model)

    def filter_models(self, provider: str, models: Iterable[str]) -> list[str]:
        """The allowed ones among ``models`` of ``provider``, in their order."""
        if self._everything:
            return list(models)
        return [model for model in models if self.allows(provider, model)]

    def filter_menu(self, menu: Sequence[ProviderChoice]) -> list[ProviderChoice]:
        """``menu`` (``chat.services.menu.provider_menu``) with only the allowed models.
        A provider left without models is dropped; an unusable provider (shown to staff
        with how to enable it) stays when the rules may allow some of its models. Each
        model's notes (no temperature, unsupported settings) go with it."""
        if self._everything:
            return list(menu)
        kept = []
        for choice in menu:
            if not choice.usable:
                if self.allows_provider(choice.name):
                    kept.append(choice)
                continue
            models = self.filter_models(choice.name, choice.models)
            if not models:
                continue
            if len(models) == len(choice.models):
                kept.append(choice)
                continue
            allowed = set(models)
            kept.append(
                dataclasses.replace(
                    choice,
                    models=models,
                    no_temperature={m: r for m, r in choice.no_temperature.items() if m in allowed},
                    unsupported={m: u for m, u in choice.unsupported.items() if m in allowed},
                )
            )
        return kept


def _provider_label(name: str) -> str:
    """The provider's label as people see it in the menu (OpenAI), else its name."""
    from chat.providers import PROVIDER_REGISTRY

    cls = PROVIDER_REGISTRY.get(name)
    return str(getattr(cls, "label", "") or name) if cls is not None else name


def _default_allows_all() -> bool:
    value = str(getattr(settings, "CHAT_ACCESS_DEFAULT", DEFAULT_ALL)).strip().lower()
    return value == DEFAULT_ALL


def _exempt(user: Any) -> bool:
    if not getattr(settings, "CHAT_ACCESS_STAFF_ALL", True):
        return False
    return bool(getattr(user, "is_superuser", False) or getattr(user, "is_staff", False))


def _rules_query(user: Any) -> Any:
    return ModelAccessRule.objects.filter(group__in=user.groups.all()).values_list(
        "group_id", "provider", "model_pattern", "allow"
    )


def _build(rows: Iterable[RuleRow]) -> ModelAccess:
    grants = _grants(rows)
    if grants:
        return ModelAccess(everything=False, grants=grants)
    return ModelAccess(everything=_default_allows_all())


def _needs_rules(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and not _exempt(user)


# Whether any rule exists, kept in Django's cache (shared by the workers with Redis):
# most sites have none, and then no page pays a query for them. Saving or deleting a rule
# clears it (signals in apps.py); without a shared cache another worker may see a new
# first rule up to ANY_RULES_SECONDS late.
ANY_RULES_KEY = "access:any-rules"
ANY_RULES_SECONDS = 30


def _any_rules() -> bool:
    cached = cache.get(ANY_RULES_KEY)
    if cached is None:
        cached = ModelAccessRule.objects.exists()
        cache.set(ANY_RULES_KEY, cached, ANY_RULES_SECONDS)
    return bool(cached)


# The admin's fallback chains, {"provider/model": ["provider/model", ...]}, cached the
# same way (the table is small, and a reply reads it before it starts).
FALLBACK_CHAINS_KEY = "access:fallback-chains"


def fallback_chains() -> dict[str, list[str]]:
    """Every admin fallback chain (``access.models.FallbackChain``) by the model it is
    for, "provider/model" (model ``*``: every model of the provider). Cached for
    ``ANY_RULES_SECONDS``; saving or deleting a chain clears it."""
    from .models import FallbackChain

    cached = cache.get(FALLBACK_CHAINS_KEY)
    if cached is None:
        cached = {f"{row.provider}/{row.model}": row.chain for row in FallbackChain.objects.all()}
        cache.set(FALLBACK_CHAINS_KEY, cached, ANY_RULES_SECONDS)
    return cached


def rules_changed(**_kwargs: Any) -> None:
    """A rule was saved or deleted: the next request reads the rules again."""
    cache.delete(ANY_RULES_KEY)


def model_access_for(*, user: Any) -> ModelAccess:
    """What ``user`` (a signed-in user, or AnonymousUser: no groups) may use. One query
    (the rules of the person's groups, joined in the database); none for exempt staff,
    anonymous users, or a second call on the same user object, which returns the same
    ``ModelAccess`` (rules changed meanwhile apply from the next request). Raises only
    database errors."""
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    if _needs_rules(user):
        access = _build(_rules_query(user) if _any_rules() else ())
    elif getattr(user, "is_authenticated", False):
        access = ModelAccess(everything=True)  # exempt staff
    else:
        access = _build(())
    setattr(user, _CACHE_ATTR, access)
    return access


async def amodel_access_for(*, user: Any) -> ModelAccess:
    """``model_access_for`` for async code (the same query through Django's async ORM,
    the same cache on the user object)."""
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    if _needs_rules(user):
        any_rules = await sync_to_async(_any_rules)()
        access = _build([row async for row in _rules_query(user)] if any_rules else ())
    elif getattr(user, "is_authenticated", False):
        access = ModelAccess(everything=True)
    else:
        access = _build(())
    setattr(user, _CACHE_ATTR, access)
    return access
