"""Reads. Every function is scoped to the owner: another user's rows are never returned."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import Http404

from .models import Conversation, Message


def conversation_list_for_user(
    *, user: AbstractBaseUser, query: str = ""
) -> QuerySet[Conversation]:
    """The user's conversations, newest first; ``query`` matches titles and message text."""
    conversations = Conversation.objects.filter(owner=user).only(
        "id", "title", "provider", "model", "updated_at"
    )
    query = query.strip()
    if query:
        matching_messages = message_search_for_user(user=user, query=query).values(
            "conversation_id"
        )
        conversations = conversations.filter(
            Q(title__icontains=query) | Q(id__in=matching_messages)
        )
    return conversations.order_by("-updated_at", "-id")


def message_search_for_user(*, user: AbstractBaseUser, query: str) -> QuerySet[Message]:
    """The user's messages whose text contains ``query`` (case-insensitive substring).

    On SQLite a query of 3+ characters goes through the FTS5 trigram index (migration
    0002); on PostgreSQL icontains uses the pg_trgm index on UPPER(content). Shorter
    queries scan the user's messages."""
    messages = Message.objects.filter(conversation__owner=user)
    if connection.vendor == "sqlite" and len(query) >= 3:
        phrase = '"' + query.replace('"', '""') + '"'
        return messages.filter(
            id__in=RawSQL(
                "SELECT rowid FROM chat_message_fts WHERE chat_message_fts MATCH %s", [phrase]
            )
        )
    return messages.filter(content__icontains=query)


def conversation_get_for_user(*, user: AbstractBaseUser, pk: int) -> Conversation:
    """The conversation if ``user`` owns it; Http404 otherwise (also for other users' ids)."""
    try:
        return Conversation.objects.get(pk=pk, owner=user)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation") from None


def message_get_for_user(*, user: AbstractBaseUser, pk: int) -> Message:
    try:
        return Message.objects.select_related("conversation").get(pk=pk, conversation__owner=user)
    except Message.DoesNotExist:
        raise Http404("No such message") from None


def message_list_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("created_at", "id")
