"""Admin: usage records (read only, with totals of the filtered set), model prices
(editable; a typed price wins over the genai-prices package) and budgets (per person or
group; how they combine is said on the form, from ``usage.models.BUDGET_HELP``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import BUDGET_HELP, Budget, ModelPrice, UsageRecord
from .prices import package_price
from .services import model_prices_refresh

MAX_FILTER_CHOICES = 300


def distinct_values(records: QuerySet[UsageRecord], field: str) -> list[str]:
    """The distinct values of ``field`` in ``records``, in order, at most
    ``MAX_FILTER_CHOICES``: one index seek per value (a "loose index scan") rather
    than a DISTINCT over every row. ``field`` must lead an index for the rows in
    ``records`` (provider, or model within one provider: usage_model_created)."""
    values: list[str] = []
    ordered = records.order_by(field).values_list(field, flat=True)
    value = ordered.first()
    while value is not None and len(values) < MAX_FILTER_CHOICES:
        values.append(value)
        value = ordered.filter(**{f"{field}__gt": value}).first()
    return values


class ProviderFilter(admin.SimpleListFilter):
    title = _("provider")
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in distinct_values(UsageRecord.objects.all(), "provider")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[UsageRecord]
    ) -> QuerySet[UsageRecord]:
        return queryset.filter(provider=self.value()) if self.value() else queryset


class ModelFilter(admin.SimpleListFilter):
    """Models as provider/model (of the chosen provider only, when one is chosen)."""

    title = _("model")
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        chosen = request.GET.get(ProviderFilter.parameter_name)
        providers = [chosen] if chosen else distinct_values(UsageRecord.objects.all(), "provider")
        pairs = []
        for provider in providers:
            models = distinct_values(UsageRecord.objects.filter(provider=provider), "model")
            pairs.extend((f"{provider}/{model}", f"{provider}/{model}") for model in models)
        return pairs[:MAX_FILTER_CHOICES]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[UsageRecord]
    ) -> QuerySet[UsageRecord]:
        if not self.value() or "/" not in self.value():
            return queryset
        provider, model = self.value().split("/", 1)
        return queryset.filter(provider=provider, model=model)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Read only: records are what was spent. The list's header shows the filtered
    set's totals (one aggregate query over the same filters). Filters and the date
    hierarchy (templatetags/usage_admin.py) seek the indexes instead of scanning."""

    list_display = (
        "created_at",
        "user",
        "source",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost",
        "time_to_first_token_ms",
        "duration_ms",
        "outcome",
    )
    list_filter = (ProviderFilter, ModelFilter, "source", "outcome")
    date_hierarchy = "created_at"
    search_fields = ("user__username", "model")
    list_select_related = ("user",)
    # A million rows: no second COUNT(*) of the whole table; the totals say how many.
    show_full_result_count = False
    raw_id_fields = ("user", "reply")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        changelist = context.get("cl") if context else None
        if changelist is not None:
            context["usage_totals"] = usage_totals(changelist.queryset)
        return response


def usage_totals(records: QuerySet[UsageRecord]) -> dict[str, Any]:
    """Totals of ``records``: ``records`` (count), ``input``, ``output`` and
    ``reasoning`` (token sums), ``cost_usd`` (US dollars) and ``unpriced`` (records
    without a known cost). Sums are None over an empty set. One query."""
    return records.order_by().aggregate(
        records=Count("id"),
        input=Sum("input_tokens"),
        output=Sum("output_tokens"),
        reasoning=Sum("reasoning_tokens"),
        cost_usd=Sum("cost"),
        unpriced=Count("id", filter=Q(cost__isnull=True)),
    )


class ModelPriceForm(forms.ModelForm):
    """Both prices left empty: the genai-prices package's price is filled in."""

    class Meta:
        model = ModelPrice
        fields = ("provider", "model", "input_per_mtok", "output_per_mtok")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("input_per_mtok", "output_per_mtok"):
            self.fields[name].required = False
        self.fields["input_per_mtok"].help_text = _(
            "Leave both prices empty to use the genai-prices package's price. "
            "A price typed here wins over the package."
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        input_price, output_price = data.get("input_per_mtok"), data.get("output_per_mtok")
        if input_price is None and output_price is None:
            price = package_price(data.get("provider", ""), data.get("model", ""))
            if price is None:
                raise forms.ValidationError(
                    _("The genai-prices package has no price for this model: enter one.")
                )
            data["input_per_mtok"] = price.input_per_mtok
            data["output_per_mtok"] = price.output_per_mtok
            self.instance.source = ModelPrice.Source.GENAI_PRICES
        elif input_price is None or output_price is None:
            raise forms.ValidationError(_("Enter both prices, or leave both empty."))
        else:
            self.instance.source = ModelPrice.Source.ADMIN
        return data


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices per model. Saving a typed price makes it the administrator's (it then wins
    over the package); the "refresh" action sets rows back to the package's price."""

    form = ModelPriceForm
    list_display = (
        "provider",
        "model",
        "input_per_mtok",
        "output_per_mtok",
        "source",
        "updated_at",
    )
    list_filter = ("provider", "source")
    search_fields = ("provider", "model")
    readonly_fields = ("source", "updated_at")
    actions = ("refresh_from_package",)

    @admin.action(description=_("Refresh the selected prices from genai-prices"))
    def refresh_from_package(self, request: HttpRequest, queryset: QuerySet[ModelPrice]) -> None:
        result = model_prices_refresh(prices=queryset)
        if result.updated:
            count = len(result.updated)
            self.message_user(
                request,
                ngettext(
                    "%(count)d price set from genai-prices.",
                    "%(count)d prices set from genai-prices.",
                    count,
                )
                % {"count": count},
                messages.SUCCESS,
            )
        if result.unknown:
            self.message_user(
                request,
                _("genai-prices has no price for %(models)s: left as they were.")
                % {"models": ", ".join(str(row) for row in result.unknown)},
                messages.WARNING,
            )


class BudgetOwnerFilter(admin.SimpleListFilter):
    title = _("applies to")
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("user", _("a person")), ("group", _("a group (team)"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Budget]) -> QuerySet[Budget]:
        if self.value() == "user":
            return queryset.filter(user__isnull=False)
        if self.value() == "group":
            return queryset.filter(group__isnull=False)
        return queryset


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """Budgets of people and groups: money, tokens per day or month, and a request rate.
    The form says how budgets combine (``BUDGET_HELP``); the model's constraints give
    the errors (a person or a group, at least one limit, one budget per period)."""

    list_display = (
        "owner",
        "period",
        "max_cost",
        "max_tokens",
        "max_requests_per_minute",
        "updated_at",
    )
    list_display_links = ("owner",)
    list_filter = (BudgetOwnerFilter, "period")
    list_select_related = ("user", "group")
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
    readonly_fields = ("updated_at",)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[Any, Any]]:
        semantics = format_html_join("", "<p>{}</p>", ((str(text),) for text in BUDGET_HELP))
        return [
            (
                None,
                {
                    "fields": ("user", "group"),
                    "description": _("Choose a person or a group (one of them, not both)."),
                },
            ),
            (
                _("Limits"),
                {
                    "fields": (
                        "period",
                        "max_cost",
                        "max_tokens",
                        "max_requests_per_minute",
                        "updated_at",
                    ),
                    "description": semantics,
                },
            ),
        ]

    @admin.display(description=_("person or group"), ordering="group__name")
    def owner(self, budget: Budget) -> str:
        if budget.group_id:
            return _("group %(name)s") % {"name": budget.group.name}
        return budget.user.get_username()
