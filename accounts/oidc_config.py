"""Reading and checking the single sign-on (OpenID Connect) settings.

Pure Python with no Django import, so that ``chat_ai/settings.py`` can use it while the
settings are being read: a wrong value stops the start with a sentence naming the
variable, as the other settings do. The sign-in itself is in ``accounts.oidc``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from urllib.parse import urlsplit

# Signing algorithms mozilla-django-oidc verifies: RS*/ES* with the provider's public keys
# (OIDC_JWKS_URI), HS256 with the client secret.
SIGN_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "HS256")
# How the client authenticates at the token endpoint (OpenID Connect Core 9).
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# Django's Group.name holds at most this many characters.
GROUP_NAME_MAX_LENGTH = 150

GroupMap = dict[str, tuple[str, ...]]


def parse_group_map(value: str) -> GroupMap | None:
    """The OIDC_GROUP_MAP setting: which Django groups each value of the groups claim
    gives.

    ``value`` is either a JSON object (``{"claim value": "Django group"}``, or a list of
    group names as the value) or ``claimvalue=DjangoGroup,...``; one claim value may
    appear several times. An empty ``value`` gives None: each claim value is then the
    name of a Django group.

    Returns ``{claim value: (Django group names, ...)}``. Raises ``ValueError`` (naming
    OIDC_GROUP_MAP, without the value) when it is neither form, or a name is empty or
    longer than a Django group name can be.
    """
    value = value.strip()
    if not value:
        return None
    pairs: list[tuple[str, str]] = []
    if value.startswith("{"):
        try:
            loaded = json.loads(value)
        except ValueError as e:
            raise ValueError(f"OIDC_GROUP_MAP is not valid JSON: {e.msg}") from None
        if not isinstance(loaded, dict):
            raise ValueError("OIDC_GROUP_MAP must be a JSON object")
        for claim_value, groups in loaded.items():
            names = [groups] if isinstance(groups, str) else groups
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(
                    "OIDC_GROUP_MAP: each value must be a group name or a list of group names"
                )
            pairs.extend((claim_value, name) for name in names)
    else:
        for item in value.split(","):
            if not item.strip():
                continue
            claim_value, sep, name = item.rpartition("=")
            if not sep:
                raise ValueError(
                    "OIDC_GROUP_MAP must be a JSON object or claimvalue=DjangoGroup pairs "
                    "separated by commas"
                )
            pairs.append((claim_value, name))
    group_map: dict[str, list[str]] = {}
    for claim_value, name in pairs:
        claim_value, name = claim_value.strip(), name.strip()
        if not claim_value or not name:
            raise ValueError("OIDC_GROUP_MAP: a claim value or a group name is empty")
        if len(name) > GROUP_NAME_MAX_LENGTH:
            raise ValueError(
                f"OIDC_GROUP_MAP: a group name is longer than {GROUP_NAME_MAX_LENGTH} characters"
            )
        names = group_map.setdefault(claim_value, [])
        if name not in names:
            names.append(name)
    return {claim_value: tuple(names) for claim_value, names in group_map.items()}


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_oidc_settings(values: Mapping[str, object]) -> None:
    """Refuse a single sign-on configuration that cannot work or would not be safe.

    ``values`` maps the environment variable names (OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
    OIDC_ISSUER, OIDC_AUTHORIZATION_ENDPOINT, OIDC_TOKEN_ENDPOINT, OIDC_USERINFO_ENDPOINT,
    OIDC_JWKS_URI, OIDC_SIGN_ALGO, OIDC_TOKEN_AUTH_METHOD, OIDC_GROUPS_CLAIM,
    OIDC_STAFF_GROUPS, OIDC_GROUP_MAP) to their values as settings holds them. Nothing is
    checked while OIDC_CLIENT_ID is empty (single sign-on off).

    Raises ``ValueError`` naming the variables that are missing or wrong: the client
    secret, the issuer and the authorization and token endpoints are required, the JWKS
    URI too for RS*/ES* signatures; every URL must be https (plain http only to this
    machine, for development and tests); a staff or group mapping needs OIDC_GROUPS_CLAIM.
    Values (the secret above all) never appear in the message.
    """
    if not values.get("OIDC_CLIENT_ID"):
        return
    required = [
        "OIDC_CLIENT_SECRET",
        "OIDC_ISSUER",
        "OIDC_AUTHORIZATION_ENDPOINT",
        "OIDC_TOKEN_ENDPOINT",
    ]
    algorithm = str(values.get("OIDC_SIGN_ALGO") or "")
    if algorithm not in SIGN_ALGORITHMS:
        raise ValueError(f"OIDC_SIGN_ALGO must be one of {', '.join(SIGN_ALGORITHMS)}")
    if not algorithm.startswith("HS"):
        required.append("OIDC_JWKS_URI")
    missing = [name for name in required if not values.get(name)]
    if missing:
        raise ValueError(
            f"Single sign-on is on (OIDC_CLIENT_ID is set) but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} empty. The provider's "
            "<issuer>/.well-known/openid-configuration lists the endpoints "
            "(`manage.py oidc_endpoints <issuer>` prints them as settings)."
        )
    for name in (
        "OIDC_ISSUER",
        "OIDC_AUTHORIZATION_ENDPOINT",
        "OIDC_TOKEN_ENDPOINT",
        "OIDC_USERINFO_ENDPOINT",
        "OIDC_JWKS_URI",
    ):
        url = str(values.get(name) or "")
        if not url:
            continue
        parts = urlsplit(url)
        if not parts.hostname or parts.scheme not in {"https", "http"}:
            raise ValueError(f"{name} must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
            raise ValueError(f"{name} must be an https:// URL (plain http only to this machine)")
    if values.get("OIDC_TOKEN_AUTH_METHOD") not in TOKEN_AUTH_METHODS:
        raise ValueError(f"OIDC_TOKEN_AUTH_METHOD must be one of {', '.join(TOKEN_AUTH_METHODS)}")
    if not values.get("OIDC_GROUPS_CLAIM"):
        for name in ("OIDC_STAFF_GROUPS", "OIDC_GROUP_MAP"):
            if values.get(name):
                raise ValueError(f"{name} needs OIDC_GROUPS_CLAIM (the claim to read them from)")
