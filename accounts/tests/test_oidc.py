"""Single sign-on with OpenID Connect (accounts.oidc), through the real flow: the app's
redirect to the provider, the provider's redirect back with a code, the app's calls to a
loopback provider (accounts/tests/fake_oidc.py) for the tokens, the keys and userinfo."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from accounts.oidc import claim_values, subject_username
from accounts.oidc_config import check_oidc_settings, parse_group_map

from .fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider, Identity, new_rsa_key

pytestmark = pytest.mark.django_db

PROVIDER_NAME = "Acme ID"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOidcProvider]:
    with FakeOidcProvider() as fake:
        yield fake


@pytest.fixture
def oidc(settings: Any, provider: FakeOidcProvider) -> FakeOidcProvider:
    """Single sign-on on, pointed at the fake provider, groups from the "groups" claim
    mapped by OIDC_GROUP_MAP, "chat-admins" making staff."""
    provider.refuse_tokens = False
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = PROVIDER_NAME
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ISSUER = provider.url
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = provider.authorization_endpoint
    settings.OIDC_OP_TOKEN_ENDPOINT = provider.token_endpoint
    settings.OIDC_OP_USER_ENDPOINT = provider.userinfo_endpoint
    settings.OIDC_OP_JWKS_ENDPOINT = provider.jwks_uri
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_GROUP_MAP = parse_group_map("chat-engineers=Engineers,chat-admins=Admins")
    settings.OIDC_STAFF_GROUPS = ["chat-admins"]
    settings.OIDC_CREATE_USER = True
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.ModelBackend",
        "accounts.oidc.OidcBackend",
    ]
    return provider


def start(client: Client, next_url: str = "") -> str:
    """Press "Sign in with ...": the URL of the provider the app redirects to."""
    url = reverse("oidc_authentication_init") + (f"?next={next_url}" if next_url else "")
    response = client.get(url)
    assert response.status_code == 302
    return response["Location"]


def sign_in(
    client: Client, provider: FakeOidcProvider, identity: Identity, next_url: str = ""
) -> Any:
    """The whole round trip; the response of the app's callback."""
    return client.get(provider.authorize(start(client, next_url), identity))


def signed_in_user(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


# --- the sign-in page -------------------------------------------------------------------


def test_login_page_has_no_sso_button_when_not_configured(client: Client, settings: Any) -> None:
    settings.OIDC_ENABLED = False
    page = client.get(reverse("login")).content.decode()
    assert "data-sso" not in page
    assert reverse("oidc_authentication_init") not in page


def test_login_page_shows_sign_in_with_the_provider_when_configured(
    client: Client, oidc: FakeOidcProvider
) -> None:
    page = client.get(reverse("login") + "?next=/c/5/").content.decode()
    assert f"Sign in with {PROVIDER_NAME}" in page
    assert f'href="{reverse("oidc_authentication_init")}?next=/c/5/"' in page
    assert CLIENT_SECRET not in page


def test_sso_routes_are_not_found_when_not_configured(client: Client, settings: Any) -> None:
    settings.OIDC_ENABLED = False
    assert client.get(reverse("oidc_authentication_init")).status_code == 404
    assert (
        client.get(reverse("oidc_authentication_callback") + "?code=x&state=y").status_code == 404
    )


def test_sign_in_redirects_to_the_provider_with_state_nonce_and_pkce(
    client: Client, oidc: FakeOidcProvider
) -> None:
    location = start(client)
    parts = urlsplit(location)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == oidc.authorization_endpoint
    assert query["client_id"] == CLIENT_ID
    assert query["scope"] == "openid email profile"
    assert query["redirect_uri"] == "http://testserver" + reverse("oidc_authentication_callback")
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert query["code_challenge_method"] == "S256"
    assert CLIENT_SECRET not in location


# --- signing in -------------------------------------------------------------------------


def test_first_sign_in_creates_the_user_and_signs_them_in(
    client: Client, oidc: FakeOidcProvider
) -> None:
    response = sign_in(client, oidc, Identity(sub="u-100", email="ada@example.com"))
    assert (response.status_code, response["Location"]) == (302, reverse("chat:index"))
    user = signed_in_user(client)
    assert user is not None
    assert user.username == "oidc-u-100"
    assert (user.email, user.first_name, user.last_name) == ("ada@example.com", "Ada", "Lovelace")
    assert not user.has_usable_password()
    assert client.get(reverse("chat:index")).status_code == 200


def test_sign_in_goes_on_to_the_page_asked_for(client: Client, oidc: FakeOidcProvider) -> None:
    response = sign_in(client, oidc, Identity(sub="u-101"), next_url="/accounts/keys/")
    assert response["Location"] == "/accounts/keys/"


def test_sign_in_ignores_a_next_url_on_another_site(client: Client, oidc: FakeOidcProvider) -> None:
    response = sign_in(client, oidc, Identity(sub="u-102"), next_url="https://evil.example/")
    assert response["Location"] == reverse("chat:index")


def test_second_sign_in_finds_the_same_user(client: Client, oidc: FakeOidcProvider) -> None:
    sign_in(client, oidc, Identity(sub="u-103", email="first@example.com"))
    first = signed_in_user(client)
    client.logout()
    sign_in(client, oidc, Identity(sub="u-103", email="changed@example.com"))
    second = signed_in_user(client)
    assert second == first
    assert User.objects.filter(username__startswith="oidc-").count() == 1
    assert second is not None and second.email == "changed@example.com"


def test_token_request_authenticates_the_client_and_sends_the_pkce_verifier(
    client: Client, oidc: FakeOidcProvider
) -> None:
    oidc.token_requests.clear()
    sign_in(client, oidc, Identity(sub="u-104"))
    (request,) = oidc.token_requests
    assert request["authorization"].startswith("Basic ")
    assert "client_secret" not in request["form"]
    assert len(request["form"]["code_verifier"]) >= 43


def test_client_secret_post_sends_the_secret_in_the_form(
    client: Client, oidc: FakeOidcProvider, settings: Any
) -> None:
    settings.OIDC_TOKEN_USE_BASIC_AUTH = False
    oidc.token_requests.clear()
    sign_in(client, oidc, Identity(sub="u-105"))
    assert oidc.token_requests[0]["form"]["client_secret"] == CLIENT_SECRET
    assert signed_in_user(client) is not None


def test_claims_come_from_the_id_token_when_there_is_no_userinfo_endpoint(
    client: Client, oidc: FakeOidcProvider, settings: Any
) -> None:
    settings.OIDC_OP_USER_ENDPOINT = ""
    sign_in(client, oidc, Identity(sub="u-106", email="token@example.com", groups=["chat-admins"]))
    user = signed_in_user(client)
    assert user is not None and user.email == "token@example.com" and user.is_staff


# --- groups and staff -------------------------------------------------------------------


def test_groups_are_mapped_from_the_claim_and_follow_it_at_every_sign_in(
    client: Client, oidc: FakeOidcProvider
) -> None:
    sign_in(client, oidc, Identity(sub="u-200", groups=["chat-engineers", "chat-admins", "other"]))
    user = signed_in_user(client)
    assert user is not None
    assert set(user.groups.values_list("name", flat=True)) == {"Engineers", "Admins"}
    # A group the map does not name, given in the admin, is left alone.
    user.groups.add(Group.objects.create(name="Beta testers"))
    client.logout()
    sign_in(client, oidc, Identity(sub="u-200", groups=["chat-engineers"]))
    assert set(user.groups.values_list("name", flat=True)) == {"Engineers", "Beta testers"}


def test_a_sign_in_without_the_groups_claim_removes_the_mapped_groups(
    client: Client, oidc: FakeOidcProvider
) -> None:
    sign_in(client, oidc, Identity(sub="u-201", groups=["chat-engineers"]))
    client.logout()
    sign_in(client, oidc, Identity(sub="u-201", groups=None))
    user = signed_in_user(client)
    assert user is not None and not user.groups.exists()


def test_without_a_map_claim_values_are_group_names(
    client: Client, oidc: FakeOidcProvider, settings: Any
) -> None:
    settings.OIDC_GROUP_MAP = None
    Group.objects.create(name="research")
    Group.objects.create(name="sales")
    sign_in(client, oidc, Identity(sub="u-202", groups=["research", "no-such-group"]))
    user = signed_in_user(client)
    assert user is not None
    assert list(user.groups.values_list("name", flat=True)) == ["research"]
    assert not Group.objects.filter(name="no-such-group").exists()
    client.logout()
    sign_in(client, oidc, Identity(sub="u-202", groups=["sales"]))
    assert list(user.groups.values_list("name", flat=True)) == ["sales"]


def test_nested_groups_claim_is_read_by_its_dotted_path(
    client: Client, oidc: FakeOidcProvider, settings: Any
) -> None:
    settings.OIDC_GROUPS_CLAIM = "realm_access.roles"
    identity = Identity(sub="u-203", userinfo_claims={"realm_access": {"roles": ["chat-admins"]}})
    sign_in(client, oidc, identity)
    user = signed_in_user(client)
    assert user is not None and list(user.groups.values_list("name", flat=True)) == ["Admins"]


def test_staff_follows_the_staff_groups_at_every_sign_in(
    client: Client, oidc: FakeOidcProvider
) -> None:
    sign_in(client, oidc, Identity(sub="u-204", groups=["chat-admins"]))
    user = signed_in_user(client)
    assert user is not None and user.is_staff
    client.logout()
    sign_in(client, oidc, Identity(sub="u-204", groups=["chat-engineers"]))
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser


def test_staff_is_left_alone_without_staff_groups(
    client: Client, oidc: FakeOidcProvider, settings: Any
) -> None:
    settings.OIDC_STAFF_GROUPS = []
    User.objects.create_user("admin-made", email="boss@example.com", is_staff=True)
    sign_in(client, oidc, Identity(sub="u-205", email="boss@example.com", groups=[]))
    user = signed_in_user(client)
    assert user is not None and user.username == "admin-made" and user.is_staff


def test_a_superuser_stays_staff_outside_the_staff_groups(
    client: Client, oidc: FakeOidcProvider
) -> None:
    User.objects.create_superuser("root", email="root@example.com", password="root-pass-123")
    sign_in(client, oidc, Identity(sub="u-206", email="root@example.com", groups=[]))
    user = signed_in_user(client)
    assert user is not None and user.username == "root" and user.is_staff


# --- which account ----------------------------------------------------------------------


def test_a_verified_email_signs_in_to_the_existing_account(
    client: Client, oidc: FakeOidcProvider
) -> None:
    existing = User.objects.create_user("grace", email="Grace@Example.com", password="pw-123456")
    sign_in(client, oidc, Identity(sub="u-300", email="grace@example.com", email_verified="true"))
    assert signed_in_user(client) == existing
    assert not User.objects.filter(username__startswith="oidc-").exists()
    existing.refresh_from_db()
    assert existing.check_password("pw-123456")  # the password still works


def test_an_unverified_email_does_not_reach_the_existing_account(
    client: Client, oidc: FakeOidcProvider
) -> None:
    existing = User.objects.create_user("hopper", email="hopper@example.com", password="pw-123456")
    sign_in(client, oidc, Identity(sub="u-301", email="hopper@example.com", email_verified=False))
    user = signed_in_user(client)
    assert user is not None and user != existing and user.username == "oidc-u-301"


def test_the_subject_wins_over_the_email(client: Client, oidc: FakeOidcProvider) -> None:
    sign_in(client, oidc, Identity(sub="u-302", email="one@example.com"))
    mine = signed_in_user(client)
    client.logout()
    User.objects.create_user("someone", email="two@example.com", password="pw-123456")
    sign_in(client, oidc, Identity(sub="u-302", email="two@example.com"))
    assert signed_in_user(client) == mine


def test_an_email_shared_by_two_accounts_is_refused(client: Client, oidc: FakeOidcProvider) -> None:
    User.objects.create_user("twin1", email="twin@example.com")
    User.objects.create_user("twin2", email="twin@example.com")
    response = sign_in(client, oidc, Identity(sub="u-303", email="twin@example.com"))
    assert response.status_code == 403
    assert "Several accounts" in response.content.decode()
    assert signed_in_user(client) is None


def test_a_password_account_with_the_subjects_name_is_refused(
    client: Client, oidc: FakeOidcProvider
) -> None:
    User.objects.create_user("oidc-u-304", password="squatter-pass-1")
    response = sign_in(client, oidc, Identity(sub="u-304"))
    assert response.status_code == 403
    assert signed_in_user(client) is None


def test_no_new_accounts_when_creating_users_is_off(
    client: Client, oidc: FakeOidcProvider, settings: Any
) -> None:
    settings.OIDC_CREATE_USER = False
    response = sign_in(client, oidc, Identity(sub="u-305", email="new@example.com"))
    assert response.status_code == 403
    assert "no account here" in response.content.decode()
    assert not User.objects.filter(username="oidc-u-305").exists()
    # An account an administrator made for the subject is used.
    User.objects.create_user("oidc-u-305")
    sign_in(client, oidc, Identity(sub="u-305"))
    assert signed_in_user(client) == User.objects.get(username="oidc-u-305")


def test_a_switched_off_account_is_refused(client: Client, oidc: FakeOidcProvider) -> None:
    User.objects.create_user("oidc-u-306", is_active=False)
    response = sign_in(client, oidc, Identity(sub="u-306", groups=["chat-admins"]))
    assert response.status_code == 403
    assert signed_in_user(client) is None
    assert not User.objects.get(username="oidc-u-306").is_staff


# --- refused answers --------------------------------------------------------------------


def assert_refused(response: Any, client: Client, status: int) -> None:
    assert response.status_code == status
    page = response.content.decode()
    assert f"Sign-in with {PROVIDER_NAME} failed" in page
    assert "data-sso-failed" in page
    assert signed_in_user(client) is None
    assert not User.objects.filter(username__startswith="oidc-").exists()


def test_a_callback_with_an_unknown_state_is_refused(
    client: Client, oidc: FakeOidcProvider
) -> None:
    callback = oidc.authorize(start(client), Identity(sub="u-400"))
    forged = callback.replace("state=", "state=x")
    response = client.get(forged)
    assert_refused(response, client, 400)
    assert "expired or was already used" in response.content.decode()


def test_a_callback_in_another_browser_is_refused(client: Client, oidc: FakeOidcProvider) -> None:
    callback = oidc.authorize(start(client), Identity(sub="u-401"))
    other = Client()
    assert_refused(other.get(callback), other, 400)


def test_a_callback_used_twice_is_refused(client: Client, oidc: FakeOidcProvider) -> None:
    callback = oidc.authorize(start(client), Identity(sub="u-402"))
    assert client.get(callback).status_code == 302
    client.logout()
    response = client.get(callback)
    assert response.status_code == 400
    assert signed_in_user(client) is None


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param(Identity(sub="u-410", signing_key=new_rsa_key()), id="bad-signature"),
        pytest.param(
            Identity(sub="u-411", id_token_claims={"aud": "another-app"}), id="wrong-audience"
        ),
        pytest.param(
            Identity(sub="u-412", id_token_claims={"aud": [CLIENT_ID, "another-app"]}),
            id="several-audiences-without-azp",
        ),
        pytest.param(
            Identity(sub="u-413", id_token_claims={"iss": "http://127.0.0.1:1/other"}),
            id="wrong-issuer",
        ),
        pytest.param(Identity(sub="u-414", id_token_claims={"exp": 1_000_000_000}), id="expired"),
        pytest.param(Identity(sub="u-415", id_token_claims={"exp": None}), id="no-expiry"),
        pytest.param(Identity(sub="u-416", nonce="a-nonce-from-another-sign-in"), id="wrong-nonce"),
        pytest.param(
            Identity(sub="u-417", userinfo_claims={"sub": "someone-else"}),
            id="userinfo-about-another-subject",
        ),
    ],
)
def test_an_answer_that_does_not_check_out_is_refused(
    client: Client, oidc: FakeOidcProvider, identity: Identity
) -> None:
    response = sign_in(client, oidc, identity)
    assert_refused(response, client, 403)
    assert "could not be verified" in response.content.decode()


def test_the_provider_refusing_the_sign_in_is_said(client: Client, oidc: FakeOidcProvider) -> None:
    start(client)
    state = next(iter(client.session["oidc_states"]))
    response = client.get(
        reverse("oidc_authentication_callback") + f"?error=access_denied&state={state}"
    )
    assert_refused(response, client, 403)
    assert f"{PROVIDER_NAME} did not sign you in" in response.content.decode()


def test_a_refused_token_request_never_shows_or_logs_the_secret(
    client: Client, oidc: FakeOidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    oidc.refuse_tokens = True
    with caplog.at_level(logging.DEBUG):
        response = sign_in(client, oidc, Identity(sub="u-420"))
    assert_refused(response, client, 502)
    assert "could not be reached" in response.content.decode()
    assert CLIENT_SECRET not in response.content.decode()
    assert "single sign-on refused" in caplog.text
    assert CLIENT_SECRET not in caplog.text


def test_an_unreachable_provider_is_said(
    client: Client, oidc: FakeOidcProvider, settings: Any
) -> None:
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"  # discard port: refused
    response = sign_in(client, oidc, Identity(sub="u-421"))
    assert_refused(response, client, 502)


# --- password sign-in -------------------------------------------------------------------


def test_password_sign_in_still_works_with_sso_on(client: Client, oidc: FakeOidcProvider) -> None:
    user = User.objects.create_user("linus", password="pw-linus-123")
    response = client.post(reverse("login"), {"username": "linus", "password": "pw-linus-123"})
    assert response.status_code == 302
    assert signed_in_user(client) == user


def test_a_password_sign_in_with_a_code_in_the_url_does_not_reach_the_provider(
    client: Client, oidc: FakeOidcProvider
) -> None:
    User.objects.create_user("mallory", password="pw-mallory-1")
    oidc.token_requests.clear()
    response = client.post(
        reverse("login") + "?code=stolen&state=forged", {"username": "mallory", "password": "wrong"}
    )
    assert response.status_code == 200
    assert oidc.token_requests == []
    assert signed_in_user(client) is None


# --- pieces -----------------------------------------------------------------------------


def test_subject_username_keeps_short_plain_subjects_and_hashes_others() -> None:
    assert subject_username("248289761001") == "oidc-248289761001"
    long_name = subject_username("x" * 200)
    assert long_name.startswith("oidc-sha256-") and len(long_name) <= 150
    assert subject_username("a/b c") == subject_username("a/b c") != subject_username("a/b d")
    assert subject_username("sha256-" + "0" * 64) != "oidc-sha256-" + "0" * 64


def test_claim_values_reads_lists_strings_and_paths() -> None:
    claims = {"groups": ["a", 2, True, None], "role": "admin", "ns": {"roles": ["r"]}}
    assert claim_values(claims, "groups") == ["a", "2"]
    assert claim_values(claims, "role") == ["admin"]
    assert claim_values(claims, "ns.roles") == ["r"]
    assert claim_values(claims, "missing") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        (
            "eng=Engineers, ops=Engineers,ops=On call",
            {"eng": ("Engineers",), "ops": ("Engineers", "On call")},
        ),
        ("cn=admins=Admins", {"cn=admins": ("Admins",)}),
        ('{"cn=a,ou=g": "A", "b": ["B", "C"]}', {"cn=a,ou=g": ("A",), "b": ("B", "C")}),
    ],
)
def test_parse_group_map_reads_both_forms(value: str, expected: Any) -> None:
    assert parse_group_map(value) == expected


@pytest.mark.parametrize(
    "value", ["eng", "=Group", "eng=", '{"a": 1}', "{not json", '["a"]', "a=" + "x" * 151]
)
def test_parse_group_map_refuses_what_it_cannot_read(value: str) -> None:
    with pytest.raises(ValueError, match="OIDC_GROUP_MAP"):
        parse_group_map(value)


def valid_settings(**changes: Any) -> dict[str, Any]:
    values = {
        "OIDC_CLIENT_ID": "app",
        "OIDC_CLIENT_SECRET": "top-secret-value",
        "OIDC_ISSUER": "https://id.example.com",
        "OIDC_AUTHORIZATION_ENDPOINT": "https://id.example.com/auth",
        "OIDC_TOKEN_ENDPOINT": "https://id.example.com/token",
        "OIDC_USERINFO_ENDPOINT": "",
        "OIDC_JWKS_URI": "https://id.example.com/jwks",
        "OIDC_SIGN_ALGO": "RS256",
        "OIDC_TOKEN_AUTH_METHOD": "client_secret_basic",
        "OIDC_GROUPS_CLAIM": "",
        "OIDC_STAFF_GROUPS": [],
        "OIDC_GROUP_MAP": None,
    }
    return {**values, **changes}


def test_check_oidc_settings_accepts_a_complete_configuration_and_an_empty_one() -> None:
    check_oidc_settings(valid_settings())
    check_oidc_settings(valid_settings(OIDC_CLIENT_ID="", OIDC_ISSUER=""))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"OIDC_TOKEN_ENDPOINT": "", "OIDC_JWKS_URI": ""},
            "OIDC_TOKEN_ENDPOINT, OIDC_JWKS_URI are empty",
        ),
        ({"OIDC_ISSUER": ""}, "OIDC_ISSUER is empty"),
        (
            {"OIDC_TOKEN_ENDPOINT": "http://id.example.com/token"},
            "OIDC_TOKEN_ENDPOINT must be an https",
        ),
        ({"OIDC_SIGN_ALGO": "none"}, "OIDC_SIGN_ALGO"),
        ({"OIDC_TOKEN_AUTH_METHOD": "private_key_jwt"}, "OIDC_TOKEN_AUTH_METHOD"),
        ({"OIDC_STAFF_GROUPS": ["admins"]}, "OIDC_STAFF_GROUPS needs OIDC_GROUPS_CLAIM"),
    ],
)
def test_check_oidc_settings_names_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        check_oidc_settings(valid_settings(**changes))
    assert "top-secret-value" not in str(caught.value)


def test_check_oidc_settings_allows_plain_http_to_this_machine_only() -> None:
    check_oidc_settings(valid_settings(OIDC_TOKEN_ENDPOINT="http://127.0.0.1:8080/token"))
    check_oidc_settings(valid_settings(OIDC_TOKEN_ENDPOINT="http://localhost/token"))


def test_oidc_endpoints_command_prints_the_settings(
    provider: FakeOidcProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("oidc_endpoints", provider.url + "/")
    lines = capsys.readouterr().out.splitlines()
    assert f"OIDC_ISSUER={provider.url}" in lines
    assert f"OIDC_TOKEN_ENDPOINT={provider.token_endpoint}" in lines
    assert f"OIDC_JWKS_URI={provider.jwks_uri}" in lines


def test_oidc_endpoints_command_refuses_another_issuer(provider: FakeOidcProvider) -> None:
    with pytest.raises(CommandError, match="another issuer"):
        call_command("oidc_endpoints", provider.url + "/realms/x")
