"""The short load test of ``make test`` (the long one is ``make loadtest``): 20 people
send 3 messages each at once through a real uvicorn worker, against the paced fake
upstream, and the database must then hold every message and every reply exactly once.

It starts its own processes (fake upstream, uvicorn) and its own database: a temporary
SQLite file, or, when the suite runs on PostgreSQL (DATABASE_URL set), a database of its
own on that server, created and dropped here (never the Django test database).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench.common import BenchDatabase
from bench.loadtest import Sent, check_database, run

USERS, MESSAGES = 20, 3


@pytest.fixture(scope="module")
def load_run() -> dict[str, Any]:
    database_url = os.environ.get("DATABASE_URL", "")
    db_kind = "postgres" if database_url.startswith(("postgres://", "postgresql://")) else "sqlite"
    seen: dict[str, Any] = {}

    def inspect(db: BenchDatabase, sent: list[Sent]) -> None:
        # Lose one reply on purpose: the check must notice it.
        # A reply nothing follows (a leaf of its conversation's tree: no foreign key to
        # its id is left behind).
        reply_id = db.query(
            "SELECT MIN(id) FROM chat_message m WHERE role = %s AND NOT EXISTS "
            "(SELECT 1 FROM chat_message c WHERE c.parent_id = m.id)",
            ["assistant"],
        )[0][0]
        db.execute(
            "UPDATE chat_conversation SET current_leaf_id = NULL WHERE current_leaf_id = %s",
            [reply_id],
        )
        db.execute("UPDATE usage_usagerecord SET reply_id = NULL WHERE reply_id = %s", [reply_id])
        db.execute("DELETE FROM chat_message WHERE id = %s", [reply_id])
        seen["after_losing_a_reply"] = check_database(db, sent)
        first = sent[0]
        unsent = Sent(first.username, first.conversation_id, "never sent", first.result)
        seen["after_an_unsent_message"] = check_database(db, [*sent, unsent])

    result = run(
        users=USERS,
        messages=MESSAGES,
        duration=1.5,
        db_kind=db_kind,
        redis_url=os.environ.get("REDIS_URL", ""),
        inspect=inspect,
    )
    return {**result, **seen}


def test_every_message_gets_a_reply_without_error(load_run: dict[str, Any]) -> None:
    assert (load_run["sent"], load_run["errors"]) == (USERS * MESSAGES, 0), load_run[
        "error_examples"
    ]


def test_streamed_text_is_the_whole_reply(load_run: dict[str, Any]) -> None:
    assert load_run["wrong_stream_text"] == 0


def test_users_really_chatted_at_the_same_time(load_run: dict[str, Any]) -> None:
    assert load_run["peak_concurrent_streams"] >= USERS // 2


def test_database_holds_every_message_and_reply_once(load_run: dict[str, Any]) -> None:
    check = load_run["check"]
    assert (check["user_messages"], check["replies"], check["problems"]) == (
        USERS * MESSAGES,
        USERS * MESSAGES,
        0,
    ), check


def test_the_check_notices_a_lost_reply(load_run: dict[str, Any]) -> None:
    assert load_run["after_losing_a_reply"].missing_replies


def test_the_check_notices_a_message_missing_from_the_database(
    load_run: dict[str, Any],
) -> None:
    assert load_run["after_an_unsent_message"].missing_messages == ["never sent"]
