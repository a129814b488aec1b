"""Histories the app can produce after failed, empty or stopped replies, which an API
that demands alternating roles (or a first user turn, or a last user turn) rejects as
they are. Each provider's tests check that its mapper turns every one into a request the
API accepts (DESIGN.md: the history a provider receives is valid for it)."""

from __future__ import annotations

MESSY_HISTORIES: dict[str, list[dict[str, str]]] = {
    # A reply failed and was left out; the person asked again.
    "user-user": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    # The reply came back empty (a filter, a refusal) and was stored empty.
    "user-empty-user": [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Two"},
    ],
    # The history starts with the app's greeting.
    "assistant-user": [
        {"role": "assistant", "content": "What's your name?"},
        {"role": "user", "content": "Bob"},
    ],
    # The reply to go on from is the last turn.
    "user-assistant": [
        {"role": "user", "content": "Write a poem"},
        {"role": "assistant", "content": "Roses are red"},
    ],
}
