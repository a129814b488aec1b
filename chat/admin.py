from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _

from . import search
from .exports import conversations_export_rows, conversations_to_markdown
from .models import Conversation, Message
from .providers import PROVIDER_REGISTRY, get_provider

TRANSCRIPT_LIMIT = 200  # messages shown on a conversation's page; the rest via Messages


def _provider_lookups() -> list[tuple[str, str]]:
    return [(name, get_provider(name).label) for name in PROVIDER_REGISTRY]


class AnsweredByProviderFilter(admin.SimpleListFilter):
    """Conversations any of whose replies came from this provider (not only the last)."""

    title = _("provider (any reply)")
    parameter_name = "answered_by"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _provider_lookups()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        answered = Message.objects.filter(
            conversation_id=OuterRef("pk"), role=Message.Role.ASSISTANT, provider=self.value()
        )
        return queryset.filter(Exists(answered))


class AnsweredByModelFilter(admin.SimpleListFilter):
    """Conversations any of whose replies came from this model."""

    title = _("model (any reply)")
    parameter_name = "answered_model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Distinct (provider, model) pairs straight from the msg_provider_model index.
        pairs = (
            Message.objects.exclude(model="")
            .order_by("provider", "model")
            .values_list("provider", "model")
            .distinct()[:300]
        )
        labels = dict(_provider_lookups())
        return [
            (f"{provider}/{model}", f"{labels.get(provider, provider)} · {model}")
            for provider, model in pairs
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value() or "/" not in self.value():
            return queryset
        provider, model = self.value().split("/", 1)
        answered = Message.objects.filter(
            conversation_id=OuterRef("pk"),
            role=Message.Role.ASSISTANT,
            provider=provider,
            model=model,
        )
        return queryset.filter(Exists(answered))


class FinishReasonFilter(admin.SimpleListFilter):
    """Finish reasons by their names for people ("token limit reached", not "length")."""

    title = _("finish reason")
    parameter_name = "finish_reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Message.FinishReason.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(finish_reason=self.value()) if self.value() else queryset


class MessageProviderFilter(admin.SimpleListFilter):
    title = _("provider")
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _provider_lookups()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(provider=self.value()) if self.value() else queryset


class MessageModelFilter(AnsweredByModelFilter):
    title = _("model")
    parameter_name = "model_id"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value() or "/" not in self.value():
            return queryset
        provider, model = self.value().split("/", 1)
        return queryset.filter(provider=provider, model=model)


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
    list_filter = (AnsweredByProviderFilter, AnsweredByModelFilter, "created_at", "updated_at")
    # Shows the search box; get_search_results does the matching (see chat/search.py).
    search_fields = ("title", "messages__content")
    date_hierarchy = "updated_at"
    list_select_related = ("owner",)
    # A conversation's page is a read-only, rendered transcript: an admin who only reads
    # cannot change anything by accident. Deleting stays possible (with Django's
    # confirmation page); a message is changed, deliberately, nowhere.
    fields = (
        "title",
        "owner",
        "provider",
        "model",
        "system_prompt",
        "temperature",
        "max_tokens",
        "created_at",
        "updated_at",
        "transcript",
    )
    readonly_fields = fields
    actions = ["export_json", "export_markdown", "delete_selected"]
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("transcript"))
    def transcript(self, obj: Conversation) -> str:
        messages = list(obj.messages.order_by("created_at", "id")[: TRANSCRIPT_LIMIT + 1])
        more = len(messages) > TRANSCRIPT_LIMIT
        html = render_to_string(
            "admin/chat/transcript.html",
            {
                "messages": messages[:TRANSCRIPT_LIMIT],
                "more": more,
                "all_url": reverse("admin:chat_message_changelist")
                + f"?conversation__id__exact={obj.pk}",
            },
        )
        return mark_safe(html)  # noqa: S308 - a template: autoescaped, replies nh3-sanitized

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        # Correlated subqueries, not a GROUP BY join: the database computes them for the
        # 50 rows of a page only (the join aggregated all 200,000 messages: 1.9 s).
        messages = Message.objects.filter(conversation_id=OuterRef("pk")).order_by()
        return (
            super()
            .get_queryset(request)
            .annotate(
                _message_count=Subquery(
                    messages.values("conversation_id").annotate(n=Count("id")).values("n")[:1]
                ),
                _total_tokens=Subquery(
                    messages.values("conversation_id")
                    .annotate(
                        n=Coalesce(Sum("input_tokens"), 0) + Coalesce(Sum("output_tokens"), 0)
                    )
                    .values("n")[:1]
                ),
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        """Conversations whose title or message text contains every word (or "quoted
        phrase") of ``search_term``, compared through ``chat.search.fold``: case folded in
        every script, ё as е, the same on SQLite and PostgreSQL. Returns the queryset and
        False: a conversation is listed once however many of its messages match."""
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            if not bit.strip():
                continue
            queryset = queryset.filter(
                search.title_match(bit) | search.conversation_message_match(bit)
            )
        return queryset, False

    @admin.display(description=_("title"), ordering="title")
    def title_or_placeholder(self, obj: Conversation) -> str:
        return obj.title or "—"

    @admin.display(description=_("messages"), ordering="_message_count")
    def message_count(self, obj: Conversation) -> int:
        return obj._message_count or 0

    @admin.display(description=_("tokens"), ordering="_total_tokens")
    def total_tokens(self, obj: Conversation) -> int:
        return obj._total_tokens or 0

    @admin.action(description=_("Export selected conversations as JSON"))
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        body = json.dumps(conversations_export_rows(queryset), ensure_ascii=False, indent=2)
        return _attachment(body, "application/json", "json")

    @admin.action(description=_("Export selected conversations as Markdown"))
    def export_markdown(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> HttpResponse:
        body = conversations_to_markdown(conversations_export_rows(queryset))
        return _attachment(body, "text/markdown; charset=utf-8", "md")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Every message of every person, read-only: for example all failed replies today
    (status: error, date: today). Fast at 200,000 messages: filters and ordering use
    indexes, and the changelist skips the full count."""

    list_display = (
        "created_at",
        "short_content",
        "role",
        "status",
        "finish",
        "provider",
        "model",
        "conversation_link",
        "owner",
        "output_tokens",
    )
    list_filter = (
        "status",
        MessageProviderFilter,
        MessageModelFilter,
        "role",
        FinishReasonFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("content",)  # shows the box; get_search_results does the matching
    list_select_related = ("conversation__owner",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    list_per_page = 100
    fields = (
        "conversation",
        "role",
        "status",
        "finish_reason",
        "provider",
        "model",
        "content",
        "reasoning",
        "error",
        "error_kind",
        "error_detail",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "time_to_first_token_ms",
        "duration_ms",
        "context_trimmed",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting one message would leave a conversation with two replies in a row:
        # conversations are deleted whole, from their own admin.
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        """Messages containing every word (or "quoted phrase") of ``search_term``,
        compared through ``chat.search.fold`` like the chat's own search."""
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            if bit.strip():
                queryset = queryset.filter(search.message_match(bit))
        return queryset, False

    @admin.display(description=_("finish reason"), ordering="finish_reason")
    def finish(self, obj: Message) -> str:
        return obj.finish_reason_label

    @admin.display(description=_("content"))
    def short_content(self, obj: Message) -> str:
        text = " ".join((obj.content or obj.error).split())
        return text[:80] + ("…" if len(text) > 80 else "")

    @admin.display(description=_("conversation"), ordering="conversation")
    def conversation_link(self, obj: Message) -> str:
        url = reverse("admin:chat_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, obj.conversation.title or "—")

    @admin.display(description=_("owner"))
    def owner(self, obj: Message) -> str:
        return obj.conversation.owner.get_username()
