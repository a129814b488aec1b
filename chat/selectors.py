"""Reads. Every function is scoped to the owner: another user's rows are never returned."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Exists,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    prefetch_related_objects,
)
from django.http import Http404

from . import search
from .models import Attachment, Conversation, Folder, Message, folders_cache_key
from .snippets import Snippet, snippet
from .tree import ConversationTree, Siblings

# Shortest query that also searches message text (trigram indexes need three).
MESSAGE_SEARCH_MIN_CHARS = 3


# What the conversation list shows of each conversation.
_LIST_FIELDS = (
    "id",
    "title",
    "provider",
    "model",
    "updated_at",
    "reply_unseen_at",
    "folder_id",
    "pinned_at",
    "archived_at",
)


def conversation_list_for_user(
    *,
    user: AbstractBaseUser,
    query: str = "",
    older_than: int | None = None,
    folder_id: int | None = None,
    archived: bool = False,
    pinned: bool | None = None,
) -> QuerySet[Conversation]:
    """The user's conversations, newest first; ``query`` matches titles and message text
    (through ``chat.search.fold``: case folded in every script, ё as е; titles only below
    ``MESSAGE_SEARCH_MIN_CHARS`` characters); ``older_than`` (a conversation id) continues
    the list after that conversation (keyset pagination on the (owner, updated_at) index).
    ``folder_id`` keeps that folder's only; ``archived`` lists the archived ones instead
    of the others; ``pinned`` True keeps the pinned ones only, False the others (None:
    both)."""
    conversations = (
        Conversation.objects.filter(owner=user, archived_at__isnull=not archived)
        .only(*_LIST_FIELDS)
        .annotate(reply_running=_reply_running())
    )
    if folder_id is not None:
        conversations = conversations.filter(folder_id=folder_id)
    if pinned is not None:
        conversations = conversations.filter(pinned_at__isnull=not pinned)
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


def sidebar_first_page_for_user(
    *, user: AbstractBaseUser, folder_id: int | None = None, limit: int = 100
) -> tuple[list[Conversation], list[Conversation]]:
    """The conversation list's first page, as (pinned, others): the user's pinned
    conversations that are not archived, the most recently pinned first (at most
    ``limit``), and the newest ``limit + 1`` of the others (one more than a page: the
    caller pages on with ``conversation_list_for_user(pinned=False, older_than=...)``),
    of folder ``folder_id`` when given. One query: two bounded id lists (the partial
    index of pinned conversations, the (owner, updated_at) index), then their rows."""
    base = Conversation.objects.filter(owner=user, archived_at__isnull=True)
    if folder_id is not None:
        base = base.filter(folder_id=folder_id)
    pinned_ids = base.filter(pinned_at__isnull=False).order_by("-pinned_at", "-id")
    other_ids = base.filter(pinned_at__isnull=True).order_by("-updated_at", "-id")
    # No owner test outside: both id lists are the owner's, and with none SQLite reads
    # the rows by id (a multi-index OR) instead of scanning every conversation of theirs.
    rows = (
        Conversation.objects.filter(
            Q(pk__in=pinned_ids.values("pk")[:limit])
            | Q(pk__in=other_ids.values("pk")[: limit + 1])
        )
        .only(*_LIST_FIELDS)
        .annotate(reply_running=_reply_running())
        .order_by(F("pinned_at").desc(nulls_last=True), "-updated_at", "-id")
    )
    pinned: list[Conversation] = []
    others: list[Conversation] = []
    for row in rows:
        (pinned if row.pinned_at is not None else others).append(row)
    return pinned, others


# How long a person's folder list stays cached (saving or deleting a folder clears it:
# chat.models.folders_cache_key); with Redis the workers share it.
FOLDERS_CACHE_SECONDS = 600


def folder_list_for_user(*, user: AbstractBaseUser) -> list[Folder]:
    """The user's folders by name (letter case ignored). Cached (the conversation list
    shows them on every page): no query while the cache holds them, one otherwise. The
    cached copy names the user's sign-up time, so that another user given the same id
    (a database emptied and filled again) never sees it."""
    key = folders_cache_key(user.pk)
    joined = str(getattr(user, "date_joined", ""))
    cached = cache.get(key)
    if isinstance(cached, tuple) and len(cached) == 2 and cached[0] == joined:
        return list(cached[1])
    folders = list(Folder.objects.filter(owner=user).order_by("name_key", "id"))
    cache.set(key, (joined, folders), FOLDERS_CACHE_SECONDS)
    return folders


def folder_get_for_user(*, user: AbstractBaseUser, pk: int) -> Folder:
    """The folder if ``user`` owns it; Http404 otherwise (also for other users' ids)."""
    try:
        return Folder.objects.get(pk=pk, owner=user)
    except Folder.DoesNotExist:
        raise Http404("No such folder") from None


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
    one light query. The caller has checked the owner. Reads every message's id: for
    whole-conversation work (prepare, fork, delete a branch, exports); a page of the
    thread reads only its branch (``thread_page``)."""
    rows = (
        Message.objects.filter(conversation_id=conversation_id)
        .order_by()
        .values_list("id", "parent_id", "role")
    )
    return ConversationTree.from_rows(list(rows))


_TABLE = Message._meta.db_table

# The message (checked to be in the conversation) and the newest line below it: its
# newest child, that one's newest child... (the parent_id index answers each step), top
# first. A question several models answered side by side (a user message with two or
# more replies) is not descended from: it ends its branch.
_WALK_DOWN_SQL = f"""
WITH RECURSIVE down(id, depth, stop) AS (
    SELECT m.id, 0,
        m.role = 'user' AND (SELECT COUNT(*) FROM {_TABLE} c WHERE c.parent_id = m.id) > 1
    FROM {_TABLE} m WHERE m.id = %s AND m.conversation_id = %s
    UNION ALL
    SELECT (SELECT MAX(c.id) FROM {_TABLE} c WHERE c.parent_id = down.id), down.depth + 1,
        1 = 0
    FROM down WHERE down.id IS NOT NULL AND NOT down.stop
)
SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth
"""  # noqa: S608 - the table name is the model's; values are parameters

# From a message of this conversation up towards the root: at most %s steps above it.
_WALK_UP_SQL = f"""
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM {_TABLE} WHERE id = %s AND conversation_id = %s
    UNION ALL
    SELECT m.id, m.parent_id, up.depth + 1 FROM {_TABLE} m JOIN up ON m.id = up.parent_id
    WHERE up.depth < %s
)
SELECT id FROM up ORDER BY depth
"""  # noqa: S608 - the table name is the model's; values are parameters


def _walk_down(message_id: int, *, conversation_id: int) -> list[int]:
    """``message_id`` and the newest line below it, top first (see ``_WALK_DOWN_SQL``);
    [] when the message is not in the conversation. One query."""
    with connection.cursor() as cursor:
        cursor.execute(_WALK_DOWN_SQL, [message_id, conversation_id])
        return [row[0] for row in cursor.fetchall()]


def _walk_up(message_id: int, *, conversation_id: int, steps: int) -> list[int]:
    """``message_id`` and up to ``steps`` messages above it, root-most first; [] when
    the message is not in the conversation. One query."""
    with connection.cursor() as cursor:
        cursor.execute(_WALK_UP_SQL, [message_id, conversation_id, steps])
        ids = [row[0] for row in cursor.fetchall()]
    ids.reverse()
    return ids


def branch_end(*, conversation_id: int, start: int | None) -> int | None:
    """The last message of the branch through ``start`` (None: the newest first
    message): ``start`` itself when it is a question several models answered side by
    side (see ``ConversationTree.is_compare``), else the end of the newest line below
    it. Http404 when ``start`` is not in the conversation; None for an empty one. One
    query (two without ``start``)."""
    if start is None:
        start = (
            Message.objects.filter(conversation_id=conversation_id, parent__isnull=True)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
        if start is None:
            return None
    line = _walk_down(start, conversation_id=conversation_id)
    if not line:
        raise Http404("No such message")
    return line[-1]


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
) -> ThreadPage:
    """The newest ``limit`` messages of the branch through ``leaf`` (default: the
    branch the person last looked at, ``conversation.current_leaf``), or the ``limit``
    above message ``before`` on it. Http404 when ``leaf`` or ``before`` is not in this
    conversation. Only the page's part of the branch is read (recursive queries along
    the parent links): six queries and the same time whatever the length of the
    conversation or the number of its branches."""
    start = leaf if leaf is not None else conversation.current_leaf_id
    try:
        end = branch_end(conversation_id=conversation.pk, start=start)
    except Http404:
        if leaf is not None:
            raise
        end = branch_end(conversation_id=conversation.pk, start=None)  # shown one is gone
    if end is None:
        if before is not None:
            raise Http404("No such message")
        return ThreadPage(messages=[], earlier_id=None, leaf_id=None, compare=[])
    if before is not None:
        above = _walk_up(before, conversation_id=conversation.pk, steps=limit + 1)
        if not above:
            raise Http404("No such message")
        ids = above[:-1]  # before itself is on the page below
    else:
        ids = _walk_up(end, conversation_id=conversation.pk, steps=limit)
    has_more = len(ids) > limit
    page_ids = ids[-limit:] if limit else ids
    rows = {m.pk: m for m in Message.objects.filter(pk__in=page_ids).annotate(**_HAS_FILES)}
    page = [rows[i] for i in page_ids if i in rows]
    _attach_files(page)
    # Siblings of the page's messages and the replies of a compared question, one query.
    parents = {m.parent_id for m in page}
    if before is None:
        parents.add(end)
    family = Q(parent_id__in=[p for p in parents if p is not None])
    if None in parents:
        family |= Q(conversation_id=conversation.pk, parent__isnull=True)
    children: dict[int | None, list[int]] = {}
    for parent_id, child_id in (
        Message.objects.filter(family).order_by("id").values_list("parent_id", "id")
    ):
        children.setdefault(parent_id, []).append(child_id)
    for message in page:
        group = children.get(message.parent_id, [message.pk])
        message.siblings = Siblings.within(group, message.pk) if len(group) > 1 else None
    compare: list[Message] = []
    last = page[-1] if page else None
    if (
        before is None
        and last is not None
        and last.pk == end
        and last.role == Message.Role.USER
        and len(children.get(end, ())) > 1
    ):
        compare = list(
            Message.objects.filter(pk__in=children[end]).order_by("id").annotate(**_HAS_FILES)
        )
        _attach_files(compare)
        _attach_costs(compare)
    return ThreadPage(
        messages=page,
        earlier_id=page[0].pk if has_more and page else None,
        leaf_id=end,
        compare=compare,
    )


_HAS_FILES = {"has_files": Exists(Attachment.objects.filter(message_id=OuterRef("pk")))}


def _attach_files(messages: list[Message]) -> None:
    """Load the attachments of those of ``messages`` that have any (annotated
    ``has_files``), in one query, and give the others an empty list without a query:
    most pages have no files at all."""
    with_files = [m for m in messages if m.has_files]
    if with_files:
        prefetch_related_objects(with_files, "attachments")
    for message in messages:
        if not message.has_files:
            message._prefetched_objects_cache = {"attachments": Attachment.objects.none()}


def _attach_costs(replies: list[Message]) -> None:
    """Give each reply ``cost``: its usage record's cost in USD (a Decimal), or None when
    no price is known (the compare columns show it). One query."""
    from usage.models import UsageRecord

    costs = dict(
        UsageRecord.objects.filter(reply_id__in=[r.pk for r in replies]).values_list(
            "reply_id", "cost"
        )
    )
    for reply in replies:
        reply.cost = costs.get(reply.pk)


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
    try:
        end = branch_end(conversation_id=conversation.pk, start=message_id)
    except Http404:
        return None
    below = [] if end == message_id else _walk_down(message_id, conversation_id=conversation.pk)[1:]
    if len(below) < limit:
        return thread_page(conversation=conversation, leaf=end, limit=limit), False
    page = thread_page(conversation=conversation, leaf=end, before=below[0], limit=limit)
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
