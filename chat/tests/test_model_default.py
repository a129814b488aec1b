"""The model a new chat starts on (issue 9): the one this person used last, else the
admin's default, else the first usable cloud model; the local toy model only when
nothing else is usable. And the menu names each model with its provider."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from chat.models import Conversation
from chat.services import ProviderChoice, model_default_for
from siteconfig.models import SiteConfiguration

pytestmark = pytest.mark.django_db

LOCAL = ProviderChoice("local", "Local model", True, ["smollm2-135m-instruct"])
FAKE = ProviderChoice("fake", "Fake", True, ["fake-small", "fake-large"])
OFF = ProviderChoice("openai", "OpenAI", False, [], "no API key")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


@pytest.fixture
def alice(fake_provider: type) -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


def test_a_cloud_model_comes_before_the_local_toy_model(alice: User, settings: Any) -> None:
    settings.CHAT_DEFAULT_PROVIDER = ""
    assert model_default_for(user=alice, menu=[LOCAL, OFF, FAKE]) == ("fake", "fake-small")


def test_the_local_model_when_nothing_else_is_usable(alice: User, settings: Any) -> None:
    settings.CHAT_DEFAULT_PROVIDER = ""
    assert model_default_for(user=alice, menu=[LOCAL, OFF]) == ("local", "smollm2-135m-instruct")


def test_the_model_this_person_used_last_wins(alice: User, settings: Any) -> None:
    settings.CHAT_DEFAULT_PROVIDER = "local"
    Conversation.objects.create(owner=alice, provider="fake", model="fake-large")
    assert model_default_for(user=alice, menu=[LOCAL, FAKE]) == ("fake", "fake-large")
    bob = User.objects.create_user("bob", password="pw-bob-12345")
    assert model_default_for(user=bob, menu=[LOCAL, FAKE]) == ("local", "smollm2-135m-instruct")


def test_a_last_model_that_is_gone_falls_back_to_the_default(alice: User, settings: Any) -> None:
    settings.CHAT_DEFAULT_PROVIDER = ""
    Conversation.objects.create(owner=alice, provider="openai", model="gpt-4o-mini")
    assert model_default_for(user=alice, menu=[LOCAL, OFF, FAKE]) == ("fake", "fake-small")


def test_the_admins_default_beats_the_environment(alice: User, settings: Any) -> None:
    settings.CHAT_DEFAULT_PROVIDER, settings.CHAT_DEFAULT_MODEL = "fake", "fake-small"
    assert model_default_for(user=alice, menu=[LOCAL, FAKE]) == ("fake", "fake-small")
    SiteConfiguration(default_provider="fake", default_model="fake-large").save()
    assert model_default_for(user=alice, menu=[LOCAL, FAKE]) == ("fake", "fake-large")
    SiteConfiguration(default_provider="local", default_model="").save()
    assert model_default_for(user=alice, menu=[LOCAL, FAKE]) == ("local", "smollm2-135m-instruct")


def test_the_site_configuration_is_edited_in_the_admin(settings: Any) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-12345")
    client = Client()
    client.force_login(admin)
    url = reverse("admin:siteconfig_siteconfiguration_add")
    response = client.post(url, {"default_provider": "fake", "default_model": "fake-large"})
    assert response.status_code == 302
    assert SiteConfiguration.current().default_model == "fake-large"
    assert client.get(url).status_code == 403  # one row only


def test_the_menu_names_each_model_with_its_provider(alice: User, settings: Any) -> None:
    settings.CHAT_DEFAULT_PROVIDER = ""
    client = Client()
    client.force_login(alice)
    html = client.get(reverse("chat:index")).content.decode()
    assert ">Fake · fake-small</option>" in html
    assert re.search(r'value="fake::fake-small"[^>]* selected>', html)


def test_a_model_that_takes_no_temperature_says_so_in_the_menu(alice: User, settings: Any) -> None:
    client = Client()
    client.force_login(alice)
    html = client.get(reverse("chat:index")).content.decode()
    assert (
        'value="fake::fake-large" data-no-temperature="this model uses a fixed temperature"' in html
    )
    assert 'value="fake::fake-small" data-no-temperature' not in html


@pytest.mark.parametrize("staff", [False, True], ids=["person", "staff"])
def test_only_staff_see_unusable_providers_and_how_to_enable_them(
    alice: User, settings: Any, staff: bool
) -> None:
    settings.OPENAI_API_KEY = ""
    alice.is_staff = staff
    alice.save()
    client = Client()
    client.force_login(alice)
    html = client.get(reverse("chat:index")).content.decode()
    assert ("OPENAI_API_KEY" in html) is staff
    assert ('data-provider="openai"' in html) is staff
    assert ">Fake · fake-small</option>" in html
