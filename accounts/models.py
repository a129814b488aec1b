"""Personal API keys for the OpenAI-compatible API (``/v1``).

A key is ``cai_`` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256
is stored, with its first characters (``prefix``) so that lists can tell keys apart. The
services that create, revoke and check keys are in ``accounts.services``.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ApiKey(models.Model):
    """One person's API key. The key itself is shown once, when it is created, and
    never stored: ``secret_hash`` is the SHA-256 (hex) of the whole key."""

    # In context: Russian words agree with the noun ("ключ" is masculine, a revoked share
    # link is feminine), and the project's catalog wins over the apps' for a bare msgid.
    class State(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("API key state", "Active")
        EXPIRED = "expired", pgettext_lazy("API key state", "Expired")
        REVOKED = "revoked", pgettext_lazy("API key state", "Revoked")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=100)
    # The first characters of the key ("cai_" and 8 more): enough to recognise a key in a
    # list or a log, far too few to guess the rest (35 random characters are left).
    prefix = models.CharField(_("prefix"), max_length=16, editable=False)
    # SHA-256 of the whole key. A fast hash is right here, unlike for passwords: the key
    # holds 32 random bytes (256 bits), so no dictionary or brute force can find it from
    # its hash, and checking it costs microseconds on every API request.
    secret_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    # Written at most once a minute (accounts.services.LAST_USED_PRECISION).
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked_at = models.DateTimeField(pgettext_lazy("API key", "revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="apikey_user_created"),
            models.Index(fields=["-created_at", "-id"], name="apikey_created"),
        ]
        constraints = [
            # 64 hex digits: a key can never be saved with its secret in this column.
            models.CheckConstraint(
                condition=Exact(Length("secret_hash"), 64), name="apikey_hash_length"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def state_at(self, now: datetime) -> ApiKey.State:
        """Revoked, expired or active at ``now`` (revoked wins over expired)."""
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.State.EXPIRED
        return self.State.ACTIVE

    @property
    def state(self) -> ApiKey.State:
        """Revoked, expired or active now."""
        return self.state_at(timezone.now())

    @property
    def is_active(self) -> bool:
        """True while the key opens the API: neither revoked nor expired."""
        return self.state == self.State.ACTIVE


class Preference(models.Model):
    """What one person chose for themselves and wants on every browser they sign in
    from. ``language`` is a code from ``settings.LANGUAGES`` ("en", "ru"), or empty for
    "follow the browser" (its Accept-Language header); ``accounts.language`` reads and
    writes it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="preference",
        verbose_name=_("user"),
    )
    language = models.CharField(
        _("language"),
        max_length=16,
        blank=True,
        help_text=_("The language of the pages; empty: the browser's language."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("preference")
        verbose_name_plural = _("preferences")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language or '-'}"
