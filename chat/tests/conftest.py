from __future__ import annotations

from collections.abc import Iterator

import pytest

from chat.tests.fakes.server import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fresh fake upstream HTTP server on 127.0.0.1 for one test."""
    with FakeUpstream() as server:
        yield server
