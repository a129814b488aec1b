"""Fixtures of the transfer tests: people, a media folder per test, the sample files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    """Attachments are stored under a fresh folder for the test."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


def fixture_bytes(name: str) -> bytes:
    """The bytes of a sample file in fixtures/."""
    return (FIXTURES / name).read_bytes()


def png_bytes(
    color: tuple[int, int, int] = (200, 100, 50), size: tuple[int, int] = (4, 3)
) -> bytes:
    """A small valid PNG image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def fake_provider() -> Any:
    """The chat tests' scripted provider, registered as "fake" (models fake-small,
    fake-large...) for one test: folders name a model the registry knows."""
    from chat.providers import PROVIDER_REGISTRY
    from chat.tests.fakes.fake_provider import FakeProvider

    PROVIDER_REGISTRY["fake"] = FakeProvider
    try:
        yield FakeProvider
    finally:
        PROVIDER_REGISTRY.pop("fake", None)
