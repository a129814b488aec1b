"""Access rules: which providers and models the members of a Django group may use.

How rules combine (``RULES_HELP`` says the same to admins, on the group page and the
rule list; ``access.services.ModelAccess`` applies it):

1. With no rule for any of a person's groups, the person may use every model, or none
   when the setting ``CHAT_ACCESS_DEFAULT`` is ``"none"``. A new installation (no rules at
   all) therefore lets everyone use everything.
2. A group with rules gives its members the models that match one of its *allow* rules
   (every model when it has only *refuse* rules), minus the models that match one of its
   *refuse* rules.
3. A person in several groups with rules may use what any one of those groups gives
   (union). Groups without rules add nothing.
4. Staff and superusers may use every model while ``CHAT_ACCESS_STAFF_ALL`` is true (the
   default); otherwise the same rules apply to them.

A rule names a provider (its registered name, such as ``openai``, or ``*`` for every
provider) and a model pattern: an exact model name, a shell-style pattern (``gpt-4o*``,
``claude-?-*``, ``[!o]*``), or ``*`` for all models of that provider. Matching ignores
letter case and covers the whole model name.
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import GreaterThan
from django.utils.translation import gettext_lazy as _

ANY = "*"

RULES_HELP = (
    _(
        "Without any rule for a person's groups, that person may use every model (or none, "
        "when the setting CHAT_ACCESS_DEFAULT is “none”). With no rules at all, everyone may "
        "use everything."
    ),
    _(
        "A group with rules lets its members use the models its “allow” rules match (every "
        "model when it has only refusals), except those its refusals (“allow” unticked) "
        "match."
    ),
    _(
        "A person in several groups with rules may use what any one of them allows. Groups "
        "without rules add nothing."
    ),
    _(
        "Staff and superusers may use every model unless the setting CHAT_ACCESS_STAFF_ALL "
        "is false. The model menu, the API's model list and sending all follow these rules."
    ),
    _(
        "Model pattern: an exact name (gpt-4o-mini), a shell-style pattern (gpt-4o*, "
        "claude-?-*) or * for all models of the provider; letter case is ignored. "
        "Provider: its name, or * for every provider."
    ),
)


class ModelAccessRule(models.Model):
    """One rule of one group: its members may (``allow``) or may not use the models of
    ``provider`` whose names match ``model_pattern``. See the module docstring for how
    rules combine."""

    group = models.ForeignKey(
        Group,
        on_delete=models.CASCADE,
        related_name="model_access_rules",
        verbose_name=_("group"),
    )
    provider = models.CharField(
        _("provider"),
        max_length=64,
        help_text=_("The provider's name (openai, anthropic, local…), or * for every provider."),
    )
    model_pattern = models.CharField(
        _("model pattern"),
        max_length=200,
        default=ANY,
        help_text=_(
            "An exact model name, a shell-style pattern such as gpt-4o* or claude-?-*, or * "
            "for all models of the provider. Letter case is ignored."
        ),
    )
    allow = models.BooleanField(
        _("allow"),
        default=True,
        help_text=_(
            "Ticked: the group's members may use the matching models. Unticked: they may "
            "not, even where this group's other rules allow them."
        ),
    )

    class Meta:
        verbose_name = _("model access rule")
        verbose_name_plural = _("model access rules")
        ordering = ["group__name", "provider", "model_pattern"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "provider", "model_pattern"],
                name="access_rule_unique_per_group",
                violation_error_message=_("This group already has a rule for this model pattern."),
            ),
            models.CheckConstraint(
                condition=GreaterThan(Length("provider"), 0), name="access_rule_provider_set"
            ),
            models.CheckConstraint(
                condition=GreaterThan(Length("model_pattern"), 0),
                name="access_rule_pattern_set",
            ),
        ]
        indexes = [
            models.Index(fields=["provider", "model_pattern"], name="access_rule_provider"),
        ]

    def __str__(self) -> str:
        verb = _("may use") if self.allow else _("may not use")
        return f"{self.group}: {verb} {self.provider}/{self.model_pattern}"

    def save(self, *args: object, **kwargs: object) -> None:
        """Saves the rule normalized (see ``normalize``)."""
        self.normalize()
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        """Normalizes before the constraints are validated (forms call this first)."""
        self.normalize()

    def normalize(self) -> None:
        """Provider and pattern lower-case, without surrounding spaces: matching ignores
        case, and the uniqueness constraint should too."""
        self.provider = self.provider.strip().lower()
        self.model_pattern = self.model_pattern.strip().lower()


FALLBACK_CHAIN_MAX = 3


class FallbackChain(models.Model):
    """The admin's fallback chain for one model: when ``provider``/``model`` fails before
    its first token (unavailable, rate limited past its retries, timed out), the models of
    ``fallbacks`` are tried in order. ``model`` may be ``*``: every model of the provider
    without a chain of its own. A conversation's own chain (set by its owner) replaces
    this one; ``chat.services.fallback`` applies both, and checks each model against the
    person's access rules."""

    provider = models.CharField(
        _("provider"),
        max_length=64,
        help_text=_("The provider's name (openai, anthropic, local…)."),
    )
    model = models.CharField(
        _("model"),
        max_length=200,
        default=ANY,
        help_text=_("The model's exact name, or * for every model of the provider."),
    )
    fallbacks = models.TextField(
        _("fallback models"),
        help_text=_(
            "One provider/model per line, tried in order (at most three), for example "
            "openai/gpt-4o-mini."
        ),
    )

    class Meta:
        verbose_name = _("fallback chain")
        verbose_name_plural = _("fallback chains")
        ordering = ["provider", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model"],
                name="fallback_chain_unique_model",
                violation_error_message=_("This model already has a fallback chain."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def chain(self) -> list[str]:
        """The fallback models, "provider/model" each, in order (blank lines ignored)."""
        return [line.strip() for line in self.fallbacks.splitlines() if line.strip()]
