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


class DailySums(models.Model):
    """What the usage records of one local day and one group (see the subclasses) add up
    to, kept up to date as each record is written (``usage.services.usage_daily_add``, in
    the record's transaction) so that the usage pages and budgets read a few rows per day
    instead of every record.

    ``day`` is the record's calendar date in the server's ``TIME_ZONE`` (the zone the
    pages and budgets count days in; after changing it, ``manage.py usage_daily_rebuild``
    recounts the days). ``requests`` counts the records; each token sum is None while no
    record of the group reported that count (as a sum over the records would be);
    ``cost`` (US dollars) sums the records with a cost, None while none had one;
    ``unpriced`` counts the records without a cost and ``errors`` those whose reply
    failed. Records are never deleted (their admin is read-only): a record deleted by
    hand leaves its sums here until the next rebuild."""

    day = models.DateField(_("day"))
    requests = models.PositiveIntegerField(_("requests"), default=0)
    input_tokens = models.PositiveBigIntegerField(_("input tokens"), null=True, blank=True)
    output_tokens = models.PositiveBigIntegerField(_("output tokens"), null=True, blank=True)
    reasoning_tokens = models.PositiveBigIntegerField(_("reasoning tokens"), null=True, blank=True)
    cost = models.DecimalField(_("cost (USD)"), null=True, blank=True, **COST_DIGITS)
    unpriced = models.PositiveIntegerField(_("requests without a price"), default=0)
    errors = models.PositiveIntegerField(_("failed requests"), default=0)

    class Meta:
        abstract = True


class UsageDaily(DailySums):
    """One person's usage of one provider's model through one door (chat page or API)
    on one day: the person's usage page reads these (its (user, day, ...) key is its
    index). ``user`` None: records without a person (their account was deleted); there
    may then be several rows of one key, their sums to be added together."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("user"),
    )
    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model"), max_length=200)
    source = models.CharField(_("source"), max_length=8, choices=UsageRecord.Source.choices)

    class Meta:
        verbose_name = _("daily usage")
        verbose_name_plural = _("daily usage")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "day", "provider", "model", "source"], name="usage_daily_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id} {self.provider}/{self.model} ({self.source})"


class UsageDailyPerson(DailySums):
    """One person's usage on one day, all models together: the dashboard's top people
    (by ``day``) and team budgets (by person and day). ``user`` None as in
    ``UsageDaily``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("user"),
    )

    class Meta:
        verbose_name = _("daily usage by person")
        verbose_name_plural = _("daily usage by person")
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="usage_daily_person_key"),
        ]
        indexes = [models.Index(fields=["day"], name="usage_daily_person_day")]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id}"


class UsageDailyModel(DailySums):
    """One provider's model's usage on one day, everyone together: the dashboard's days,
    totals and top models (a few dozen rows a day, whatever the number of people)."""

    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model"), max_length=200)

    class Meta:
        verbose_name = _("daily usage by model")
        verbose_name_plural = _("daily usage by model")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "provider", "model"], name="usage_daily_model_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider}/{self.model}"


# Dollars: budgets up to 99,999,999.9999.
BUDGET_COST_DIGITS = {"max_digits": 12, "decimal_places": 4}

BUDGET_HELP = (
    _(
        "A budget belongs to one person or to one group. Money (US dollars) and tokens "
        "(input plus output, reasoning included) are counted over a calendar day or month "
        "in the server's time zone; the request rate is per person per minute, whatever the "
        "period."
    ),
    _(
        "A person is held to their own budgets, to every budget of each of their groups, "
        "and to the defaults for everyone (settings CHAT_BUDGET_*). A group's money and "
        "tokens are a team budget: its members' usage is counted together. A group's "
        "request rate applies to each member on their own."
    ),
    _(
        "A limit on a person's own budget replaces the default of the same kind and period "
        "(to give someone more than the default). Group budgets never replace the defaults."
    ),
    _(
        "Sending is refused, with the limit and when it resets, once what was used reaches a "
        "limit. Replies still being written count at their largest possible size, so two "
        "requests at once cannot both slip under the limit: at most one reply can take a "
        "budget over it. Replies without a known price count no money."
    ),
    _("Staff are held to budgets too, unless the setting CHAT_BUDGET_STAFF_EXEMPT is true."),
)


class Budget(models.Model):
    """A spending limit for one person (``user``) or one group (``group``): exactly one.

    - ``max_cost`` (US dollars) and ``max_tokens`` (input + output tokens; output
      includes reasoning) are counted over ``period``: the calendar day or month in the
      server's ``TIME_ZONE`` (it resets at 00:00, or 00:00 on the 1st). Usage comes from
      ``UsageRecord`` (a record with no cost counts no money) plus the replies still
      being written (``BudgetReservation``, at their largest possible size).
    - ``max_requests_per_minute``: replies a person may start in any 60 seconds (finished
      ones in the last minute plus those still being written), whatever the period.
    - At least one limit is set; each is greater than zero; at most one budget per person
      (or group) and period.

    Who is held to what: a person is held to their own budgets, to each of their groups'
    budgets and to the defaults for everyone (``CHAT_BUDGET_*`` settings). A group's money
    and token limits are a team budget, its current members' usage counted together; its
    request rate applies to each member on their own. A limit on a person's own budget
    replaces the default of the same kind and period; group budgets never replace
    defaults. Staff are held to budgets unless ``CHAT_BUDGET_STAFF_EXEMPT`` is true.
    ``usage.budgets`` applies all this (and ``BUDGET_HELP`` says it to admins)."""

    class Period(models.TextChoices):
        DAY = "day", _("day")
        MONTH = "month", _("month")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="budgets",
        verbose_name=_("person"),
    )
    group = models.ForeignKey(
        "auth.Group",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="budgets",
        verbose_name=_("group"),
        help_text=_("A team budget: the group's members' usage is counted together."),
    )
    period = models.CharField(_("period"), max_length=8, choices=Period.choices, default=Period.DAY)
    max_cost = models.DecimalField(
        _("money limit (USD)"),
        null=True,
        blank=True,
        help_text=_("US dollars per period. Empty: no money limit."),
        **BUDGET_COST_DIGITS,
    )
    max_tokens = models.PositiveBigIntegerField(
        _("token limit"),
        null=True,
        blank=True,
        help_text=_("Input plus output tokens per period. Empty: no token limit."),
    )
    max_requests_per_minute = models.PositiveIntegerField(
        _("requests per minute"),
        null=True,
        blank=True,
        help_text=_(
            "Replies one person may start in any minute (for a group: each member). "
            "Empty: no rate limit."
        ),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("budget")
        verbose_name_plural = _("budgets")
        ordering = ["group__name", "user__username", "period"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="budget_user_or_group",
                violation_error_message=_("Choose a person or a group (one of them, not both)."),
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(max_cost__isnull=False)
                    | models.Q(max_tokens__isnull=False)
                    | models.Q(max_requests_per_minute__isnull=False)
                ),
                name="budget_has_a_limit",
                violation_error_message=_(
                    "Set at least one limit: money, tokens or requests per minute."
                ),
            ),
            models.CheckConstraint(
                condition=(
                    (models.Q(max_cost__isnull=True) | models.Q(max_cost__gt=0))
                    & (models.Q(max_tokens__isnull=True) | models.Q(max_tokens__gt=0))
                    & (
                        models.Q(max_requests_per_minute__isnull=True)
                        | models.Q(max_requests_per_minute__gt=0)
                    )
                ),
                name="budget_limits_positive",
                violation_error_message=_("Limits must be greater than zero."),
            ),
            models.CheckConstraint(
                condition=models.Q(period__in=["day", "month"]), name="budget_period_valid"
            ),
            models.UniqueConstraint(
                fields=["user", "period"],
                condition=models.Q(user__isnull=False),
                name="budget_one_per_user_period",
                violation_error_message=_("This person already has a budget for this period."),
            ),
            models.UniqueConstraint(
                fields=["group", "period"],
                condition=models.Q(group__isnull=False),
                name="budget_one_per_group_period",
                violation_error_message=_("This group already has a budget for this period."),
            ),
        ]

    def __str__(self) -> str:
        who = self.group.name if self.group_id else getattr(self.user, "username", "?")
        return f"{who} ({self.get_period_display()})"


class BudgetLock(models.Model):
    """One small row per person and per group with a team budget, locked (``SELECT ...
    FOR UPDATE``) while a reply is checked against budgets and reserved, so that two
    requests of the same person or team are checked one after the other. Created when
    first needed; holds nothing else."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
    )
    group = models.OneToOneField(
        "auth.Group", on_delete=models.CASCADE, null=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="budget_lock_user_or_group",
            ),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id}" if self.user_id else f"group {self.group_id}"


class BudgetReservation(models.Model):
    """A reply being written, counted against its person's (and teams') budgets at its
    largest possible size until its usage record is written (then the row is deleted in
    the same transaction). ``estimated_tokens`` is the input estimate plus the most output
    the reply may have; ``estimated_cost`` those tokens at the model's price (0 when no
    price is known). A row whose process died is ignored after ``expires_at``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    estimated_tokens = models.PositiveBigIntegerField(default=0)
    estimated_cost = models.DecimalField(default=0, **COST_DIGITS)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="budget_reserved_user")]

    def __str__(self) -> str:
        return f"user {self.user_id}: {self.estimated_tokens} tokens, ${self.estimated_cost}"
