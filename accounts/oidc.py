"""Sign-in with an OpenID Connect provider (single sign-on), built on mozilla-django-oidc.

The library runs the protocol: the authorization code flow with state, nonce and PKCE,
the token request, the ID token's signature against the provider's JWKS, the userinfo
request. This module adds what it leaves out or what this app decides:

- the ID token's audience (``aud`` holds OIDC_CLIENT_ID, ``azp`` if present is it),
  issuer (OIDC_ISSUER) and expiry are checked, and the userinfo answer is used only when
  its ``sub`` is the ID token's (OpenID Connect Core 3.1.3.7 and 5.3.2);
- who the person is (``find_user``): the account named ``oidc-<sub>``, else the one
  account whose email is the token's verified email, else a new ``oidc-<sub>`` account
  (OIDC_CREATE_USERS);
- their groups and staff flag, set from the groups claim at every sign-in
  (``sync_groups``, ``sync_staff``);
- a page that says why a sign-in failed (``registration/oidc_failed.html``), never with
  the client secret, a token or the provider's raw answer in it.

Why the user name carries the ``sub``: the user table already has a unique, indexed
name, so finding the account is one lookup and two first sign-ins racing cannot make
two accounts, with no table of its own to keep in step. A password account cannot pass
for one (a name ``oidc-...`` with a usable password is refused). What it cannot do: an
account found by email is found by email again each time (there is no column to keep
its ``sub`` in), so if the provider later changes that person's email the next sign-in
makes a new ``oidc-<sub>`` account.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

logger = logging.getLogger(__name__)

USERNAME_PREFIX = "oidc-"
# User.username holds 150 characters; a longer or unusual `sub` is stored as its hash.
_USERNAME_MAX_LENGTH = 150
_PLAIN_SUBJECT = re.compile(r"[\w.@+-]+", re.ASCII)
# Clock difference tolerated between the provider and this server (seconds).
TOKEN_LEEWAY_SECONDS = 60
_NAME_MAX_LENGTH = 150  # User.first_name / last_name
_EMAIL_MAX_LENGTH = 254  # User.email


class OidcSignInError(Exception):
    """A single sign-on attempt that is refused, with the sentence the person sees.

    ``message`` is user-facing (translated); ``status`` the HTTP status of the page;
    ``detail`` goes to the log only (never the client secret or a token)."""

    def __init__(self, message: str, *, status: int = 403, detail: str = "") -> None:
        super().__init__(detail or message)
        self.message = message
        self.status = status
        self.detail = detail


def subject_username(subject: str) -> str:
    """The user name of the account that belongs to the provider's subject ``subject``:
    ``oidc-<sub>``, or ``oidc-sha256-<64 hex digits>`` when ``sub`` is too long for a user
    name or holds characters a user name should not (the same ``sub`` always gives the
    same name)."""
    if (
        _PLAIN_SUBJECT.fullmatch(subject)
        and len(USERNAME_PREFIX) + len(subject) <= _USERNAME_MAX_LENGTH
        and not subject.startswith("sha256-")
    ):
        return USERNAME_PREFIX + subject
    return f"{USERNAME_PREFIX}sha256-{hashlib.sha256(subject.encode()).hexdigest()}"


def claim_values(claims: Mapping[str, Any], name: str) -> list[str]:
    """The values of the claim ``name`` in ``claims`` as a list of strings.

    ``name`` is a top-level claim (``groups``, or a namespaced one such as
    ``https://example.com/roles``) or, when no claim has that exact name, a dotted path
    into nested objects (``realm_access.roles``). A list gives its string and number
    items, a single string or number itself, anything else (absent included) nothing."""
    value: Any = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    items = value if isinstance(value, list) else [value]
    return [
        str(item)
        for item in items
        if isinstance(item, str | int) and not isinstance(item, bool) and str(item)
    ]


def email_is_verified(claims: Mapping[str, Any]) -> bool:
    """True when the provider says the ``email`` claim is verified (``email_verified`` is
    true; some providers send the string "true")."""
    verified = claims.get("email_verified")
    return verified is True or (isinstance(verified, str) and verified.lower() == "true")


def sync_groups(
    user: AbstractBaseUser,
    values: Iterable[str],
    group_map: Mapping[str, tuple[str, ...]] | None,
) -> tuple[set[str], set[str]]:
    """Make ``user``'s Django groups follow the groups claim ``values``.

    With ``group_map`` (OIDC_GROUP_MAP, ``{claim value: (group names, ...)}``), only the
    groups it names are managed: the user joins those the values map to (a missing group
    is created) and leaves the other mapped ones; groups the map does not name are left
    alone. Without it, each value is a group name and every group is managed: the user's
    groups become the existing groups named by the values (a value naming no group is
    ignored, so a provider's many groups do not fill the table).

    Returns the names of the groups joined and left."""
    values = set(values)
    current = {group.name: group for group in user.groups.all()}  # type: ignore[attr-defined]
    if group_map is None:
        wanted = {group.name: group for group in Group.objects.filter(name__in=values)}
        managed = set(current) | set(wanted)
    else:
        managed = {name for names in group_map.values() for name in names}
        wanted_names = {name for value in values for name in group_map.get(value, ())}
        wanted = {
            name: current.get(name) or Group.objects.get_or_create(name=name)[0]
            for name in wanted_names
        }
    joined = set(wanted) - set(current)
    left = (set(current) & managed) - set(wanted)
    if joined:
        user.groups.add(*(wanted[name] for name in joined))  # type: ignore[attr-defined]
    if left:
        user.groups.remove(*(current[name] for name in left))  # type: ignore[attr-defined]
    return joined, left


def sync_staff(user: AbstractBaseUser, values: Iterable[str], staff_values: Iterable[str]) -> bool:
    """Set ``user.is_staff`` (not saved) from the groups claim ``values``: staff when one
    of them is in ``staff_values`` (OIDC_STAFF_GROUPS), not staff otherwise, except that a
    superuser is never made non-staff. Nothing changes while ``staff_values`` is empty.
    Returns True when the flag changed."""
    staff_values = set(staff_values)
    if not staff_values:
        return False
    is_staff = bool(staff_values & set(values)) or (
        user.is_superuser and user.is_staff  # type: ignore[attr-defined]
    )
    changed = is_staff != user.is_staff  # type: ignore[attr-defined]
    user.is_staff = is_staff  # type: ignore[attr-defined]
    return changed


def provider_name() -> str:
    """The provider's name as people see it (OIDC_PROVIDER_NAME), or "" while single
    sign-on is off."""
    return settings.OIDC_PROVIDER_NAME if settings.OIDC_ENABLED else ""


def _untrusted(detail: str) -> OidcSignInError:
    return OidcSignInError(
        _("The answer from %(provider)s could not be verified, so you were not signed in.")
        % {"provider": settings.OIDC_PROVIDER_NAME},
        detail=detail,
    )


class OidcBackend(OIDCAuthenticationBackend):
    """The authentication backend for the callback of the sign-in with the provider.

    It answers only the callback's call (``authenticate(request, nonce=...,
    code_verifier=...)``), never a password sign-in. Returns the signed-in user, or
    raises ``OidcSignInError`` (refused on purpose), ``SuspiciousOperation`` or
    ``jwt.InvalidTokenError`` (a token that does not check out) or
    ``requests.RequestException`` (the provider could not be reached or refused the code);
    ``OidcCallbackView`` turns each into a page."""

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if request is None or kwargs.get("nonce") is None or not settings.OIDC_ENABLED:
            return None
        return super().authenticate(request, **kwargs)

    # --- the tokens ----------------------------------------------------------------------

    def _verify_jws(self, payload: str | bytes, key: Any) -> dict[str, Any]:
        """The claims of the signed token ``payload``, checked: its algorithm is
        OIDC_SIGN_ALGO, the signature matches ``key``, ``aud`` holds the client id,
        ``iss`` is OIDC_ISSUER, ``exp`` and ``nbf`` (when present) hold."""
        algorithm = jwt.get_unverified_header(payload).get("alg")
        if algorithm != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(
                f"token signed with {algorithm!r}, not {self.OIDC_RP_SIGN_ALGO}"
            )
        return jwt.decode(
            payload,
            key,
            algorithms=[self.OIDC_RP_SIGN_ALGO],
            audience=self.OIDC_RP_CLIENT_ID,
            issuer=settings.OIDC_ISSUER,
            leeway=TOKEN_LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "sub"]},
        )

    def verify_token(self, token: str | None, **kwargs: Any) -> dict[str, Any]:
        """The claims of an ID token (called with ``nonce``) or of a signed userinfo
        answer, checked by the library (signature, nonce) and by ``_verify_jws``; an ID
        token must also carry ``exp`` and ``iat``, and ``azp``, when there are several
        audiences or it is present, must be this client."""
        if not token:
            raise _untrusted("the token response holds no id_token")
        claims = super().verify_token(token, **kwargs)
        if "nonce" in kwargs:
            missing = [name for name in ("exp", "iat") if name not in claims]
            if missing:
                raise _untrusted(f"the ID token has no {', '.join(missing)}")
            audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            azp = claims.get("azp")
            if (len(audiences) > 1 or azp is not None) and azp != self.OIDC_RP_CLIENT_ID:
                raise _untrusted("the ID token's azp is another client")
        return claims

    def get_userinfo(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The person's claims: the ID token's, updated with the userinfo endpoint's
        (when OIDC_USERINFO_ENDPOINT is set) only if both name the same ``sub``."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            info = super().get_userinfo(access_token, id_token, payload)
            if not isinstance(info, dict) or info.get("sub") != payload.get("sub"):
                raise _untrusted("the userinfo answer is about another subject")
            claims.update(info)
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        """A usable answer names its subject (``sub``, a non-empty string)."""
        return isinstance(claims.get("sub"), str) and bool(claims["sub"])

    # --- the account ---------------------------------------------------------------------

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> AbstractBaseUser:
        """The account of the person the tokens are about, found or made
        (``find_user``, OIDC_CREATE_USERS), with its profile, groups and staff flag set
        from the claims. Raises ``OidcSignInError`` when no account may be used."""
        claims = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(claims):
            raise _untrusted("the claims name no subject")
        provider = settings.OIDC_PROVIDER_NAME
        with transaction.atomic():
            user = self.find_user(claims)
            if user is None:
                if not settings.OIDC_CREATE_USER:
                    raise OidcSignInError(
                        _(
                            "There is no account here for your %(provider)s sign-in. "
                            "Ask an administrator to create one."
                        )
                        % {"provider": provider},
                        detail="no account and OIDC_CREATE_USERS is off",
                    )
                user = self.create_user(claims)
            if not user.is_active:
                raise OidcSignInError(
                    _("This account is switched off. Ask an administrator."),
                    detail=f"inactive account {user.pk}",
                )
            self.update_user(user, claims)
        return user

    def find_user(self, claims: Mapping[str, Any]) -> AbstractBaseUser | None:
        """The account for these claims, or None: the account named
        ``subject_username(sub)`` first; else, if the email is verified, the one account
        with that email (in any case) that does not belong to another subject.

        Raises ``OidcSignInError`` when the subject's name is taken by a password account
        (someone signed up with it) or several accounts share the email."""
        user_model = get_user_model()
        username = subject_username(claims["sub"])
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is not None:
            if user.has_usable_password():
                raise OidcSignInError(
                    _("The account name for this sign-in is taken. Ask an administrator."),
                    detail=f"account {user.pk} named for this subject has a password",
                )
            return user
        email = claims.get("email")
        if not isinstance(email, str) or not email or not email_is_verified(claims):
            return None
        matches = list(
            user_model._default_manager.filter(email__iexact=email)
            .exclude(**{f"{user_model.USERNAME_FIELD}__startswith": USERNAME_PREFIX})
            .order_by("pk")[:2]
        )
        if len(matches) > 1:
            raise OidcSignInError(
                _(
                    "Several accounts here have your email address, so the right one cannot "
                    "be chosen. Ask an administrator."
                ),
                detail="several accounts share the verified email",
            )
        return matches[0] if matches else None

    def create_user(self, claims: Mapping[str, Any]) -> AbstractBaseUser:
        """A new account for the subject: named ``subject_username(sub)``, no password
        (it signs in through the provider only), profile from the claims. Two first
        sign-ins at once give one account."""
        user_model = get_user_model()
        username = subject_username(claims["sub"])
        try:
            with transaction.atomic():
                user = user_model._default_manager.create_user(username)
        except IntegrityError:
            user = user_model._default_manager.get(**{user_model.USERNAME_FIELD: username})
        logger.info("single sign-on created account %s", user.pk)
        return user

    def update_user(self, user: AbstractBaseUser, claims: Mapping[str, Any]) -> AbstractBaseUser:
        """Copy the profile (email, given and family name) from the claims and set the
        groups and staff flag from the groups claim (OIDC_GROUPS_CLAIM, OIDC_GROUP_MAP,
        OIDC_STAFF_GROUPS). Returns ``user``, saved."""
        changed: list[str] = []
        profile = {
            "email": (claims.get("email"), _EMAIL_MAX_LENGTH),
            "first_name": (claims.get("given_name"), _NAME_MAX_LENGTH),
            "last_name": (claims.get("family_name"), _NAME_MAX_LENGTH),
        }
        for field, (value, max_length) in profile.items():
            if isinstance(value, str) and value and hasattr(user, field):
                value = value[:max_length]
                if getattr(user, field) != value:
                    setattr(user, field, value)
                    changed.append(field)
        claim = settings.OIDC_GROUPS_CLAIM
        if claim:
            values = claim_values(claims, claim)
            joined, left = sync_groups(user, values, settings.OIDC_GROUP_MAP)
            if joined or left:
                logger.info(
                    "single sign-on: account %s joined %s, left %s",
                    user.pk,
                    sorted(joined),
                    sorted(left),
                )
            if sync_staff(user, values, settings.OIDC_STAFF_GROUPS):
                changed.append("is_staff")
        if changed:
            user.save(update_fields=changed)
        return user


class OidcSignInView(OIDCAuthenticationRequestView):
    """``GET /accounts/oidc/login/?next=...``: redirect to the provider's authorization
    endpoint with a new state, nonce and PKCE challenge (kept in the session). 404 while
    single sign-on is off."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is off")
        return super().dispatch(request, *args, **kwargs)


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """``GET /accounts/oidc/callback/?code=...&state=...``, where the provider sends the
    person back: sign them in (``OidcBackend``) and go on to ``next`` or the chat, or
    show ``registration/oidc_failed.html`` saying why not, with status 400 (a stale or
    foreign link), 403 (refused, or an answer that does not check out) or 502 (the
    provider could not be reached or refused the code). 404 while single sign-on is
    off."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is off")
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        provider = settings.OIDC_PROVIDER_NAME
        state = request.GET.get("state")
        known_states = request.session.get("oidc_states")
        if (
            state
            and "code" in request.GET
            and (not isinstance(known_states, dict) or state not in known_states)
        ):
            return self._failed(
                _(
                    "This sign-in link has expired or was already used. Start again from "
                    "the sign-in page."
                ),
                status=400,
                detail="unknown state",
            )
        try:
            return super().get(request)
        except OidcSignInError as e:
            return self._failed(e.message, status=e.status, detail=e.detail)
        except (SuspiciousOperation, jwt.InvalidTokenError) as e:
            return self._failed(_untrusted("").message, status=403, detail=_describe(e))
        except requests.RequestException as e:
            return self._failed(
                _("%(provider)s could not be reached or did not accept the sign-in. Try again.")
                % {"provider": provider},
                status=502,
                detail=_describe(e),
            )
        except (ValueError, KeyError, TypeError) as e:
            # A malformed answer (not JSON, a missing field).
            return self._failed(
                _untrusted("").message, status=502, detail=f"malformed answer: {_describe(e)}"
            )

    def login_failure(self) -> HttpResponse:
        """The provider sent the person back with an error (they cancelled, or were not
        allowed), or without a code."""
        error = self.request.GET.get("error", "")
        return self._failed(
            _("%(provider)s did not sign you in. Start again from the sign-in page.")
            % {"provider": settings.OIDC_PROVIDER_NAME},
            status=403 if error else 400,
            detail=f"provider answered error={error[:100]!r}" if error else "no code",
        )

    def _failed(self, message: str, *, status: int, detail: str) -> HttpResponse:
        logger.warning("single sign-on refused: %s", _redact(detail or message))
        return render(
            self.request,
            "registration/oidc_failed.html",
            {"message": message, "provider_name": settings.OIDC_PROVIDER_NAME},
            status=status,
        )


def _describe(error: BaseException) -> str:
    """The exception's class and message, shortened, for the log."""
    return f"{type(error).__name__}: {str(error)[:300]}"


def _redact(text: str) -> str:
    """``text`` with the client secret, should it be in it, replaced."""
    secret = settings.OIDC_RP_CLIENT_SECRET
    return text.replace(secret, "[client secret]") if secret else text
