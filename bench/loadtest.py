"""The load test (issue 4): many people chatting at once, then a check in the database
that nothing was lost or duplicated::

    python -m bench.loadtest [--users 200] [--messages 6] [--duration 60]
                             [--db sqlite|postgres] [--redis redis://127.0.0.1:6379/14]

Each user signs in (the real sign-in form), opens a conversation and sends
``--messages`` messages one after the other, reading each reply's stream to its end,
with a pause between messages so that the run lasts about ``--duration`` seconds. All
users are active at once. Afterwards the bench database is read directly (not through
Django): every user's conversation must hold each sent message once, in order, each
followed by its complete reply. Exits non-zero when a reply failed or the check found a
problem. ``chat/tests/test_loadtest.py`` runs a short version inside ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import (
    AppServer,
    BenchDatabase,
    BenchUser,
    StreamResult,
    bench_stack,
    close_users,
    cpu_seconds,
    create_users,
    fmt,
    load_average,
    markdown_table,
    raise_open_files_limit,
    rss_mb,
    sign_in_users,
    summarize,
    workdir_for,
    write_json,
)
from .fakeserver import expected_reply

MODEL = "bench-20x20"


@dataclass
class Sent:
    username: str
    conversation_id: int
    content: str
    result: StreamResult


@dataclass
class Check:
    """What the database holds, compared with what was sent."""

    conversations: int = 0
    user_messages: int = 0
    replies: int = 0
    missing_messages: list[str] = field(default_factory=list)
    duplicated_messages: list[str] = field(default_factory=list)
    missing_replies: list[str] = field(default_factory=list)
    incomplete_replies: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    unexpected_rows: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(
            len(items)
            for items in (
                self.missing_messages,
                self.duplicated_messages,
                self.missing_replies,
                self.incomplete_replies,
                self.out_of_order,
                self.unexpected_rows,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        data = {k: v[:5] if isinstance(v, list) else v for k, v in self.__dict__.items()}
        data.update({f"{k}_count": len(v) for k, v in self.__dict__.items() if isinstance(v, list)})
        data["problems"] = self.problems
        return data


def check_database(db: BenchDatabase, sent: list[Sent], model: str = MODEL) -> Check:
    """Read every bench conversation straight from the database and compare."""
    rows = db.query(
        "SELECT u.username, c.id, m.id, m.role, m.status, m.content "
        "FROM chat_conversation c JOIN auth_user u ON u.id = c.owner_id "
        "LEFT JOIN chat_message m ON m.conversation_id = c.id "
        "WHERE u.username LIKE %s ORDER BY c.id, m.created_at, m.id",
        ["load%"],
    )
    by_conversation: dict[int, list[tuple[Any, ...]]] = {}
    for _username, conversation_id, message_id, role, status, content in rows:
        thread = by_conversation.setdefault(conversation_id, [])
        if message_id is not None:
            thread.append((message_id, role, status, content))
    expected: dict[int, list[Sent]] = defaultdict(list)
    for item in sent:
        expected[item.conversation_id].append(item)
    check = Check(conversations=len(by_conversation))
    reply_text = expected_reply(model)
    for conversation_id, messages in by_conversation.items():
        users = [m for m in messages if m[1] == "user"]
        check.user_messages += len(users)
        check.replies += sum(1 for m in messages if m[1] == "assistant")
        counts = Counter(m[3] for m in users)
        check.duplicated_messages += [c for c, n in counts.items() if n > 1]
        wanted = [s.content for s in expected.get(conversation_id, [])]
        check.missing_messages += [c for c in wanted if c not in counts]
        check.unexpected_rows += [c for c in counts if c not in wanted]
        # The thread must be: message, its reply, message, its reply... in send order.
        pairs = [messages[i : i + 2] for i in range(0, len(messages), 2)]
        for k, pair in enumerate(pairs):
            label = f"conversation {conversation_id}, turn {k + 1}"
            if pair[0][1] != "user" or (k < len(wanted) and pair[0][3] != wanted[k]):
                check.out_of_order.append(label)
                continue
            if len(pair) < 2 or pair[1][1] != "assistant":
                check.missing_replies.append(label)
            elif pair[1][2] != "complete" or pair[1][3] != reply_text:
                check.incomplete_replies.append(f"{label}: {pair[1][2]}")
    for conversation_id in expected:
        if conversation_id not in by_conversation:
            check.missing_messages += [s.content for s in expected[conversation_id]]
    return check


async def drive(
    app: AppServer,
    usernames: list[str],
    messages: int,
    duration: float,
    model: str,
) -> tuple[list[Sent], dict[str, Any]]:
    """Every user at once: sign in, open a conversation, send ``messages`` messages."""
    rng = random.Random(7)
    users = await sign_in_users(app.url, usernames)
    # Each user sends one message per slot of duration / messages seconds, at a random
    # moment of the first slot and then a slot apart (sooner if a reply ran late).
    slot = duration / messages
    sent: list[Sent] = []
    state = {"open": 0, "peak": 0}
    rss: list[float] = []
    started = time.perf_counter()

    async def person(user: BenchUser) -> None:
        offset = rng.uniform(0, slot)
        conversation_id = await user.new_conversation(model)
        for k in range(messages):
            wait = started + offset + k * slot - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            content = f"{user.username} message {k + 1} ({secrets.token_hex(4)})"
            state["open"] += 1
            state["peak"] = max(state["peak"], state["open"])
            try:
                result = await user.send(conversation_id, content, model)
            finally:
                state["open"] -= 1
            sent.append(Sent(user.username, conversation_id, content, result))

    async def watch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            rss.append(rss_mb(app.pid))
            await asyncio.sleep(1.0)

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(stop))
    cpu = cpu_seconds(app.pid)
    try:
        await asyncio.gather(*(person(u) for u in users))
    finally:
        wall = time.perf_counter() - started
        stop.set()
        await watcher
        await close_users(users)
    stats = {
        "wall_s": wall,
        "peak_concurrent_streams": state["peak"],
        "app_cpu_percent": 100 * (cpu_seconds(app.pid) - cpu) / wall,
        "app_rss_mb_max": max(rss) if rss else None,
    }
    return sent, stats


def run(
    users: int = 200,
    messages: int = 6,
    duration: float = 60.0,
    db_kind: str = "sqlite",
    redis_url: str = "",
    model: str = MODEL,
    inspect: Callable[[BenchDatabase, list[Sent]], None] | None = None,
) -> dict[str, Any]:
    """Run the load test; ``inspect(db, sent)``, if given, sees the bench database
    before it is dropped."""
    raise_open_files_limit()
    workdir = workdir_for("loadtest")
    extra = {"REDIS_URL": redis_url} if redis_url else {}
    with bench_stack(workdir, db_kind, **extra) as (_upstream, db, env):
        usernames = create_users(env, "load", users)
        with AppServer(env, workdir) as app:
            app.start()
            sent, stats = asyncio.run(drive(app, usernames, messages, duration, model))
            log_tail = app.log_tail(20)
        check = check_database(db, sent, model)
        if inspect is not None:
            inspect(db, sent)
    results = [s.result for s in sent]
    errors = [r for r in results if not r.ok]
    wrong_text = [r for r in results if r.ok and r.text != expected_reply(model)]
    ms = [r.ttft * 1000 for r in results if r.ok and r.ttft is not None]
    totals = [r.total * 1000 for r in results if r.ok and r.total is not None]
    return {
        "db": db_kind,
        "redis": bool(redis_url),
        "users": users,
        "messages_per_user": messages,
        "sent": len(sent),
        "expected": users * messages,
        "errors": len(errors),
        "error_examples": sorted({r.error for r in errors})[:5],
        "wrong_stream_text": len(wrong_text),
        "ttft_ms": summarize(ms),
        "total_ms": summarize(totals),
        **stats,
        "messages_per_s": len(sent) / stats["wall_s"],
        "check": check.as_dict(),
        "passed": not errors
        and not wrong_text
        and check.problems == 0
        and len(sent) == users * messages,
        "load_average": load_average()[0],
        "app_log_tail": log_tail if errors else "",
    }


def report(result: dict[str, Any]) -> str:
    t, total, check = result["ttft_ms"], result["total_ms"], result["check"]
    table = markdown_table(
        ["", ""],
        [
            ["users at once", result["users"]],
            ["messages sent", f"{result['sent']} of {result['expected']}"],
            ["wall time", f"{fmt(result['wall_s'])} s"],
            ["errors", result["errors"]],
            ["TTFT p50 / p99 (ms)", f"{fmt(t['p50'])} / {fmt(t['p99'])}"],
            ["reply total p50 / p99 (ms)", f"{fmt(total['p50'])} / {fmt(total['p99'])}"],
            ["most streams at once", result["peak_concurrent_streams"]],
            [
                "app CPU / RSS max",
                f"{fmt(result['app_cpu_percent'], 0)}% / {fmt(result['app_rss_mb_max'], 0)} MB",
            ],
            [
                "in the database",
                f"{check['conversations']} conversations, "
                f"{check['user_messages']} messages, {check['replies']} replies",
            ],
            [
                "missing / duplicated messages",
                f"{check['missing_messages_count']} / {check['duplicated_messages_count']}",
            ],
            [
                "missing / incomplete replies",
                f"{check['missing_replies_count']} / {check['incomplete_replies_count']}",
            ],
            ["out of order", check["out_of_order_count"]],
            ["result", "PASS" if result["passed"] else "FAIL"],
        ],
    )
    extra = ""
    if result["error_examples"]:
        extra = "\n\nErrors: " + "; ".join(result["error_examples"])
    return table + extra


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The load test: nothing lost under load")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--messages", type=int, default=6, help="messages per user")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds, about")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis", default="", help="a Redis URL for the app's cache")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = run(args.users, args.messages, args.duration, args.db, args.redis)
    write_json(args.json, result)
    print(report(result))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
