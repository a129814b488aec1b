"""The admin for access rules (access.admin): rules on each group's page, beside Django's
own fields, one list of every rule with filters, and how rules combine written on both."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse

from access.models import ModelAccessRule

pytestmark = pytest.mark.django_db

PREFIX = "model_access_rules"
CHANGELIST = "admin:access_modelaccessrule_changelist"


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root-123"))
    return client


@pytest.fixture
def interns() -> Group:
    return Group.objects.create(name="interns")


def group_form(group: Group, rules: list[dict[str, str]], **extra: str) -> dict[str, str]:
    data = {
        "name": group.name,
        f"{PREFIX}-TOTAL_FORMS": str(len(rules)),
        f"{PREFIX}-INITIAL_FORMS": "0",
        f"{PREFIX}-MIN_NUM_FORMS": "0",
        f"{PREFIX}-MAX_NUM_FORMS": "1000",
        **extra,
    }
    for i, fields in enumerate(rules):
        for name, value in fields.items():
            data[f"{PREFIX}-{i}-{name}"] = value
    return data


def test_the_group_page_keeps_djangos_fields_and_shows_the_rules(
    admin_client: Client, interns: Group
) -> None:
    ModelAccessRule.objects.create(group=interns, provider="openai", model_pattern="gpt-4o*")
    url = reverse("admin:auth_group_change", args=[interns.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="name"' in html and 'name="permissions"' in html
    assert "Model access rules" in html and 'value="gpt-4o*"' in html
    assert "A person in several groups with rules may use what any one of them allows" in html


def test_rules_added_on_the_group_page_are_saved(admin_client: Client, interns: Group) -> None:
    permission = Permission.objects.get(codename="view_group")
    url = reverse("admin:auth_group_change", args=[interns.pk])
    response = admin_client.post(
        url,
        group_form(
            interns,
            [
                {"provider": "openai", "model_pattern": "GPT-4o*", "allow": "on"},
                {"provider": "*", "model_pattern": "o1*"},
            ],
            permissions=str(permission.pk),
        ),
    )
    assert response.status_code == 302
    rules = ModelAccessRule.objects.filter(group=interns).order_by("provider")
    assert [(r.provider, r.model_pattern, r.allow) for r in rules] == [
        ("*", "o1*", False),
        ("openai", "gpt-4o*", True),
    ]
    assert list(interns.permissions.all()) == [permission]


def test_a_provider_that_is_not_registered_is_refused(admin_client: Client, interns: Group) -> None:
    url = reverse("admin:auth_group_change", args=[interns.pk])
    response = admin_client.post(
        url, group_form(interns, [{"provider": "nosuch", "model_pattern": "*", "allow": "on"}])
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ModelAccessRule.objects.exists()


def test_the_same_pattern_twice_in_one_group_is_refused(
    admin_client: Client, interns: Group
) -> None:
    ModelAccessRule.objects.create(group=interns, provider="openai", model_pattern="gpt-4o")
    response = admin_client.post(
        reverse("admin:access_modelaccessrule_add"),
        {"group": str(interns.pk), "provider": "openai", "model_pattern": "GPT-4o", "allow": "on"},
    )
    assert response.status_code == 200
    assert "This group already has a rule for this model pattern." in response.content.decode()
    assert ModelAccessRule.objects.count() == 1


def test_the_rule_list_filters_by_group_and_explains_the_rules(
    admin_client: Client, interns: Group
) -> None:
    research = Group.objects.create(name="research")
    ModelAccessRule.objects.create(group=interns, provider="openai", model_pattern="gpt-3.5-turbo")
    ModelAccessRule.objects.create(group=research, provider="anthropic", model_pattern="claude-*")
    html = admin_client.get(reverse(CHANGELIST), {"group__id__exact": research.pk}).content
    text = html.decode()
    assert "claude-*" in text and "gpt-3.5-turbo" not in text
    assert "With no rules at all, everyone may use everything." in text


def test_the_rule_list_filters_refusals(admin_client: Client, interns: Group) -> None:
    ModelAccessRule.objects.create(group=interns, provider="openai", model_pattern="gpt-3.5-turbo")
    ModelAccessRule.objects.create(
        group=interns, provider="openai", model_pattern="o3-pro*", allow=False
    )
    text = admin_client.get(reverse(CHANGELIST), {"allow__exact": "0"}).content.decode()
    assert "o3-pro*" in text and "gpt-3.5-turbo" not in text


def test_an_old_rule_for_a_provider_no_longer_registered_still_opens(
    admin_client: Client, interns: Group
) -> None:
    old = ModelAccessRule.objects.create(group=interns, provider="gone", model_pattern="*")
    url = reverse("admin:access_modelaccessrule_change", args=[old.pk])
    text = admin_client.get(url).content.decode()
    assert "gone (not registered)" in text
    assert "Staff and superusers may use every model" in text
