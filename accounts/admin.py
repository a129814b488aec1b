"""Admin for API keys: every person's keys, searchable, revocable; never their hash, and
no "add" (each person creates their own keys, and sees the key once)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .models import ApiKey


class StateFilter(admin.SimpleListFilter):
    """Active, expired or revoked keys."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(ApiKey.State.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        value = self.value()
        if value == ApiKey.State.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        if value == ApiKey.State.EXPIRED:
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if value == ApiKey.State.ACTIVE:
            return queryset.filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True
            )
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Every field read-only; ``secret_hash`` is not among them."""

    list_display = (
        "user",
        "name",
        "shown_prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "state_label",
    )
    list_select_related = ("user",)
    list_filter = (StateFilter,)
    search_fields = ("user__username", "user__email", "name", "prefix")
    date_hierarchy = "created_at"
    fields = (
        "user",
        "name",
        "shown_prefix",
        "state_label",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]

    @admin.display(description=_("key"), ordering="prefix")
    def shown_prefix(self, key: ApiKey) -> str:
        return f"{key.prefix}…"

    @admin.display(description=_("state"))
    def state_label(self, key: ApiKey) -> str:
        return str(key.state.label)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Revoke selected keys"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = services.api_keys_revoke(
            key_ids=queryset.values_list("pk", flat=True), by=request.user
        )
        self.message_user(
            request,
            ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count) % {"count": count},
            messages.SUCCESS,
        )
