from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Conversation, Message

USAGE_FIELDS = ("input_tokens", "output_tokens", "time_to_first_token_ms", "duration_ms")


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = (
        "created_at",
        "role",
        "content",
        "provider",
        "model",
        "status",
        "error",
        *USAGE_FIELDS,
    )
    readonly_fields = ("created_at", "provider", "model", *USAGE_FIELDS)
    ordering = ("created_at", "id")
    show_change_link = False


def _export_rows(queryset: QuerySet[Conversation]) -> list[dict[str, Any]]:
    conversations = queryset.select_related("owner").prefetch_related("messages")
    return [
        {
            "id": c.pk,
            "title": c.title,
            "owner": c.owner.get_username(),
            "provider": c.provider,
            "model": c.model,
            "system_prompt": c.system_prompt,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat(),
            "messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "provider": m.provider,
                    "model": m.model,
                    "status": m.status,
                    "error": m.error,
                    "input_tokens": m.input_tokens,
                    "output_tokens": m.output_tokens,
                    "created_at": m.created_at.isoformat(),
                }
                for m in sorted(c.messages.all(), key=lambda m: (m.created_at, m.pk))
            ],
        }
        for c in conversations
    ]


def _attachment(body: str, content_type: str, extension: str) -> HttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="conversations-{stamp}.{extension}"'
    return response


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "title_or_placeholder",
        "owner",
        "provider",
        "model",
        "message_count",
        "total_tokens",
        "updated_at",
    )
    list_filter = ("provider", "model", "owner", "created_at", "updated_at")
    search_fields = ("title", "messages__content")
    date_hierarchy = "updated_at"
    list_select_related = ("owner",)
    readonly_fields = ("created_at", "updated_at")
    raw_id_fields = ("owner",)
    inlines = [MessageInline]
    actions = ["export_json", "export_markdown"]
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _message_count=Count("messages", distinct=True),
                _total_tokens=Coalesce(Sum("messages__input_tokens"), 0)
                + Coalesce(Sum("messages__output_tokens"), 0),
            )
        )

    @admin.display(description=_("title"), ordering="title")
    def title_or_placeholder(self, obj: Conversation) -> str:
        return obj.title or "—"

    @admin.display(description=_("messages"), ordering="_message_count")
    def message_count(self, obj: Conversation) -> int:
        return obj._message_count

    @admin.display(description=_("tokens"), ordering="_total_tokens")
    def total_tokens(self, obj: Conversation) -> int:
        return obj._total_tokens

    @admin.action(description=_("Export selected conversations as JSON"))
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        body = json.dumps(_export_rows(queryset), ensure_ascii=False, indent=2)
        return _attachment(body, "application/json", "json")

    @admin.action(description=_("Export selected conversations as Markdown"))
    def export_markdown(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> HttpResponse:
        lines: list[str] = []
        for conv in _export_rows(queryset):
            lines += [f"# {conv['title'] or 'Untitled'}", ""]
            lines += [f"- Owner: {conv['owner']}", f"- Updated: {conv['updated_at']}", ""]
            if conv["system_prompt"]:
                lines += ["**System prompt:**", "", conv["system_prompt"], ""]
            for m in conv["messages"]:
                who = (
                    "User" if m["role"] == "user" else f"Assistant ({m['provider']} / {m['model']})"
                )
                status = "" if m["status"] == "complete" else f" [{m['status']}]"
                lines += [f"## {who}{status}", "", m["content"], ""]
                if m["error"]:
                    lines += [f"> Error: {m['error']}", ""]
        return _attachment("\n".join(lines), "text/markdown; charset=utf-8", "md")
