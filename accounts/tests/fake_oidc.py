"""A small OpenID Connect provider on 127.0.0.1, for the single sign-on tests.

It serves what the app calls over HTTP: the token endpoint (authorization code grant,
client_secret_basic or client_secret_post, PKCE S256), userinfo (bearer token), the JWKS
(one RS256 key made when the provider starts) and the discovery document. The browser's
part, the authorization endpoint, is the method ``authorize``: the test hands it the URL
the app redirected to and gets back the URL the provider would send the browser to.

Usage::

    with FakeOidcProvider() as provider:
        callback = provider.authorize(location, Identity(sub="u1", groups=["eng"]))
        client.get(callback)

``Identity`` holds the person's claims and, for the tests of refusals, what to get wrong
in their tokens (another audience, another signing key...).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "chat-ai-test"
CLIENT_SECRET = "fake-oidc-client-secret-5b1f0c9e"  # a test value
KEY_ID = "fake-key-1"


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Identity:
    """A person at the provider, and how their tokens should be made.

    ``id_token_claims`` and ``userinfo_claims`` are added to (or replace) the claims the
    provider puts in each; a value of None removes that claim. ``signing_key`` signs the
    ID token instead of the published key (same ``kid``). ``nonce`` replaces the nonce of
    the authorization request."""

    sub: str = "user-1"
    email: str | None = "ada@example.com"
    email_verified: bool | str = True
    given_name: str | None = "Ada"
    family_name: str | None = "Lovelace"
    groups: list[str] | None = None
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    userinfo_claims: dict[str, Any] = field(default_factory=dict)
    signing_key: rsa.RSAPrivateKey | None = None
    nonce: str | None = None

    def claims(self) -> dict[str, Any]:
        """The person's claims, as both the ID token and userinfo carry them."""
        claims: dict[str, Any] = {"sub": self.sub}
        for name in ("email", "email_verified", "given_name", "family_name", "groups"):
            value = getattr(self, name)
            if value is not None:
                claims[name] = value
        return claims


@dataclass
class _Grant:
    identity: Identity
    redirect_uri: str
    nonce: str
    code_challenge: str | None


class FakeOidcProvider:
    """The provider, serving on ``self.url`` (its issuer) until ``close``.

    ``token_requests`` records each token request's form and Authorization header;
    ``refuse_tokens`` makes the token endpoint answer 401 invalid_client."""

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = new_rsa_key()
        self.refuse_tokens = False
        self.token_requests: list[dict[str, Any]] = []
        self._grants: dict[str, _Grant] = {}
        self._access_tokens: dict[str, Identity] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # --- the endpoints' addresses -------------------------------------------------------

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.url}/userinfo"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    def discovery(self) -> dict[str, Any]:
        """The discovery document (``/.well-known/openid-configuration``)."""
        return {
            "issuer": self.url,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "userinfo_endpoint": self.userinfo_endpoint,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    # --- the browser's part -------------------------------------------------------------

    def authorize(self, authorization_url: str, identity: Identity) -> str:
        """Sign ``identity`` in for the authorization request ``authorization_url`` (the
        app's redirect); return the redirect URI with ``code`` and ``state``, as the
        provider would send the browser back. Raises AssertionError for a request the
        provider would refuse (another client, no state or nonce, no PKCE)."""
        parts = urlsplit(authorization_url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == self.authorization_endpoint
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        assert query["client_id"] == self.client_id
        assert query["response_type"] == "code"
        assert "openid" in query["scope"].split()
        assert query.get("state") and query.get("nonce")
        assert query.get("code_challenge_method") == "S256"
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._grants[code] = _Grant(
                identity=identity,
                redirect_uri=query["redirect_uri"],
                nonce=identity.nonce or query["nonce"],
                code_challenge=query.get("code_challenge"),
            )
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    # --- tokens -------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]}

    def id_token(self, identity: Identity, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **identity.claims(),
        }
        claims.update(identity.id_token_claims)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(
            claims, identity.signing_key or self.key, algorithm="RS256", headers={"kid": KEY_ID}
        )

    def _token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
            client_id, client_secret = unquote(client_id), unquote(client_secret)
        if self.refuse_tokens or (client_id, client_secret) != (
            self.client_id,
            self.client_secret,
        ):
            return 401, {"error": "invalid_client"}
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if grant.code_challenge is not None and challenge != grant.code_challenge:
            return 400, {"error": "invalid_grant", "error_description": "code_verifier"}
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[access_token] = grant.identity
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant.identity, grant.nonce),
        }

    def _userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            identity = self._access_tokens.get(authorization.removeprefix("Bearer "))
        if identity is None:
            return 401, {"error": "invalid_token"}
        claims = {**identity.claims(), **identity.userinfo_claims}
        return 200, {name: value for name, value in claims.items() if value is not None}

    # --- HTTP ---------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/jwks":
                    self._send(200, provider.jwks())
                elif path == "/userinfo":
                    self._send(*provider._userinfo(self.headers.get("Authorization", "")))
                elif path.endswith("/.well-known/openid-configuration"):
                    self._send(200, provider.discovery())
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                form = {name: values[0] for name, values in parse_qs(body).items()}
                authorization = self.headers.get("Authorization", "")
                if urlsplit(self.path).path != "/token":
                    self._send(404, {"error": "not_found"})
                    return
                with provider._lock:
                    provider.token_requests.append({"form": form, "authorization": authorization})
                self._send(*provider._token(form, authorization))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOidcProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
