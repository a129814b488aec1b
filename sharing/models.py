"""Share links: a conversation shared as a read-only page at ``/s/<token>/``.

A link holds a *snapshot*: the messages of the branch on screen when it was made, copied
into ``SharedLink.snapshot`` (JSON, see ``sharing.snapshot``), so later edits, new
messages or deleted branches never change what the link shows. Images of those messages
are copied too (``SharedImage``: the upright copy without metadata and the thumbnail,
never the uploaded original, which may carry a photo's GPS position); other files are
named only.

The token is stored as it is, not hashed: the owner sees and copies their links again on
their "Shared links" page, and hashing would protect nothing: whoever reads this table
also reads the snapshot the token opens (and every conversation). It is 32 random bytes
(``secrets.token_urlsafe``), looked up by a unique index.

Deleting the conversation deletes its links (the link stops working, and nothing of a
deleted conversation is kept behind it).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chat.models import Conversation

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters
TOKEN_MAX_LENGTH = 64


class SharedLink(models.Model):
    """One share of one conversation: who made it, for whom, the snapshot, whether it
    still works (``revoked_at`` None) and how often it was opened."""

    class Audience(models.TextChoices):
        SIGNED_IN = "signed_in", _("Signed-in users of this site")
        PUBLIC = "public", _("Anyone with the link")

    token = models.CharField(_("token"), max_length=TOKEN_MAX_LENGTH, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="shared_links",
        verbose_name=_("owner"),
    )
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="shared_links",
        verbose_name=_("conversation"),
    )
    audience = models.CharField(_("who can open it"), max_length=16, choices=Audience.choices)
    # The conversation's title when the link was made (the snapshot's, not today's).
    title = models.CharField(_("title"), max_length=200, blank=True)
    snapshot = models.JSONField(_("snapshot"), default=dict, editable=False)
    created_at = models.DateTimeField(_("shared on"), default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    view_count = models.PositiveIntegerField(_("views"), default=0)
    last_viewed_at = models.DateTimeField(_("last viewed"), null=True, blank=True)

    class Meta:
        verbose_name = _("shared link")
        verbose_name_plural = _("shared links")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="share_owner_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(audience__in=["signed_in", "public"]),
                name="share_audience_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.title or str(_("New chat"))

    @property
    def is_active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    @property
    def effective_audience(self) -> str:
        """Who can open it now: a public link acts as signed-in only while the admin
        forbids public links (``CHAT_PUBLIC_SHARE_LINKS`` false)."""
        if self.audience == self.Audience.PUBLIC and not settings.CHAT_PUBLIC_SHARE_LINKS:
            return self.Audience.SIGNED_IN
        return self.audience

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The snapshot's messages (see ``sharing.snapshot``)."""
        return list(self.snapshot.get("messages", []))


class SharedImage(models.Model):
    """An image of a shared message, copied when the link was made: served only through
    the link's token (``/s/<token>/files/<id>/``), deleted with the link."""

    link = models.ForeignKey(
        SharedLink, on_delete=models.CASCADE, related_name="images", verbose_name=_("link")
    )
    # The index of its message in the snapshot, and its place among that message's files.
    message_index = models.PositiveIntegerField(_("message"))
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    name = models.CharField(_("file name"), max_length=255)
    # The upright copy without metadata (PNG or JPEG, at most 2048 px) and the thumbnail.
    file = models.FileField(_("image"), upload_to="shared/%Y/%m/", max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    thumb = models.FileField(_("thumbnail"), upload_to="shared/%Y/%m/", max_length=255)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True)

    class Meta:
        verbose_name = _("shared image")
        verbose_name_plural = _("shared images")
        ordering = ["message_index", "position", "id"]

    def __str__(self) -> str:
        return self.name
