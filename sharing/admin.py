"""Admin for share links: everyone's links, searchable, revocable (one by one or many at
once). Read-only: a link is made by its owner from the chat page; its token is shown as
its first characters only, and the snapshot as its size."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .models import SharedLink


class StateFilter(admin.SimpleListFilter):
    """Working or revoked links."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", _("working")), ("revoked", _("revoked"))]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[SharedLink]
    ) -> QuerySet[SharedLink]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(SharedLink)
class SharedLinkAdmin(admin.ModelAdmin):
    list_display = (
        "title_shown",
        "owner",
        "audience",
        "created_at",
        "view_count",
        "last_viewed_at",
        "state_label",
    )
    list_select_related = ("owner",)
    list_filter = (StateFilter, "audience")
    search_fields = ("owner__username", "owner__email", "title")
    date_hierarchy = "created_at"
    fields = (
        "title_shown",
        "owner",
        "conversation",
        "audience",
        "shown_token",
        "message_count",
        "created_at",
        "revoked_at",
        "view_count",
        "last_viewed_at",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]

    @admin.display(description=_("title"), ordering="title")
    def title_shown(self, link: SharedLink) -> str:
        return str(link)

    @admin.display(description=_("token"))
    def shown_token(self, link: SharedLink) -> str:
        return f"{link.token[:6]}…"

    @admin.display(description=_("messages"))
    def message_count(self, link: SharedLink) -> int:
        return len(link.messages)

    @admin.display(description=_("state"))
    def state_label(self, link: SharedLink) -> str:
        return str(_("working") if link.is_active else _("revoked"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Revoke the selected links"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[SharedLink]) -> None:
        count = services.shared_links_revoke(link_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            ngettext("%(count)d link revoked.", "%(count)d links revoked.", count)
            % {"count": count},
            messages.SUCCESS,
        )
