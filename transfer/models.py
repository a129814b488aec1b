"""What the transfer app remembers of imports: each import (``ImportBatch``, for its
result page) and each conversation it created (``ImportedConversation``), whose source
key makes importing the same file twice skip what is already there."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ImportBatch(models.Model):
    """One import of one file by one person: what was in it, what was created, what was
    skipped as already imported (``skipped``: ``[{"title", "conversation_id"}]``) and
    what was left out (``notes``: sentences, in the language of the person who
    imported)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="import_batches",
        verbose_name=_("owner"),
    )
    file_name = models.CharField(_("file name"), max_length=255)
    source_format = models.CharField(_("format"), max_length=32)
    conversations_imported = models.PositiveIntegerField(_("conversations imported"), default=0)
    messages_imported = models.PositiveIntegerField(_("messages imported"), default=0)
    attachments_imported = models.PositiveIntegerField(_("files imported"), default=0)
    skipped = models.JSONField(_("skipped as already imported"), default=list, blank=True)
    notes = models.JSONField(_("notes"), default=list, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="import_owner_created")]

    def __str__(self) -> str:
        return self.file_name


class ImportedConversation(models.Model):
    """A conversation created by an import, with the key of what it was made from: a
    hash of the conversation's content as read (see
    ``transfer.services.importer.source_key``). Unique per person, so the same
    conversation is never imported twice; deleting the conversation deletes this row
    too, and it can be imported again."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("owner"),
    )
    conversation = models.OneToOneField(
        "chat.Conversation",
        on_delete=models.CASCADE,
        related_name="imported_from",
        verbose_name=_("conversation"),
    )
    batch = models.ForeignKey(
        ImportBatch,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=_("import"),
    )
    source_format = models.CharField(_("format"), max_length=32)
    source_key = models.CharField(_("source key"), max_length=64)
    # The id the other service gave the conversation (empty when it had none).
    external_id = models.CharField(_("id in the source"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("imported conversation")
        verbose_name_plural = _("imported conversations")
        constraints = [
            models.UniqueConstraint(fields=["owner", "source_key"], name="imported_owner_key"),
        ]

    def __str__(self) -> str:
        return f"{self.source_format}:{self.external_id or self.source_key[:12]}"
