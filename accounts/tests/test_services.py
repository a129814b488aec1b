"""API keys' services (accounts.services): create, authenticate, revoke."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import (
    aapi_key_authenticate,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    api_keys_revoke,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob")


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("sam", is_staff=True)


# --- create -----------------------------------------------------------------------------


def test_create_returns_a_long_random_key_in_the_documented_format(alice: User) -> None:
    _, raw = api_key_create(user=alice, name="laptop")
    assert raw.startswith("cai_")
    assert len(raw) == 4 + 43  # token_urlsafe(32): 43 characters, 256 bits
    assert api_key_create(user=alice, name="laptop")[1] != raw


def test_create_stores_only_the_hash_and_a_short_prefix(alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert stored["secret_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert stored["prefix"] == raw[:12]
    assert not any(raw in str(value) for value in stored.values())


def test_create_keeps_the_name_and_expiry(alice: User) -> None:
    expires = timezone.now() + timedelta(days=30)
    key, _ = api_key_create(user=alice, name="  CI  ", expires_at=expires)
    key.refresh_from_db()
    assert (key.user, key.name, key.expires_at) == (alice, "CI", expires)
    assert key.last_used_at is None and key.revoked_at is None


def test_create_does_not_log_the_key(alice: User, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        key, raw = api_key_create(user=alice, name="laptop")
        api_key_authenticate(raw)
        api_key_revoke(key_id=key.pk, by=alice)
        api_key_authenticate(raw)
    assert caplog.records  # creation and revocation are logged...
    assert raw not in caplog.text  # ...without the key
    assert raw[12:20] not in caplog.text


# --- authenticate -----------------------------------------------------------------------


def test_the_right_key_authenticates_as_its_owner(alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    found = api_key_authenticate(raw)
    assert found == key
    assert found.user == alice


@pytest.mark.parametrize(
    "attempt",
    [
        "",
        "cai_",
        "not-a-key",
        "Bearer x",
        "cai_" + "A" * 43,
        "cai_" + "é" * 43,
        "cai_" + "A" * 10_000,
    ],
)
def test_an_unknown_or_malformed_key_is_refused(alice: User, attempt: str) -> None:
    api_key_create(user=alice, name="laptop")
    assert api_key_authenticate(attempt) is None


def test_a_key_differing_in_one_character_is_refused(alice: User) -> None:
    _, raw = api_key_create(user=alice, name="laptop")
    last = "A" if raw[-1] != "A" else "B"
    assert api_key_authenticate(raw[:-1] + last) is None
    assert api_key_authenticate(raw.upper() if raw != raw.upper() else raw.lower()) is None


def test_a_revoked_key_is_refused_at_once(alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    assert api_key_authenticate(raw) is not None  # read once: nothing may keep it alive
    api_key_revoke(key_id=key.pk, by=alice)
    assert api_key_authenticate(raw) is None


def test_a_key_revoked_by_another_process_is_refused_at_once(alice: User) -> None:
    """Revocation written straight to the database (as another worker would) counts on
    the next check: there is no per-process cache."""
    key, raw = api_key_create(user=alice, name="laptop")
    assert api_key_authenticate(raw) is not None
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert api_key_authenticate(raw) is None


def test_an_expired_key_is_refused(alice: User) -> None:
    _, raw = api_key_create(
        user=alice, name="old", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert api_key_authenticate(raw) is None


def test_a_key_before_its_expiry_works(alice: User) -> None:
    _, raw = api_key_create(user=alice, name="new", expires_at=timezone.now() + timedelta(hours=1))
    assert api_key_authenticate(raw) is not None


def test_a_key_of_a_deactivated_account_is_refused(alice: User) -> None:
    _, raw = api_key_create(user=alice, name="laptop")
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert api_key_authenticate(raw) is None


@pytest.mark.django_db(transaction=True)
async def test_the_async_form_authenticates_too(alice: User) -> None:
    key, raw = await sync_to_async(api_key_create)(user=alice, name="laptop")
    found = await aapi_key_authenticate(raw)
    assert found is not None and found.pk == key.pk and found.user.pk == alice.pk
    assert await aapi_key_authenticate(raw + "x") is None


# --- last used ----------------------------------------------------------------------------


def test_authenticate_records_when_the_key_was_last_used(alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    before = timezone.now()
    api_key_authenticate(raw)
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_at >= before


def test_last_used_is_written_at_most_once_a_minute(alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    api_key_authenticate(raw)
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert api_key_authenticate(raw) is not None
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(queries) == 5  # one read per request, nothing else


def test_last_used_is_written_again_after_a_minute(alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    long_ago = timezone.now() - timedelta(seconds=61)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=long_ago)
    api_key_authenticate(raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > long_ago


# --- revoke -----------------------------------------------------------------------------


def test_the_owner_revokes_their_key(alice: User) -> None:
    key, _ = api_key_create(user=alice, name="laptop")
    revoked = api_key_revoke(key_id=key.pk, by=alice)
    assert revoked.revoked_at is not None
    assert ApiKey.objects.get(pk=key.pk).state == ApiKey.State.REVOKED


def test_staff_revoke_anyones_key(alice: User, staff: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    api_key_revoke(key_id=key.pk, by=staff)
    assert api_key_authenticate(raw) is None


def test_another_person_cannot_revoke_a_key(alice: User, bob: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    with pytest.raises(ApiKey.DoesNotExist):
        api_key_revoke(key_id=key.pk, by=bob)
    assert api_key_authenticate(raw) is not None


def test_revoking_twice_keeps_the_first_time(alice: User) -> None:
    key, _ = api_key_create(user=alice, name="laptop")
    first = api_key_revoke(key_id=key.pk, by=alice).revoked_at
    assert api_key_revoke(key_id=key.pk, by=alice).revoked_at == first


def test_revoking_several_skips_what_is_not_allowed(alice: User, bob: User) -> None:
    mine, _ = api_key_create(user=alice, name="mine")
    theirs, _ = api_key_create(user=bob, name="theirs")
    assert api_keys_revoke(key_ids=[mine.pk, theirs.pk], by=alice) == 1
    assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None
    assert api_keys_revoke(key_ids=[mine.pk], by=alice) == 0  # already revoked


def test_state_says_active_expired_or_revoked(alice: User) -> None:
    now = timezone.now()
    key, _ = api_key_create(user=alice, name="k", expires_at=now + timedelta(days=1))
    assert key.state_at(now) == ApiKey.State.ACTIVE
    assert key.state_at(now + timedelta(days=2)) == ApiKey.State.EXPIRED
    key.revoked_at = now
    assert key.state_at(now + timedelta(days=2)) == ApiKey.State.REVOKED
