"""Who may use which model (access.services): the rules as a person meets them in the
model menu and when sending."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.checks import run_checks
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from access.models import ModelAccessRule
from access.services import ModelNotAllowedError, amodel_access_for, model_access_for
from chat.services.menu import ProviderChoice

pytestmark = pytest.mark.django_db


def rule(group: Group, provider: str, pattern: str = "*", *, allow: bool = True) -> None:
    ModelAccessRule.objects.create(
        group=group, provider=provider, model_pattern=pattern, allow=allow
    )


def person(name: str, *groups: Group, **flags: bool) -> User:
    user = User.objects.create_user(name, **flags)
    user.groups.add(*groups)
    return User.objects.get(pk=user.pk)  # a fresh object, as a request would have


@pytest.fixture
def interns() -> Group:
    return Group.objects.create(name="interns")


@pytest.fixture
def research() -> Group:
    return Group.objects.create(name="research")


# --- no rules: the default --------------------------------------------------------------


def test_without_any_rule_everyone_may_use_every_model(interns: Group) -> None:
    for user in (person("alone"), person("member", interns)):
        access = model_access_for(user=user)
        assert access.allows("openai", "gpt-4o")
        assert access.allows("anthropic", "claude-sonnet-4-5")
        assert access.reason("openai", "gpt-4o") == ""


def test_a_group_without_rules_does_not_restrict_its_members(
    interns: Group, research: Group
) -> None:
    rule(research, "openai", "gpt-4o-mini")
    access = model_access_for(user=person("intern", interns))
    assert access.allows("anthropic", "claude-sonnet-4-5")


# --- a group with rules -----------------------------------------------------------------


def test_a_group_with_a_rule_may_use_only_what_it_allows(interns: Group) -> None:
    rule(interns, "openai", "gpt-4o-mini")
    access = model_access_for(user=person("intern", interns))
    assert access.allows("openai", "gpt-4o-mini")
    assert not access.allows("openai", "gpt-4o")
    assert not access.allows("anthropic", "claude-sonnet-4-5")


def test_the_rules_of_one_persons_group_leave_other_people_alone(interns: Group) -> None:
    rule(interns, "openai", "gpt-4o-mini")
    person("intern", interns)
    assert model_access_for(user=person("outsider")).allows("anthropic", "claude-sonnet-4-5")


def test_a_person_in_two_groups_may_use_what_either_allows(interns: Group, research: Group) -> None:
    rule(interns, "openai", "gpt-4o-mini")
    rule(research, "anthropic")
    access = model_access_for(user=person("both", interns, research))
    assert access.allows("openai", "gpt-4o-mini")
    assert access.allows("anthropic", "claude-opus-4-1")
    assert not access.allows("openai", "gpt-4o")
    assert not access.allows("google", "gemini-2.5-pro")


def test_a_shell_pattern_matches_the_whole_model_name_ignoring_case(interns: Group) -> None:
    rule(interns, "openai", "GPT-4o*")
    access = model_access_for(user=person("intern", interns))
    assert access.allows("openai", "gpt-4o")
    assert access.allows("openai", "gpt-4o-mini-2024-07-18")
    assert access.allows("OpenAI", "GPT-4O-MINI")
    assert not access.allows("openai", "gpt-4.1")
    assert not access.allows("openai", "chatgpt-4o-latest")  # the start must match too


def test_a_star_provider_rule_covers_every_provider(interns: Group) -> None:
    rule(interns, "*", "*-mini")
    access = model_access_for(user=person("intern", interns))
    assert access.allows("openai", "gpt-4o-mini")
    assert access.allows("mistral", "ministral-mini")
    assert not access.allows("openai", "gpt-4o")


def test_a_refusal_takes_models_out_of_what_the_group_allows(interns: Group) -> None:
    rule(interns, "openai")
    rule(interns, "openai", "gpt-4.5*", allow=False)
    access = model_access_for(user=person("intern", interns))
    assert access.allows("openai", "gpt-4o")
    assert not access.allows("openai", "gpt-4.5-preview")
    assert not access.allows("anthropic", "claude-sonnet-4-5")


def test_a_group_with_only_refusals_may_use_everything_else(interns: Group) -> None:
    rule(interns, "openai", "o1*", allow=False)
    access = model_access_for(user=person("intern", interns))
    assert not access.allows("openai", "o1-pro")
    assert access.allows("openai", "gpt-4o")
    assert access.allows("anthropic", "claude-sonnet-4-5")


def test_another_groups_allowance_outweighs_one_groups_refusal(
    interns: Group, research: Group
) -> None:
    rule(interns, "openai", "o1*", allow=False)
    rule(research, "openai", "o1*")
    access = model_access_for(user=person("both", interns, research))
    assert access.allows("openai", "o1-pro")


# --- CHAT_ACCESS_DEFAULT ----------------------------------------------------------------


def test_default_none_leaves_people_without_rules_no_model(settings, interns: Group) -> None:
    settings.CHAT_ACCESS_DEFAULT = "none"
    access = model_access_for(user=person("alone"))
    assert not access.allows("openai", "gpt-4o")
    assert not access.allows("local", "smollm2-135m-instruct")


def test_default_none_keeps_what_a_persons_group_allows(settings, interns: Group) -> None:
    settings.CHAT_ACCESS_DEFAULT = "none"
    rule(interns, "local")
    access = model_access_for(user=person("intern", interns))
    assert access.allows("local", "smollm2-135m-instruct")
    assert not access.allows("openai", "gpt-4o")


def test_an_unknown_default_value_allows_nothing_and_fails_the_checks(settings) -> None:
    settings.CHAT_ACCESS_DEFAULT = "nobody"
    assert not model_access_for(user=person("alone")).allows("openai", "gpt-4o")
    assert [e.id for e in run_checks() if e.id.startswith("access.")] == ["access.E001"]


def test_anonymous_people_follow_the_default(settings) -> None:
    assert model_access_for(user=AnonymousUser()).allows("openai", "gpt-4o")
    settings.CHAT_ACCESS_DEFAULT = "none"
    assert not model_access_for(user=AnonymousUser()).allows("openai", "gpt-4o")


# --- staff ------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_staff_and_superusers_may_use_every_model_by_default(interns: Group, flag: str) -> None:
    rule(interns, "openai", "gpt-4o-mini")
    access = model_access_for(user=person("admin", interns, **{flag: True}))
    assert access.allows("anthropic", "claude-opus-4-1")


def test_staff_follow_the_rules_when_staff_all_is_off(settings, interns: Group) -> None:
    settings.CHAT_ACCESS_STAFF_ALL = False
    rule(interns, "openai", "gpt-4o-mini")
    access = model_access_for(user=person("admin", interns, is_staff=True, is_superuser=True))
    assert access.allows("openai", "gpt-4o-mini")
    assert not access.allows("anthropic", "claude-opus-4-1")


# --- the refusal ------------------------------------------------------------------------


def test_the_refusal_names_the_model_and_the_providers_label(interns: Group) -> None:
    rule(interns, "anthropic")
    access = model_access_for(user=person("intern", interns))
    assert access.reason("openai", "gpt-4o") == (
        "Your group may not use gpt-4o (OpenAI). Ask an admin."
    )


def test_the_refusal_under_default_none_says_no_group_gives_access(settings) -> None:
    settings.CHAT_ACCESS_DEFAULT = "none"
    reason = model_access_for(user=person("alone")).reason("openai", "gpt-4o")
    assert "gpt-4o (OpenAI)" in reason and "no group of yours" in reason


def test_the_refusal_is_translated(interns: Group) -> None:
    rule(interns, "anthropic")
    access = model_access_for(user=person("intern", interns))
    with translation.override("ru"):
        reason = access.reason("openai", "gpt-4o")
    assert "gpt-4o (OpenAI)" in reason  # names kept whatever the catalogue holds


def test_check_raises_a_permission_error_with_the_refusal(interns: Group) -> None:
    rule(interns, "anthropic")
    access = model_access_for(user=person("intern", interns))
    access.check("anthropic", "claude-sonnet-4-5")
    with pytest.raises(PermissionDenied) as raised:
        access.check("openai", "gpt-4o")
    assert isinstance(raised.value, ModelNotAllowedError)
    assert str(raised.value) == access.reason("openai", "gpt-4o")
    assert "interns" not in str(raised.value)  # no group or rule is revealed


# --- the model menu ---------------------------------------------------------------------


def menu() -> list[ProviderChoice]:
    return [
        ProviderChoice(
            "openai",
            "OpenAI",
            True,
            ["gpt-4o", "gpt-4o-mini", "o1"],
            no_temperature={"o1": "reasoning model"},
            unsupported={"o1": {"temperature": "reasoning model"}, "gpt-4o": {}},
        ),
        ProviderChoice("anthropic", "Anthropic", True, ["claude-sonnet-4-5"]),
        ProviderChoice("google", "Google Gemini", False, [], "GOOGLE_API_KEY is not set"),
    ]


def test_filter_menu_keeps_only_allowed_models_and_drops_empty_providers(
    interns: Group,
) -> None:
    rule(interns, "openai", "o1")
    rule(interns, "openai", "gpt-4o-mini")
    filtered = model_access_for(user=person("intern", interns)).filter_menu(menu())
    assert [(c.name, c.models) for c in filtered] == [("openai", ["gpt-4o-mini", "o1"])]
    assert filtered[0].no_temperature == {"o1": "reasoning model"}
    assert set(filtered[0].unsupported) == {"o1"}


def test_filter_menu_keeps_an_unusable_provider_the_rules_allow(settings, interns: Group) -> None:
    settings.CHAT_ACCESS_STAFF_ALL = False
    rule(interns, "google")
    rule(interns, "openai", "gpt-4o")
    filtered = model_access_for(user=person("admin", interns, is_staff=True)).filter_menu(menu())
    assert [(c.name, c.usable) for c in filtered] == [("openai", True), ("google", False)]


def test_filter_menu_without_rules_returns_the_whole_menu() -> None:
    assert model_access_for(user=person("alone")).filter_menu(menu()) == menu()


def test_filter_models_keeps_their_order(interns: Group) -> None:
    rule(interns, "openai", "gpt-*")
    access = model_access_for(user=person("intern", interns))
    assert access.filter_models("openai", ["o1", "gpt-4o", "o3", "gpt-4.1"]) == [
        "gpt-4o",
        "gpt-4.1",
    ]


# --- cost -------------------------------------------------------------------------------


def test_one_query_whatever_the_number_of_groups_and_rules(interns: Group, research: Group) -> None:
    rule(interns, "openai", "gpt-4o-mini")
    few = person("few", interns)
    model_access_for(user=person("warm", interns))  # reads "are there rules?" once
    with CaptureQueriesContext(connection) as one_group:
        model_access_for(user=few).allows("openai", "gpt-4o")
    more = [Group.objects.create(name=f"g{i}") for i in range(5)]
    for i, group in enumerate(more):
        for j in range(10):
            rule(group, "openai", f"model-{i}-{j}*")
    many = person("many", interns, research, *more)
    model_access_for(user=person("warm2", interns))
    with CaptureQueriesContext(connection) as many_groups:
        access = model_access_for(user=many)
        for i in range(100):
            access.allows("openai", f"model-{i % 5}-{i}")
        access.filter_menu(menu())
    assert len(one_group) == len(many_groups) == 1


def test_a_second_call_in_the_same_request_makes_no_query(interns: Group) -> None:
    rule(interns, "openai")
    user = person("intern", interns)
    first = model_access_for(user=user)
    with CaptureQueriesContext(connection) as queries:
        assert model_access_for(user=user) is first
    assert len(queries) == 0


def test_exempt_staff_cost_no_query(interns: Group) -> None:
    rule(interns, "openai")
    admin = person("admin", interns, is_staff=True)
    with CaptureQueriesContext(connection) as queries:
        model_access_for(user=admin).allows("google", "gemini-2.5-pro")
    assert len(queries) == 0


def test_a_new_request_sees_rules_changed_meanwhile(interns: Group) -> None:
    user = person("intern", interns)
    assert model_access_for(user=user).allows("openai", "gpt-4o")
    rule(interns, "anthropic")
    assert not model_access_for(user=User.objects.get(pk=user.pk)).allows("openai", "gpt-4o")


@pytest.mark.django_db(transaction=True)
async def test_the_async_variant_gives_the_same_answer() -> None:
    from asgiref.sync import sync_to_async

    @sync_to_async
    def setup() -> User:
        interns = Group.objects.create(name="interns")
        rule(interns, "openai", "gpt-4o*")
        return person("intern", interns)

    access = await amodel_access_for(user=await setup())
    assert access.allows("openai", "gpt-4o-mini")
    assert not access.allows("anthropic", "claude-sonnet-4-5")


# --- storage ----------------------------------------------------------------------------


def test_rules_are_stored_lower_case(interns: Group) -> None:
    rule(interns, " OpenAI ", "GPT-4o* ")
    stored = ModelAccessRule.objects.get()
    assert (stored.provider, stored.model_pattern) == ("openai", "gpt-4o*")


def test_with_no_rules_at_all_a_page_pays_no_query_for_them() -> None:
    """Most sites have no rules: whether any exist is kept in the cache (cleared when a
    rule is saved or deleted), so the chat page does not query for them."""
    model_access_for(user=person("first"))  # fills the cache
    second = person("second")
    with CaptureQueriesContext(connection) as queries:
        assert model_access_for(user=second).allows("openai", "gpt-4o")
    assert len(queries) == 0
