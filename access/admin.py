"""Admin for access rules: inline on each group's page, and one list of every rule.

The group page keeps everything Django's (or another app's) Group admin shows: its class
is extended with the rules inline, not replaced. Both pages explain how rules combine
(``access.models.RULES_HELP``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from .models import ANY, RULES_HELP, FallbackChain, ModelAccessRule


def provider_choices(current: str = "") -> list[tuple[str, str]]:
    """``*`` and every registered provider (label and name); ``current`` too when it is
    no longer registered, so that an old rule can still be read and changed."""
    from chat.providers import PROVIDER_REGISTRY

    choices = [(ANY, str(_("* (every provider)")))]
    for name, cls in PROVIDER_REGISTRY.items():
        label = getattr(cls, "label", "") or name
        choices.append((name.lower(), f"{label} ({name})" if label != name else name))
    if current and current not in {value for value, _label in choices}:
        choices.append((current, str(_("%(name)s (not registered)") % {"name": current})))
    return choices


class ModelAccessRuleForm(forms.ModelForm):
    """The provider is picked from the registered ones; both names are stored
    lower-case, so that the uniqueness check ignores case as matching does."""

    provider = forms.ChoiceField(
        label=_("provider"), help_text=ModelAccessRule._meta.get_field("provider").help_text
    )

    class Meta:
        model = ModelAccessRule
        fields = ("group", "provider", "model_pattern", "allow")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = provider_choices(self.instance.provider or "")

    def clean_model_pattern(self) -> str:
        return str(self.cleaned_data["model_pattern"]).strip().lower()


class ModelAccessRuleInline(admin.TabularInline):
    """The group's rules, under its name and permissions."""

    model = ModelAccessRule
    form = ModelAccessRuleForm
    fields = ("provider", "model_pattern", "allow")
    extra = 0
    template = "access/admin/rules_inline.html"
    rules_help = RULES_HELP


@admin.register(ModelAccessRule)
class ModelAccessRuleAdmin(admin.ModelAdmin):
    """Every rule of every group, filtered by group, provider and allow/refuse."""

    form = ModelAccessRuleForm
    list_display = ("group", "provider", "model_pattern", "allow")
    list_display_links = ("group", "provider", "model_pattern")
    list_filter = ("group", "provider", "allow")
    list_select_related = ("group",)
    search_fields = ("group__name", "provider", "model_pattern")
    autocomplete_fields = ("group",)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, {"rules_help": RULES_HELP, **(extra_context or {})})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {"rules_help": RULES_HELP, **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)


def _group_admin_class() -> type[admin.ModelAdmin]:
    """The Group admin registered now (Django's, or another app's) with the rules
    inline added."""
    registered = admin.site._registry.get(Group)
    base = type(registered) if registered is not None else DjangoGroupAdmin
    inlines = tuple(getattr(base, "inlines", ()))
    if ModelAccessRuleInline in inlines:
        return base
    return type(
        "GroupAdmin",
        (base,),
        {"__module__": __name__, "inlines": (*inlines, ModelAccessRuleInline)},
    )


_GroupAdmin = _group_admin_class()
if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, _GroupAdmin)


class FallbackChainForm(forms.ModelForm):
    """The provider is picked from the registered ones; each fallback line must be a
    registered provider's "provider/model" (at most three, repeats dropped)."""

    provider = forms.ChoiceField(
        label=_("provider"), help_text=FallbackChain._meta.get_field("provider").help_text
    )

    class Meta:
        model = FallbackChain
        fields = ("provider", "model", "fallbacks")
        widgets = {"fallbacks": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = provider_choices(self.instance.provider or "")[1:]
        self.fields["model"].required = False  # empty: * (every model of the provider)

    def clean_model(self) -> str:
        return str(self.cleaned_data["model"]).strip() or ANY

    def clean_fallbacks(self) -> str:
        from chat.services.fallback import fallback_chain_parse

        chain = fallback_chain_parse(str(self.cleaned_data["fallbacks"]).splitlines())
        if not chain:
            raise forms.ValidationError(_("Name at least one fallback model."))
        return "\n".join(f"{provider}/{model}" for provider, model in chain)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        own = f"{data.get('provider', '')}/{data.get('model', '')}"
        if own in str(data.get("fallbacks") or "").splitlines():
            self.add_error(
                "fallbacks",
                _("%(model)s cannot be its own fallback: name other models.") % {"model": own},
            )
        return data


@admin.register(FallbackChain)
class FallbackChainAdmin(admin.ModelAdmin):
    """Which models answer instead when a model fails before its first token."""

    form = FallbackChainForm
    list_display = ("provider", "model", "fallback_list")
    list_filter = ("provider",)
    search_fields = ("provider", "model", "fallbacks")

    @admin.display(description=_("fallback models"))
    def fallback_list(self, chain: FallbackChain) -> str:
        return " → ".join(chain.chain)
