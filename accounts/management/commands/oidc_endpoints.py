"""``manage.py oidc_endpoints <issuer>``: read the provider's discovery document
(``<issuer>/.well-known/openid-configuration``) once and print the single sign-on
settings it gives, as lines for ``.env``. The app itself never fetches it."""

from __future__ import annotations

from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

# Discovery document field -> environment variable.
FIELDS = {
    "issuer": "OIDC_ISSUER",
    "authorization_endpoint": "OIDC_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "OIDC_TOKEN_ENDPOINT",
    "userinfo_endpoint": "OIDC_USERINFO_ENDPOINT",
    "jwks_uri": "OIDC_JWKS_URI",
}


class Command(BaseCommand):
    help = (
        "Print the OIDC_* endpoint settings from an OpenID Connect provider's discovery "
        "document (<issuer>/.well-known/openid-configuration)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "issuer", help="the provider's issuer URL, e.g. https://id.example.com/realms/team"
        )
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")

    def handle(self, *args: Any, issuer: str, timeout: float, **options: Any) -> None:
        issuer = issuer.rstrip("/")
        url = f"{issuer}/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=timeout)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as e:
            raise CommandError(f"Could not read {url}: {type(e).__name__}") from None
        if not isinstance(document, dict):
            raise CommandError(f"{url} is not a discovery document")
        found = str(document.get("issuer") or "")
        if found.rstrip("/") != issuer:
            raise CommandError(f"{url} names another issuer ({found!r})")
        for field, name in FIELDS.items():
            self.stdout.write(f"{name}={document.get(field) or ''}")
        algorithms = document.get("id_token_signing_alg_values_supported") or []
        if algorithms and "RS256" not in algorithms:
            self.stdout.write(f"OIDC_SIGN_ALGO={algorithms[0]}")
        methods = document.get("token_endpoint_auth_methods_supported") or []
        if methods and "client_secret_basic" not in methods and "client_secret_post" in methods:
            self.stdout.write("OIDC_TOKEN_AUTH_METHOD=client_secret_post")
