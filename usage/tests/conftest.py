from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@pytest.fixture(autouse=True)
def _fresh_price_cache() -> Iterator[None]:
    """Each test starts with no cached price (the cache is per process)."""
    from usage.prices import price_cache_clear

    price_cache_clear()
    yield
    price_cache_clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: object) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture
def user(db: None) -> User:
    from django.contrib.auth.models import User

    return User.objects.create_user("alice", password="pw-alice-123")
