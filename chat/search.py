"""Search that matches in every script: one normalisation, applied by each database.

``fold(text)`` is the whole rule: Unicode full case folding (``str.casefold``), then
``ё`` as ``е`` (Russian readers treat them as one letter; also when ``ё`` is written as
``е`` + U+0308). A query matches a title or a message when ``fold(query)`` is a substring
of ``fold(text)``. Examples: "привет", "ПРИВЕТ" and "пр" find "Привет мир"; "ежик" finds
"Ёжик"; "STRASSE" finds "Straße"; "ΛΌΓΟΣ" finds "λόγος" (final ς folds to σ) but "ΛΟΓΟΣ"
does not (accents count); "İSTANBUL" finds "İstanbul" but "ISTANBUL" does not: casefold
keeps the dot of İ (i + U+0307) and leaves dotless ı alone, with no language's own rule.

Each database keeps the folded text in two derived tables, filled by triggers (so
``QuerySet.update()``, ``bulk_update`` and raw SQL writes are covered, and searching
never folds stored text again): ``chat_message_search`` (message id -> folded text, with
a trigram index: FTS5 trigram on SQLite, pg_trgm GIN on PostgreSQL; 3+ character queries
use it, shorter ones scan the folded text) and ``chat_conversation_search`` (id, folded
title; read row by row on SQLite, by owner on PostgreSQL).

- **SQLite**: ``fold`` itself is the SQL function ``chat_search_fold``, registered on
  every connection (``connection_created``). A connection without it (the ``sqlite3``
  shell, ``manage.py dbshell``) can read but cannot write messages or conversations.
  Django remakes a SQLite table for some schema changes (constraints, some field
  changes), which drops its triggers: a migration that does so on ``chat_message`` or
  ``chat_conversation`` must call ``install_search_objects`` afterwards (the search tests
  fail otherwise).
- **PostgreSQL**: ``chat_search_fold`` is SQL that reproduces ``fold`` with the database's
  ``lower()`` plus a correction table derived, when the migration runs, from what that
  ``lower()`` does to every character (``plan_postgres_fold``); the migration checks the
  result against ``fold`` for every character that either changes, and fails if they
  differ. Django's flush (TRUNCATE) empties the derived tables through a trigger too.

Call ``install_search_objects`` again (a data migration) after moving a PostgreSQL
database to a server whose ``lower()`` differs (another locale or C library), or after
moving to a Python with a newer Unicode version (it may fold newly assigned characters
differently): it re-derives the function and refolds the stored text.

Search does not normalise accents (``cafe`` does not find ``café``) or Unicode forms other
than the ``ё`` case above.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import BooleanField, F, Func, Q, Value
from django.db.models.expressions import RawSQL

FOLD_FUNCTION = "chat_search_fold"
# Shortest folded query the trigram indexes (FTS5 trigram, pg_trgm) can serve.
TRIGRAM_MIN_CHARS = 3

_E, _YO, _COMBINING_DIAERESIS = "\u0435", "\u0451", "\u0308"
# Lowered alone, Σ gives σ; a database whose lower() follows the final-sigma rule (ICU)
# gives ς at the end of a word: text with Σ always takes the full path, which maps ς.
_CAPITAL_SIGMA = "\u03a3"


def fold(text: str) -> str:
    """The search form of ``text``: ``str.casefold()``, then ``ё`` (also ``е`` + U+0308)
    as ``е``. Apply it to the query and compare with the stored folded text by substring.

    The result can be longer than ``text`` ("ß" -> "ss", "ﬃ" -> "ffi") or one character
    shorter per decomposed ``ё``."""
    return text.casefold().replace(_YO, _E).replace(_E + _COMBINING_DIAERESIS, _E)


def _fold_char(char: str) -> str:
    """``fold`` of one character alone (the contextual U+0308 rule aside)."""
    return char.casefold().replace(_YO, _E)


def _like_pattern(folded: str) -> str:
    """``%folded%`` for LIKE, with ``\\``, ``%`` and ``_`` escaped by a backslash."""
    return "%" + folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --- Queries: filters over the derived tables ---------------------------------------------
# Constant SQL per database; every value is a parameter. SQLite's LIKE has no escape
# character unless told (ESCAPE); PostgreSQL's is the backslash already.

_QUERIES = {
    "sqlite": {
        "id_indexed": "SELECT rowid FROM chat_message_search WHERE chat_message_search MATCH %s",
        "conversation_id_indexed": "SELECT conversation_id FROM chat_message WHERE id IN "
        "(SELECT rowid FROM chat_message_search WHERE chat_message_search MATCH %s)",
        "id_scan": "SELECT rowid FROM chat_message_search WHERE text LIKE %s ESCAPE '\\'",
        "conversation_id_scan": "SELECT conversation_id FROM chat_message WHERE id IN "
        "(SELECT rowid FROM chat_message_search WHERE text LIKE %s ESCAPE '\\')",
    },
    "postgresql": {
        "titles": "SELECT id FROM chat_conversation_search WHERE title LIKE %s",
        "owner_titles": "SELECT id FROM chat_conversation_search "
        "WHERE owner_id = %s AND title LIKE %s",
        "id_indexed": "SELECT message_id FROM chat_message_search WHERE text LIKE %s",
        "conversation_id_indexed": "SELECT conversation_id FROM chat_message_search "
        "WHERE text LIKE %s",
    },
}
_QUERIES["postgresql"]["id_scan"] = _QUERIES["postgresql"]["id_indexed"]
_QUERIES["postgresql"]["conversation_id_scan"] = _QUERIES["postgresql"]["conversation_id_indexed"]


def _subquery(name: str, params: list[Any]) -> RawSQL:
    return RawSQL(_QUERIES[connection.vendor][name], params)  # noqa: S611 - constant SQL


class _SQLiteTitleContains(Func):
    """SQLite: whether this conversation's folded title contains a LIKE pattern, looked
    up by primary key for each row, so that a newest-first walk stops once its page is
    full (a common 1-2 letter query reads 0.2 ms of titles instead of all of them)."""

    output_field = BooleanField()
    arg_joiner = " AND s.title LIKE "
    template = (
        "EXISTS (SELECT 1 FROM chat_conversation_search AS s "
        "WHERE s.id = %(expressions)s ESCAPE '\\')"
    )


def title_match(query: str, *, owner_id: int | None = None) -> Q:
    """A filter for ``Conversation`` querysets: titles containing ``query`` (folded here).
    ``owner_id`` limits the PostgreSQL lookup to that owner's titles (an index range,
    hashed once, not every title); the caller still scopes the queryset itself."""
    pattern = _like_pattern(fold(query))
    if connection.vendor == "sqlite":
        return Q(_SQLiteTitleContains(F("id"), Value(pattern)))
    if owner_id is None:
        return Q(id__in=_subquery("titles", [pattern]))
    return Q(id__in=_subquery("owner_titles", [owner_id, pattern]))


def message_match(query: str) -> Q:
    """A filter for ``Message`` querysets: message text containing ``query`` (folded
    here). A folded query of 3+ characters uses the trigram index; a shorter one reads
    every message's folded text (scope the queryset, or avoid it on large tables)."""
    return Q(id__in=_matching_messages(fold(query), "id"))


def conversation_message_match(query: str) -> Q:
    """A filter for ``Conversation`` querysets: conversations with a message containing
    ``query`` (folded here); index use as in ``message_match``."""
    return Q(id__in=_matching_messages(fold(query), "conversation_id"))


def _matching_messages(folded: str, column: str) -> RawSQL:
    """The ``column`` ("id" or "conversation_id") of the messages whose folded text
    contains ``folded``, as a subquery."""
    if len(folded) < TRIGRAM_MIN_CHARS:
        return _subquery(f"{column}_scan", [_like_pattern(folded)])
    if connection.vendor == "sqlite":
        # One FTS5 phrase, quotes doubled: operators in the query are plain text.
        return _subquery(f"{column}_indexed", ['"' + folded.replace('"', '""') + '"'])
    return _subquery(f"{column}_indexed", [_like_pattern(folded)])


# --- SQLite: the function on every connection, the derived tables and their triggers ----


def _register_sqlite_function(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function(FOLD_FUNCTION, 1, fold, deterministic=True)


def register_on_connections() -> None:
    """Register ``chat_search_fold`` on every SQLite connection Django opens from now on,
    and on those already open. Idempotent; runs when this module is imported."""
    connection_created.connect(_register_sqlite_function, dispatch_uid="chat.search.fold")
    for opened in connections.all(initialized_only=True):
        if opened.connection is not None:
            _register_sqlite_function(None, opened)


register_on_connections()

SQLITE_OBJECTS = [
    # Message text, folded. Not contentless: deleting by rowid must not depend on
    # folding the old text the same way again (a new Python could fold differently).
    """CREATE VIRTUAL TABLE IF NOT EXISTS chat_message_search
        USING fts5(text, tokenize='trigram case_sensitive 1')""",
    """CREATE TRIGGER IF NOT EXISTS chat_message_search_ai AFTER INSERT ON chat_message
    BEGIN
        INSERT INTO chat_message_search(rowid, text)
        VALUES (new.id, chat_search_fold(new.content));
    END""",
    """CREATE TRIGGER IF NOT EXISTS chat_message_search_au AFTER UPDATE OF content ON chat_message
    WHEN old.content IS NOT new.content BEGIN
        UPDATE chat_message_search SET text = chat_search_fold(new.content)
        WHERE rowid = new.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS chat_message_search_ad AFTER DELETE ON chat_message
    BEGIN
        DELETE FROM chat_message_search WHERE rowid = old.id;
    END""",
    # Titles, folded; read by primary key for each conversation row.
    """CREATE TABLE IF NOT EXISTS chat_conversation_search (
        id INTEGER PRIMARY KEY, title TEXT NOT NULL)""",
    """CREATE TRIGGER IF NOT EXISTS chat_conversation_search_ai AFTER INSERT ON chat_conversation
    BEGIN
        INSERT OR REPLACE INTO chat_conversation_search(id, title)
        VALUES (new.id, chat_search_fold(new.title));
    END""",
    """CREATE TRIGGER IF NOT EXISTS chat_conversation_search_au
    AFTER UPDATE OF title ON chat_conversation WHEN old.title IS NOT new.title BEGIN
        UPDATE chat_conversation_search SET title = chat_search_fold(new.title)
        WHERE id = new.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS chat_conversation_search_ad AFTER DELETE ON chat_conversation
    BEGIN
        DELETE FROM chat_conversation_search WHERE id = old.id;
    END""",
]
SQLITE_BACKFILL = [
    "DELETE FROM chat_message_search",
    """INSERT INTO chat_message_search(rowid, text)
        SELECT id, chat_search_fold(content) FROM chat_message""",
    "DELETE FROM chat_conversation_search",
    """INSERT INTO chat_conversation_search(id, title)
        SELECT id, chat_search_fold(title) FROM chat_conversation""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS chat_message_search_ai",
    "DROP TRIGGER IF EXISTS chat_message_search_au",
    "DROP TRIGGER IF EXISTS chat_message_search_ad",
    "DROP TABLE IF EXISTS chat_message_search",
    "DROP TRIGGER IF EXISTS chat_conversation_search_ai",
    "DROP TRIGGER IF EXISTS chat_conversation_search_au",
    "DROP TRIGGER IF EXISTS chat_conversation_search_ad",
    "DROP TABLE IF EXISTS chat_conversation_search",
]


# --- PostgreSQL: fold() as SQL, derived from the database's own lower() -----------------

# Characters frequent in real text whose fold is not lower(): replaced one by one on the
# slower path, so that the full correction table runs only for text that needs it.
_COMMON_FIXES = "ёςß"


@dataclass(frozen=True)
class PostgresFoldPlan:
    """How SQL reproduces ``fold`` given what the database's ``lower()`` does.

    ``fold(c) == post(lower(pre(c)))`` for every character c, then the U+0308 rule:
    ``pre`` maps characters whose ``lower()`` would lose information (İ -> i, like I)
    straight to their fold; ``post`` maps each lowered character to its fold. ``guard``
    holds every character whose fold differs from ``lower()``: text without any of them
    is folded by ``lower()`` alone. ``unmatched`` lists the characters no plan can fold
    like Python (expected empty; then such characters match as ``lower()`` says)."""

    pre: dict[str, str]
    post: dict[str, str]
    guard: frozenset[str]
    unmatched: frozenset[str]


@functools.cache
def case_changing_characters() -> frozenset[str]:
    """Every character that ``str.lower()`` or ``fold`` changes (about 2,900 of them):
    the only ones a fold plan or a check of one needs to look at."""
    return frozenset(
        char
        for char in map(chr, range(1, sys.maxunicode + 1))
        if not "\ud800" <= char <= "\udfff" and (char.lower() != char or _fold_char(char) != char)
    )


def plan_postgres_fold(lowered: Mapping[str, str]) -> PostgresFoldPlan:
    """The plan for a database whose ``lower()`` changes exactly the characters in
    ``lowered`` (character -> ``lower(character)``, which may be several characters)."""

    def lower(text: str) -> str:
        return "".join(lowered.get(ch, ch) for ch in text)

    changed = set(lowered) | {c for c in case_changing_characters() if _fold_char(c) != c}
    pre: dict[str, str] = {}
    members: dict[str, set[str]] = defaultdict(set)  # lower(c) -> characters c
    for char in changed:
        low = lower(char)
        if len(low) != 1:
            if low != _fold_char(char):
                pre[char] = _fold_char(char)
            continue
        members[low].add(char)
        members[low].add(low)
    post: dict[str, str] = {}
    for low, chars in members.items():
        chars = {c for c in chars if lower(c) == low}
        # The lowered character's own fold wins; characters that need another go to pre.
        wanted = (
            _fold_char(low)
            if low in chars
            else Counter(_fold_char(c) for c in chars).most_common(1)[0][0]
        )
        for char in chars:
            if _fold_char(char) != wanted:
                pre[char] = _fold_char(char)
        if wanted != low:
            post[low] = wanted

    def simulate(char: str) -> str:
        return "".join(post.get(ch, ch) for ch in lower(pre.get(char, char)))

    checked = changed | set(members) | {ch for value in pre.values() for ch in value}
    unmatched = frozenset(c for c in checked if simulate(c) != _fold_char(c))
    guard = frozenset(c for c in checked if lower(c) != _fold_char(c)) | {
        _COMBINING_DIAERESIS,
        _CAPITAL_SIGMA,
    }
    return PostgresFoldPlan(pre=pre, post=post, guard=guard - unmatched, unmatched=unmatched)


def _sql_text(text: str) -> str:
    """A PostgreSQL string constant for ``text`` in plain ASCII (E'' with \\u escapes)."""
    out = []
    for ch in text:
        if ch in "'\\" or not (" " <= ch <= "~"):
            out.append(f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08X}")
        else:
            out.append(ch)
    return "E'" + "".join(out) + "'"


def _regex_class(chars: frozenset[str]) -> str:
    """A regular-expression bracket expression matching any of ``chars`` (as ranges)."""
    points = sorted(ord(c) for c in chars)
    parts: list[str] = []
    start = prev = points[0]
    for point in [*points[1:], -1]:
        if point == prev + 1:
            prev = point
            continue
        first, last = (("\\" + chr(p) if chr(p) in "[]\\^-" else chr(p)) for p in (start, prev))
        parts.append(first if start == prev else f"{first}-{last}")
        start = prev = point
    return "[" + "".join(parts) + "]"


def _replace_chain(expression: str, mapping: Mapping[str, str]) -> str:
    for source, target in sorted(mapping.items()):
        expression = f"replace({expression}, {_sql_text(source)}, {_sql_text(target)})"
    return expression


def postgres_fold_function_sql(plan: PostgresFoldPlan) -> list[str]:
    """``CREATE FUNCTION`` statements for ``chat_search_fold(text)``: ``lower()`` when the
    text holds no character of ``plan.guard`` (one regular-expression test: most text
    costs little more than ``lower()``), the full plan (``chat_search_fold_full``)
    otherwise."""
    common = {k: v for k, v in plan.post.items() if k in _COMMON_FIXES}
    rare = {k: v for k, v in plan.post.items() if k not in _COMMON_FIXES}
    single = {k: v for k, v in sorted(rare.items()) if len(v) == 1}
    multi = {k: v for k, v in rare.items() if len(v) > 1}
    rare_step = ""
    if rare:
        translate = (
            f"translate(s, {_sql_text(''.join(single))}, {_sql_text(''.join(single.values()))})"
        )
        rare_step = (
            f"    IF s ~ {_sql_text(_regex_class(frozenset(rare)))} THEN\n"
            f"        s := {_replace_chain(translate, multi)};\n"
            "    END IF;\n"
        )
    slow = f"""CREATE OR REPLACE FUNCTION {FOLD_FUNCTION}_full(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fold$
DECLARE
    s text := {_replace_chain(f"lower({_replace_chain('t', plan.pre)})", common)};
BEGIN
{rare_step}    RETURN replace(s, {_sql_text(_E + _COMBINING_DIAERESIS)}, {_sql_text(_E)});
END
$fold$"""
    # Not STRICT: a STRICT SQL function whose body is a CASE is not inlined.
    fast = f"""CREATE OR REPLACE FUNCTION {FOLD_FUNCTION}(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fold$
SELECT CASE WHEN t ~ {_sql_text(_regex_class(plan.guard))} THEN {FOLD_FUNCTION}_full(t)
ELSE lower(t) END
$fold$"""
    return [slow, fast]


# The derived tables, as on SQLite, with ordinary indexes: a trigram GIN index serves
# message search; titles are read by owner from a B-tree.
POSTGRES_OBJECTS = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """CREATE TABLE IF NOT EXISTS chat_message_search (
        message_id bigint PRIMARY KEY, conversation_id bigint NOT NULL, text text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS chat_conversation_search (
        id bigint PRIMARY KEY, owner_id bigint NOT NULL, title text NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS chat_conversation_search_owner
        ON chat_conversation_search (owner_id, title)""",
    """CREATE OR REPLACE FUNCTION chat_message_search_sync() RETURNS trigger
    LANGUAGE plpgsql AS $sync$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            DELETE FROM chat_message_search WHERE message_id = OLD.id;
        ELSE
            INSERT INTO chat_message_search (message_id, conversation_id, text)
            VALUES (NEW.id, NEW.conversation_id, chat_search_fold(NEW.content))
            ON CONFLICT (message_id) DO UPDATE
            SET conversation_id = EXCLUDED.conversation_id, text = EXCLUDED.text;
        END IF;
        RETURN NULL;
    END
    $sync$""",
    """CREATE OR REPLACE FUNCTION chat_conversation_search_sync() RETURNS trigger
    LANGUAGE plpgsql AS $sync$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            DELETE FROM chat_conversation_search WHERE id = OLD.id;
        ELSE
            INSERT INTO chat_conversation_search (id, owner_id, title)
            VALUES (NEW.id, NEW.owner_id, chat_search_fold(NEW.title))
            ON CONFLICT (id) DO UPDATE
            SET owner_id = EXCLUDED.owner_id, title = EXCLUDED.title;
        END IF;
        RETURN NULL;
    END
    $sync$""",
    # TRUNCATE (Django's flush) fires no row trigger: empty the derived table with it.
    """CREATE OR REPLACE FUNCTION chat_search_clear() RETURNS trigger
    LANGUAGE plpgsql AS $clear$
    BEGIN
        EXECUTE format('TRUNCATE %I', TG_ARGV[0]);
        RETURN NULL;
    END
    $clear$""",
    """CREATE OR REPLACE TRIGGER chat_message_search_ai AFTER INSERT ON chat_message
    FOR EACH ROW EXECUTE FUNCTION chat_message_search_sync()""",
    """CREATE OR REPLACE TRIGGER chat_message_search_au
    AFTER UPDATE OF content, conversation_id ON chat_message FOR EACH ROW
    WHEN (OLD.content IS DISTINCT FROM NEW.content
          OR OLD.conversation_id IS DISTINCT FROM NEW.conversation_id)
    EXECUTE FUNCTION chat_message_search_sync()""",
    """CREATE OR REPLACE TRIGGER chat_message_search_ad AFTER DELETE ON chat_message
    FOR EACH ROW EXECUTE FUNCTION chat_message_search_sync()""",
    """CREATE OR REPLACE TRIGGER chat_message_search_at AFTER TRUNCATE ON chat_message
    FOR EACH STATEMENT EXECUTE FUNCTION chat_search_clear('chat_message_search')""",
    """CREATE OR REPLACE TRIGGER chat_conversation_search_ai AFTER INSERT ON chat_conversation
    FOR EACH ROW EXECUTE FUNCTION chat_conversation_search_sync()""",
    """CREATE OR REPLACE TRIGGER chat_conversation_search_au
    AFTER UPDATE OF title, owner_id ON chat_conversation FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION chat_conversation_search_sync()""",
    """CREATE OR REPLACE TRIGGER chat_conversation_search_ad AFTER DELETE ON chat_conversation
    FOR EACH ROW EXECUTE FUNCTION chat_conversation_search_sync()""",
    """CREATE OR REPLACE TRIGGER chat_conversation_search_at AFTER TRUNCATE ON chat_conversation
    FOR EACH STATEMENT EXECUTE FUNCTION chat_search_clear('chat_conversation_search')""",
]
POSTGRES_BACKFILL = [
    # Without the trigram index while filling (built once afterwards, much faster).
    "DROP INDEX IF EXISTS chat_message_search_trgm",
    "TRUNCATE chat_message_search, chat_conversation_search",
    """INSERT INTO chat_message_search (message_id, conversation_id, text)
        SELECT id, conversation_id, chat_search_fold(content) FROM chat_message""",
    """INSERT INTO chat_conversation_search (id, owner_id, title)
        SELECT id, owner_id, chat_search_fold(title) FROM chat_conversation""",
]
POSTGRES_INDEX = [
    """CREATE INDEX IF NOT EXISTS chat_message_search_trgm
        ON chat_message_search USING gin (text gin_trgm_ops)""",
    "ANALYZE chat_message_search, chat_conversation_search",
]
POSTGRES_DROP = [
    *(
        f"DROP TRIGGER IF EXISTS {table}_search_{when} ON {table}"
        for table in ("chat_message", "chat_conversation")
        for when in ("ai", "au", "ad", "at")
    ),
    "DROP TABLE IF EXISTS chat_message_search, chat_conversation_search",
    "DROP FUNCTION IF EXISTS chat_message_search_sync()",
    "DROP FUNCTION IF EXISTS chat_conversation_search_sync()",
    "DROP FUNCTION IF EXISTS chat_search_clear()",
    f"DROP FUNCTION IF EXISTS {FOLD_FUNCTION}(text)",
    f"DROP FUNCTION IF EXISTS {FOLD_FUNCTION}_full(text)",
]


def _postgres_lowered(cursor: Any) -> dict[str, str]:
    """Every character the database's ``lower()`` changes, with its result."""
    cursor.execute(
        "SELECT chr(cp), lower(chr(cp)) FROM generate_series(1, %s) AS cp "
        "WHERE (cp < 55296 OR cp > 57343) AND lower(chr(cp)) <> chr(cp)",
        [sys.maxunicode],
    )
    return dict(cursor.fetchall())


def postgres_fold_mismatches(cursor: Any, *, ignore: frozenset[str] = frozenset()) -> list[str]:
    """Characters (and a few strings) for which the database's ``chat_search_fold``
    differs from ``fold``, as ``U+XXXX: 'database' != 'python'`` lines; empty when they
    agree. Checks every character either the database or ``fold`` changes, except those
    in ``ignore``."""
    cursor.execute(
        "SELECT chr(cp), chat_search_fold(chr(cp)) FROM generate_series(1, %s) AS cp "
        "WHERE (cp < 55296 OR cp > 57343) AND chat_search_fold(chr(cp)) <> chr(cp)",
        [sys.maxunicode],
    )
    database = dict(cursor.fetchall())
    candidates = (set(database) | {c for c in case_changing_characters() if fold(c) != c}) - ignore
    samples = ["Ёжик и е\u0308жик", "ΣΊΣΥΦΟΣ Straße İstanbul ǅ ﬃ", "ПРИВЕТ мир"]
    for sample in samples:
        cursor.execute("SELECT chat_search_fold(%s)", [sample])
        database[sample] = cursor.fetchone()[0]
        candidates.add(sample)
    return [
        f"{' '.join(f'U+{ord(c):04X}' for c in text)}: "
        f"{database.get(text, text)!r} != {fold(text)!r}"
        for text in sorted(candidates)
        if database.get(text, text) != fold(text)
    ]


def install_search_objects(connection: BaseDatabaseWrapper, *, backfill: bool = True) -> None:
    """Create (or re-create) the search function, derived tables, triggers and indexes
    for ``connection``'s database, and fill them from the rows already there.

    Raises RuntimeError on PostgreSQL when the database is not UTF8 or when the derived
    function does not fold some character like ``fold`` (a migration then fails and
    its transaction keeps nothing)."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            _register_sqlite_function(None, connection)
            for statement in SQLITE_OBJECTS + (SQLITE_BACKFILL if backfill else []):
                cursor.execute(statement)
        elif connection.vendor == "postgresql":
            cursor.execute("SHOW server_encoding")
            if cursor.fetchone()[0] != "UTF8":
                raise RuntimeError("search needs a UTF8 PostgreSQL database")
            plan = plan_postgres_fold(_postgres_lowered(cursor))
            for statement in postgres_fold_function_sql(plan):
                cursor.execute(statement)
            if plan.unmatched:
                warnings.warn(
                    "search: PostgreSQL's lower() leaves no way to fold these characters "
                    "like chat.search.fold, they match as lower() says: "
                    + " ".join(f"U+{ord(c):04X}" for c in sorted(plan.unmatched)),
                    stacklevel=2,
                )
            mismatches = postgres_fold_mismatches(cursor, ignore=plan.unmatched)
            if mismatches:
                raise RuntimeError(
                    "chat_search_fold differs from chat.search.fold for: "
                    + "; ".join(mismatches[:10])
                )
            for statement in [
                *POSTGRES_OBJECTS,
                *(POSTGRES_BACKFILL if backfill else []),
                *POSTGRES_INDEX,
            ]:
                cursor.execute(statement)


def remove_search_objects(connection: BaseDatabaseWrapper) -> None:
    """Drop what ``install_search_objects`` created."""
    with connection.cursor() as cursor:
        for statement in {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}.get(
            connection.vendor, []
        ):
            cursor.execute(statement)
