from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import search
from .exports import conversations_export_rows, conversations_to_markdown
from .models import Attachment, Conversation, Folder, Message
from .providers import PROVIDER_REGISTRY, get_provider
from .tree import ConversationTree

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


def _file_link(attachment: Attachment) -> str:
    """The file's name, linked to the file (the app's view lets staff fetch any file)."""
    return format_html(
        '<a href="{}" target="_blank" rel="noopener">{}</a>',
        reverse("chat:attachment", args=[attachment.pk]),
        attachment.name,
    )


def _attachment_list(attachments: list[Attachment], *, more: bool = False) -> str:
    if not attachments:
        return "—"
    items = [
        format_html(
            "<li>{} · {} · {}{}</li>",
            _file_link(a),
            a.get_kind_display(),
            filesizeformat(a.size),
            format_html(
                ' · <a href="{}">{}</a>',
                reverse("admin:chat_message_change", args=[a.message_id]),
                _("message"),
            )
            if a.message_id
            else "",
        )
        for a in attachments
    ]
    tail = format_html("<li>{}</li>", _("… and more")) if more else ""
    return format_html(
        '<ul class="attachment-list">{}{}</ul>',
        mark_safe("".join(items)),  # noqa: S308 - each item built by format_html
        tail,
    )


class AttachmentInline(admin.TabularInline):
    """A message's files, read-only, each linked to the file itself."""

    model = Attachment
    fk_name = "message"
    extra = 0
    can_delete = False
    fields = ("file_link", "kind", "content_type", "size_shown", "details", "created_at")
    readonly_fields = fields
    verbose_name = _("attached file")
    verbose_name_plural = _("attached files")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("file"))
    def file_link(self, obj: Attachment) -> str:
        return _file_link(obj)

    @admin.display(description=_("size"))
    def size_shown(self, obj: Attachment) -> str:
        return filesizeformat(obj.size)

    @admin.display(description=_("details"))
    def details(self, obj: Attachment) -> str:
        if obj.kind == Attachment.Kind.IMAGE and obj.width:
            return f"{obj.width} × {obj.height} px"
        if obj.kind == Attachment.Kind.PDF and obj.page_count is not None:
            return ngettext("%(count)d page", "%(count)d pages", obj.page_count) % {
                "count": obj.page_count
            }
        return ""


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Every attached file, read-only: who stored what and how much (the quota is per
    person), sent or still waiting in a message box."""

    list_display = ("name_link", "owner", "kind", "size_shown", "sent", "created_at")
    list_filter = ("kind", ("message", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "name_link",
        "owner",
        "message",
        "kind",
        "content_type",
        "size",
        "width",
        "height",
        "page_count",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("file"), ordering="name")
    def name_link(self, obj: Attachment) -> str:
        return _file_link(obj)

    @admin.display(description=_("size"), ordering="size")
    def size_shown(self, obj: Attachment) -> str:
        return filesizeformat(obj.size)

    @admin.display(description=_("sent"), boolean=True)
    def sent(self, obj: Attachment) -> bool:
        return obj.message_id is not None


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
        "folder",
        "pinned_at",
        "archived_at",
        "created_at",
        "updated_at",
        "transcript",
        "files",
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
        # Every branch, one after another (depth first), each version labelled.
        tree = ConversationTree.from_rows(list(obj.messages.values_list("id", "parent_id", "role")))
        order = tree.depth_first()[: TRANSCRIPT_LIMIT + 1]
        rows = obj.messages.prefetch_related("attachments").in_bulk(order[:TRANSCRIPT_LIMIT])
        messages = [rows[i] for i in order[:TRANSCRIPT_LIMIT] if i in rows]
        shown = set(tree.thread(obj.current_leaf_id))
        for m in messages:
            placed = tree.siblings(m.pk)
            m.version = placed if placed.count > 1 else None
            m.off_branch = m.pk not in shown
        more = len(order) > TRANSCRIPT_LIMIT
        html = render_to_string(
            "admin/chat/transcript.html",
            {
                "messages": messages,
                "more": more,
                "all_url": reverse("admin:chat_message_changelist")
                + f"?conversation__id__exact={obj.pk}",
            },
        )
        return mark_safe(html)  # noqa: S308 - a template: autoescaped, replies nh3-sanitized

    @admin.display(description=_("files"))
    def files(self, obj: Conversation) -> str:
        """Every file attached in this conversation (all branches), each with its
        message and a link that opens it (staff may fetch any file)."""
        rows = list(
            Attachment.objects.filter(message__conversation=obj).order_by("created_at", "id")[
                : TRANSCRIPT_LIMIT + 1
            ]
        )
        return _attachment_list(rows[:TRANSCRIPT_LIMIT], more=len(rows) > TRANSCRIPT_LIMIT)

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
    inlines = [AttachmentInline]

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


@admin.register(Folder)
class FolderAdmin(admin.ModelAdmin):
    """People's folders (projects): read-only, like their conversations; deleting one
    keeps its conversations, outside any folder."""

    list_display = ("name", "owner", "conversation_count", "provider", "model", "created_at")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    ordering = ("owner", "name_key")
    fields = ("name", "owner", "system_prompt", "provider", "model", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Folder]:
        return super().get_queryset(request).annotate(conversation_total=Count("conversations"))

    @admin.display(description=_("conversations"), ordering="conversation_total")
    def conversation_count(self, obj: Folder) -> int:
        return obj.conversation_total
