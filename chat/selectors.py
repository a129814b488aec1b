"""Reads. Every function is scoped to the owner: another user's rows are never returned."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Exists, Min, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from . import search
from .models import Conversation, Message
from .snippets import Snippet, snippet
from .tree import ConversationTree

# Shortest query that also searches message text (trigram indexes need three).
MESSAGE_SEARCH_MIN_CHARS = 3


def conversation_list_for_user(
    *, user: AbstractBaseUser, query: str = "", older_than: int | None = None
) -> QuerySet[Conversation]:
    """The user's conversations, newest first; ``query`` matches titles and message text
    (through ``chat.search.fold``: case folded in every script, ё as е; titles only below
    ``MESSAGE_SEARCH_MIN_CHARS`` characters); ``older_than`` (a conversation id) continues
    the list after that conversation (keyset pagination on the (owner, updated_at) index)."""
    conversations = (
        Conversation.objects.filter(owner=user)
        .only("id", "title", "provider", "model", "updated_at", "reply_unseen_at")
        .annotate(reply_running=_reply_running())
    )
    if older_than is not None:
        anchor = (
            Conversation.objects.filter(owner=user, pk=older_than)
            .values_list("updated_at", flat=True)
            .first()
        )
        if anchor is None:
            raise Http404("No such conversation")
        conversations = conversations.filter(
            Q(updated_at__lt=anchor) | Q(updated_at=anchor, id__lt=older_than)
        )
    query = query.strip()
    if not query:
        return conversations.order_by("-updated_at", "-id")
    titles = search.title_match(query, owner_id=user.pk)
    if len(query) < MESSAGE_SEARCH_MIN_CHARS:
        # One or two characters cannot use a trigram index and would scan every message
        # (135 to 370 ms over 200,000): such a query matches titles only.
        conversations = conversations.filter(titles)
    else:
        # The message subquery does not check the owner: the outer query keeps only the
        # user's conversations, and joining the owner inside made SQLite probe every FTS
        # match per conversation (28 s for a common word over 200,000 messages).
        conversations = conversations.filter(titles | search.conversation_message_match(query))
    return conversations.order_by("-updated_at", "-id")


def _reply_running() -> Exists:
    # Uses the partial index of streaming replies (msg_streaming): one probe a row.
    return Exists(
        Message.objects.filter(conversation=OuterRef("pk"), status=Message.Status.STREAMING)
    )


def conversation_statuses_for_user(
    *, user: AbstractBaseUser, ids: list[int]
) -> dict[int, dict[str, object]]:
    """For the sidebar: ``{id: {"running": bool, "unseen": bool, "title": str}}`` for
    those of ``ids`` that ``user`` owns (others are left out). One query."""
    rows = (
        Conversation.objects.filter(owner=user, pk__in=ids[:200])
        .annotate(reply_running=_reply_running())
        .values_list("pk", "title", "reply_unseen_at", "reply_running")
    )
    return {
        pk: {"running": running, "unseen": unseen is not None, "title": title}
        for pk, title, unseen, running in rows
    }


def message_search_for_user(*, user: AbstractBaseUser, query: str) -> QuerySet[Message]:
    """The user's messages whose text contains ``query``, compared through
    ``chat.search.fold`` (case folded in every script, ё as е).

    A folded query of 3+ characters uses the trigram index (FTS5 on SQLite, pg_trgm on
    PostgreSQL); a shorter one reads the folded text of every message."""
    return Message.objects.filter(search.message_match(query), conversation__owner=user)


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


def conversation_tree(*, conversation_id: int) -> ConversationTree:
    """The shape of one conversation (ids, parents, roles of all its messages), read in
    one light query. The caller has checked the owner."""
    rows = Message.objects.filter(conversation_id=conversation_id).values_list(
        "id", "parent_id", "role"
    )
    return ConversationTree.from_rows(list(rows))


@dataclass
class ThreadPage:
    """One page of the thread shown: ``messages`` oldest first (each with ``siblings``,
    a ``tree.Siblings`` when it has any, else None), ``earlier_id`` to pass as ``before``
    for the page above (None at the top), ``leaf_id`` the last message of the branch
    (what a new message follows; None for an empty conversation), and ``compare`` the
    replies shown side by side when the branch ends with a question several models
    answered (empty otherwise)."""

    messages: list[Message]
    earlier_id: int | None
    leaf_id: int | None
    compare: list[Message]


def thread_page(
    *,
    conversation: Conversation,
    leaf: int | None = None,
    before: int | None = None,
    limit: int = 50,
    tree: ConversationTree | None = None,
) -> ThreadPage:
    """The newest ``limit`` messages of the branch ending at ``leaf`` (default: the
    branch the person last looked at, ``conversation.current_leaf``), older than message
    ``before`` when given. Http404 when ``before`` or ``leaf`` is not in this conversation's
    branch. Three queries whatever the size of the conversation: its shape, the page's
    rows, their attachments."""
    if tree is None:
        tree = conversation_tree(conversation_id=conversation.pk)
    if leaf is not None and leaf not in tree:
        raise Http404("No such message")
    ids = tree.thread(leaf if leaf is not None else conversation.current_leaf_id)
    if before is not None:
        try:
            ids_above = ids[: ids.index(before)]
        except ValueError:
            raise Http404("No such message") from None
    else:
        ids_above = ids
    page_ids = ids_above[-limit:] if limit else ids_above
    has_more = len(ids_above) > len(page_ids)
    compare_ids = (
        tree.children[ids[-1]] if ids and before is None and tree.is_compare(ids[-1]) else []
    )
    rows = {
        m.pk: m
        for m in Message.objects.filter(pk__in=[*page_ids, *compare_ids]).prefetch_related(
            "attachments"
        )
    }
    for message in rows.values():
        placed = tree.siblings(message.pk)
        message.siblings = placed if placed.count > 1 else None
    page = [rows[i] for i in page_ids if i in rows]
    return ThreadPage(
        messages=page,
        earlier_id=page[0].pk if has_more and page else None,
        leaf_id=ids[-1] if ids else None,
        compare=[rows[i] for i in compare_ids if i in rows],
    )


def message_page_for_conversation(
    *, conversation: Conversation, before: int | None = None, limit: int = 50
) -> tuple[list[Message], int | None]:
    """The newest ``limit`` messages of the branch shown (see ``thread_page``), oldest
    first, and the id to pass as ``before`` for the page above (None at the top)."""
    page = thread_page(conversation=conversation, before=before, limit=limit)
    return page.messages, page.earlier_id


def message_page_through(
    *, conversation: Conversation, message_id: int, limit: int = 50
) -> tuple[ThreadPage, bool] | None:
    """The page of a branch through message ``message_id`` (a search hit, on any branch):
    the branch's newest page when the message is in it, else the ``limit`` messages
    ending with it. Returns (the page, whether it is an earlier page), or None when the
    message is not in the conversation."""
    tree = conversation_tree(conversation_id=conversation.pk)
    if message_id not in tree:
        return None
    leaf = tree.leaf_of(message_id)
    ids = tree.thread(leaf)
    if message_id not in ids:  # a reply of a compare: the branch ends at its question
        leaf = message_id
        ids = tree.thread(leaf)
    position = ids.index(message_id)
    if len(ids) - position <= limit:
        return thread_page(conversation=conversation, leaf=leaf, limit=limit, tree=tree), False
    following = ids[position + 1]
    page = thread_page(
        conversation=conversation, leaf=leaf, before=following, limit=limit, tree=tree
    )
    return page, True


def search_hits_for_conversations(
    *, user: AbstractBaseUser, conversation_ids: list[int], query: str
) -> dict[int, tuple[int, Snippet]]:
    """For each listed conversation of ``user``, its first message containing ``query``
    (as the sidebar search matches it) and the passage around the match:
    ``{conversation_id: (message_id, Snippet)}``. Conversations found by their title
    only are absent. Two queries whatever the number of conversations; none for a query
    shorter than ``MESSAGE_SEARCH_MIN_CHARS``."""
    query = query.strip()
    if len(query) < MESSAGE_SEARCH_MIN_CHARS or not conversation_ids:
        return {}
    if connection.vendor == "sqlite":
        # SQLite materialises the FTS match once and probes each listed conversation's
        # messages on the (conversation, created_at) index: 100 small scans. Grouping
        # the whole match instead took 770 ms for a word in 1 message in 10.
        first_hit = (
            Message.objects.filter(conversation_id=OuterRef("pk"))
            .filter(search.message_match(query))
            .order_by("created_at", "id")
            .values("id")[:1]
        )
        hits = dict(
            Conversation.objects.filter(owner=user, pk__in=conversation_ids)
            .annotate(hit=Subquery(first_hit))
            .exclude(hit=None)
            .values_list("pk", "hit")
        )
    else:
        # PostgreSQL: one grouped query over the trigram match (a correlated subquery per
        # conversation cost 40 ms more); ids grow with time, so the smallest is the first.
        hits = dict(
            Message.objects.filter(
                # The user's own among the listed ids; a subquery, not a join on the
                # owner (see conversation_list_for_user).
                conversation_id__in=Conversation.objects.filter(
                    owner=user, pk__in=conversation_ids
                ).values("pk")
            )
            .filter(search.message_match(query))
            .values("conversation_id")
            .annotate(first=Min("id"))
            .values_list("conversation_id", "first")
        )
    texts = dict(Message.objects.filter(pk__in=hits.values()).values_list("pk", "content"))
    return {
        conversation_id: (message_id, snippet(texts.get(message_id, ""), query))
        for conversation_id, message_id in hits.items()
    }
