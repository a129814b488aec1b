"""Usage records (one per reply, from the chat page or the API) and model prices.

Money is in US dollars, as ``Decimal``; prices are per million tokens. A record copies
the price it was costed with, so changing a price later never changes what was spent.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Dollars per million tokens: up to 999,999.999999 (six places: $0.000001 per million).
PRICE_DIGITS = {"max_digits": 12, "decimal_places": 6}
# Dollars: up to 9,999,999,999.9999999999 (ten places: one token at $0.0001 per million).
COST_DIGITS = {"max_digits": 20, "decimal_places": 10}


class ModelPrice(models.Model):
    """The price of one provider's model, in US dollars per million tokens.

    Rows come from the genai-prices package (the admin's "refresh" action, or an admin
    adding a model without typing its price) or from an admin typing a price, which
    then wins over the package (see ``usage.prices.price_for``)."""

    class Source(models.TextChoices):
        GENAI_PRICES = "genai-prices", _("genai-prices package")
        ADMIN = "admin", _("set by an administrator")

    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model"), max_length=200)
    input_per_mtok = models.DecimalField(_("input price (USD per million tokens)"), **PRICE_DIGITS)
    output_per_mtok = models.DecimalField(
        _("output price (USD per million tokens)"),
        help_text=_("Reasoning tokens are output tokens and pay this price."),
        **PRICE_DIGITS,
    )
    source = models.CharField(
        _("source"), max_length=16, choices=Source.choices, default=Source.ADMIN
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("model price")
        verbose_name_plural = _("model prices")
        ordering = ["provider", "model"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="price_provider_model"),
            models.CheckConstraint(
                condition=models.Q(input_per_mtok__gte=0, output_per_mtok__gte=0),
                name="price_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(source__in=["genai-prices", "admin"]),
                name="price_source_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


class UsageRecord(models.Model):
    """One reply's usage: who asked, through which door, which model, the tokens, the
    cost and the price it was computed with, the timing and how the reply ended.

    ``output_tokens`` includes ``reasoning_tokens`` (as providers report them and as
    ``chat.providers.Usage`` says); ``reasoning_tokens`` is the part of it the model spent
    thinking, None when the provider does not say. ``cost`` is None when no price is
    known for the model or the provider reported no token counts."""

    class Source(models.TextChoices):
        CHAT = "chat", _("chat page")
        API = "api", _("API")

    class Outcome(models.TextChoices):
        COMPLETE = "complete", _("complete")
        # Cut by the token limit, filtered, refused, the stream ended without a finish
        # reason, or the server's time limit.
        INCOMPLETE = "incomplete", _("incomplete")
        STOPPED = "stopped", _("stopped")
        ERROR = "error", _("error")
        # The server shut down mid-reply.
        INTERRUPTED = "interrupted", _("interrupted")

    # SET_NULL: deleting a person keeps what was spent in the totals.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="usage_records",
        verbose_name=_("user"),
    )
    # The API key the request came with (None: the chat page). A plain id for now: the
    # API-key model is being written in its own app; this becomes a ForeignKey to it
    # (SET_NULL) when it lands.
    api_key_id = models.BigIntegerField(_("API key"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model"), max_length=200)
    # The reply this record is for (chat page); None for API calls not kept as
    # conversations, and once the reply is deleted (the record stays: it was spent).
    reply = models.ForeignKey(
        "chat.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reply"),
    )
    input_tokens = models.PositiveIntegerField(_("input tokens"), null=True, blank=True)
    output_tokens = models.PositiveIntegerField(_("output tokens"), null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(_("reasoning tokens"), null=True, blank=True)
    cost = models.DecimalField(_("cost (USD)"), null=True, blank=True, **COST_DIGITS)
    # The price the cost was computed with, fixed when the record was written (None: no
    # price was known).
    input_per_mtok = models.DecimalField(
        _("input price (USD per million tokens)"), null=True, blank=True, **PRICE_DIGITS
    )
    output_per_mtok = models.DecimalField(
        _("output price (USD per million tokens)"), null=True, blank=True, **PRICE_DIGITS
    )
    time_to_first_token_ms = models.PositiveIntegerField(
        _("time to first token (ms)"), null=True, blank=True
    )
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        ordering = ["-created_at", "-id"]
        indexes = [
            # Totals over a period, the admin's newest-first list and date hierarchy.
            models.Index(fields=["created_at"], name="usage_created"),
            # Per person by day: the person's usage page, budgets ("spent since ...").
            models.Index(fields=["user", "created_at"], name="usage_user_created"),
            # Per model by day, and the admin's provider/model filters.
            models.Index(fields=["provider", "model", "created_at"], name="usage_model_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(source__in=["chat", "api"]), name="usage_source_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    outcome__in=["complete", "incomplete", "stopped", "error", "interrupted"]
                ),
                name="usage_outcome_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} @ {self.created_at:%Y-%m-%d %H:%M}"
