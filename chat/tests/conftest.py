from __future__ import annotations

from collections.abc import Iterator

import pytest

from chat.tests.fakes.server import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fresh fake upstream HTTP server on 127.0.0.1 for one test."""
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fake_provider() -> Iterator[type]:
    """The scripted FakeProvider registered as "fake" for one test."""
    from chat.providers import PROVIDER_REGISTRY
    from chat.tests.fakes.fake_provider import FakeProvider

    FakeProvider.scripts = []
    FakeProvider.calls = []
    FakeProvider.cancelled = []
    PROVIDER_REGISTRY["fake"] = FakeProvider
    try:
        yield FakeProvider
    finally:
        PROVIDER_REGISTRY.pop("fake", None)


@pytest.fixture(autouse=True)
def _no_titles_by_a_model(settings: object) -> None:
    """A title written by a model would ask the fake models one more question after
    each first reply; chat/tests/test_titles.py switches it on."""
    settings.CHAT_TITLE_MODEL = "off"  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: object) -> None:
    """Tests create many users; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
