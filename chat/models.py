from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
        verbose_name=_("owner"),
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model"), max_length=200)
    system_prompt = models.TextField(_("system prompt"), blank=True)
    temperature = models.FloatField(_("temperature"), null=True, blank=True)
    max_tokens = models.PositiveIntegerField(_("max tokens"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    # When a reply finished that the person has not seen yet (None: nothing new). The
    # sidebar marks such conversations; opening the conversation clears it.
    reply_unseen_at = models.DateTimeField(_("unseen reply since"), null=True, blank=True)
    # The last message of the branch the person last looked at (None: the newest branch).
    # The thread shown is the path from the root to it, then on down by the newest child.
    current_leaf = models.ForeignKey(
        "Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("branch shown"),
    )
    # Reasoning settings (None: the provider's default). Nullable without a default: on
    # SQLite a column with a default is added by remaking the table, which would drop the
    # search triggers.
    reasoning_effort = models.CharField(  # noqa: DJ001 (see above: no default on SQLite)
        _("reasoning effort"), max_length=16, null=True, blank=True
    )
    thinking_budget = models.PositiveIntegerField(
        _("thinking budget (tokens)"), null=True, blank=True
    )
    # The person's fallback chain: "provider/model" strings tried in order when the
    # conversation's model fails before its first token (None or []: the admin's chain
    # for the model, if any).
    fallback_models = models.JSONField(_("fallback models"), null=True, blank=True)
    # Folders, pins and the archive (chat/services/folders.py). Nullable without a
    # default, like the reasoning settings above (SQLite keeps the search triggers).
    folder = models.ForeignKey(
        "Folder",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=_("folder"),
    )
    # When the person pinned it (None: not pinned); pinned ones lead the list.
    pinned_at = models.DateTimeField(_("pinned"), null=True, blank=True)
    # When the person archived it (None: not archived); archived ones leave the list.
    archived_at = models.DateTimeField(_("archived"), null=True, blank=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="conv_owner_updated"),
            # The sidebar's pinned group: a handful of rows, found without a scan.
            models.Index(
                fields=["owner", "-pinned_at"],
                name="conv_owner_pinned",
                condition=models.Q(pinned_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(temperature__isnull=True)
                | models.Q(temperature__gte=0, temperature__lte=2),
                name="conv_temperature_range",
            ),
        ]

    def __str__(self) -> str:
        return self.title or str(_("New chat"))

    @property
    def reply_unseen(self) -> bool:
        """A reply finished that the person has not seen yet."""
        return self.reply_unseen_at is not None


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("user")
        ASSISTANT = "assistant", _("assistant")

    class Status(models.TextChoices):
        STREAMING = "streaming", _("streaming")
        COMPLETE = "complete", _("complete")
        # Text was received but the model did not finish normally: cut by the token
        # limit, filtered, refused, or the stream ended without a finish reason.
        INCOMPLETE = "incomplete", _("incomplete")
        ERROR = "error", _("error")
        STOPPED = "stopped", _("stopped")

    class FinishReason(models.TextChoices):
        """Why a reply ended (the providers' normalised finish reason)."""

        STOP = "stop", _("finished")
        LENGTH = "length", _("token limit reached")
        CONTENT_FILTER = "content_filter", _("blocked by the safety filter")
        REFUSAL = "refusal", _("refused")
        TOOL_CALLS = "tool_calls", _("tool calls")
        CUT_OFF = "cut_off", _("cut off")
        # Set by the app, not the provider: the server shut down mid-reply, or the reply
        # ran past CHAT_MAX_REPLY_SECONDS.
        INTERRUPTED = "interrupted", _("interrupted by a server restart")
        TIME_LIMIT = "time_limit", _("reached the server's time limit")

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("conversation"),
    )
    # The message this one answers or follows (None: a first message). Conversations are
    # trees: an edit or a regenerated reply is a sibling, and the context sent to a model
    # is the path from the root to the message answered. Deleting a message deletes the
    # branch below it.
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("parent"),
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    content = models.TextField(_("content"), blank=True)
    # Sanitized HTML of the content (assistant replies), rendered once when complete.
    content_html = models.TextField(_("rendered content"), blank=True, editable=False)
    provider = models.CharField(_("provider"), max_length=64, blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.COMPLETE
    )
    # Why the reply ended, as the provider said (blank while streaming, or when unknown).
    finish_reason = models.CharField(_("finish reason"), max_length=32, blank=True)
    # The model's reasoning ("thinking"), kept apart: shown collapsed, never sent back.
    reasoning = models.TextField(_("reasoning"), blank=True)
    # For people: one plain sentence per kind of fault. For staff and logs: the detail.
    error = models.TextField(_("error"), blank=True)
    error_kind = models.CharField(_("error kind"), max_length=32, blank=True)
    error_detail = models.TextField(_("error detail"), blank=True)
    input_tokens = models.PositiveIntegerField(_("input tokens"), null=True, blank=True)
    output_tokens = models.PositiveIntegerField(_("output tokens"), null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(_("reasoning tokens"), null=True, blank=True)
    # How many earlier messages were left out of this reply's context to fit the model.
    # Nullable (None = none): on SQLite a column with a default is added by remaking the
    # table, which would drop the search triggers.
    context_trimmed = models.PositiveIntegerField(
        _("messages left out of the context"), null=True, blank=True
    )
    time_to_first_token_ms = models.PositiveIntegerField(
        _("time to first token (ms)"), null=True, blank=True
    )
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    # How long the model thought before its answer began (first reasoning piece to first
    # text piece, or to the end when no text came).
    reasoning_ms = models.PositiveIntegerField(_("thinking time (ms)"), null=True, blank=True)
    # Fallback: the models tried before the one that answered (``provider``/``model``),
    # in order, each {"provider", "model", "kind"} with the error kind that moved the
    # reply on (None: the first model answered).
    fallback = models.JSONField(_("fallback"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="msg_conv_created"),
            # The message admin: newest first, by status, by provider and model.
            models.Index(fields=["-created_at", "-id"], name="msg_created"),
            models.Index(fields=["status", "-created_at"], name="msg_status_created"),
            models.Index(fields=["provider", "model", "-created_at"], name="msg_provider_model"),
            # Replies in progress, per conversation (the sidebar's "writing" mark).
            models.Index(
                fields=["conversation"],
                condition=models.Q(status="streaming"),
                name="msg_streaming",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=["user", "assistant"]), name="msg_role_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["streaming", "complete", "incomplete", "error", "stopped"]
                ),
                name="msg_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    def save(self, *args: Any, root: bool = False, **kwargs: Any) -> None:
        """Save; a new message without a parent follows its conversation's newest message
        (appending is what every caller but an edit of a first message means). ``root``
        True keeps it a first message (a new version of the conversation's opening)."""
        if self._state.adding and self.parent_id is None and not root:
            self.parent_id = (
                Message.objects.filter(conversation_id=self.conversation_id)
                .order_by("-created_at", "-id")
                .values_list("id", flat=True)
                .first()
            )
        super().save(*args, **kwargs)

    @property
    def is_reply(self) -> bool:
        return self.role == self.Role.ASSISTANT

    @property
    def finish_reason_label(self) -> str:
        """The finish reason in words ("token limit reached"), or the raw word."""
        try:
            return str(self.FinishReason(self.finish_reason).label)
        except ValueError:
            return self.finish_reason

    @property
    def notice(self) -> str:
        """Why a reply that has text did not finish normally (empty otherwise)."""
        if self.status != self.Status.INCOMPLETE:
            return ""
        from .outcomes import incomplete_notice

        return incomplete_notice(self.finish_reason)

    @property
    def fallback_note(self) -> str:
        """Which models failed before the one that answered, and why (or empty)."""
        if not self.fallback:
            return ""
        from .services.fallback import fallback_note

        return fallback_note(
            self.fallback, model=self.model, failed=self.status == self.Status.ERROR
        )

    @property
    def trimmed_note(self) -> str:
        """ "8 earlier messages were left out to fit the model's context" (or empty)."""
        if not self.context_trimmed:
            return ""
        from django.utils.translation import ngettext

        return ngettext(
            "%(count)d earlier message was left out to fit the model's context.",
            "%(count)d earlier messages were left out to fit the model's context.",
            self.context_trimmed,
        ) % {"count": self.context_trimmed}

    @property
    def can_continue(self) -> bool:
        """A reply cut by the token limit or the connection can be continued."""
        from .outcomes import CONTINUABLE_REASONS

        return (
            self.status == self.Status.INCOMPLETE
            and self.finish_reason in CONTINUABLE_REASONS
            and bool(self.content.strip())
        )

    @property
    def can_retry(self) -> bool:
        """A failed reply (an error, or filtered/refused/cut) can be tried again."""
        return self.status in (self.Status.ERROR, self.Status.INCOMPLETE)


class Attachment(models.Model):
    """A file a person attached to a message: an image, a PDF or a text file. Uploaded
    before the message is sent (``message`` None until then); stored through Django's
    storage API; deleted with its message (and so with its conversation)."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("image")
        PDF = "pdf", _("PDF")
        TEXT = "text", _("text file")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="attachments",
        verbose_name=_("owner"),
    )
    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="attachments",
        verbose_name=_("message"),
    )
    file = models.FileField(_("file"), upload_to="attachments/%Y/%m/", max_length=255)
    name = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    # Text read from a PDF or a text file (sent to models that cannot read the file).
    text = models.TextField(_("text"), blank=True)
    page_count = models.PositiveIntegerField(_("pages"), null=True, blank=True)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True)
    # The place the person gave it among the message's files (uploads finish in any
    # order); None until it is sent.
    position = models.PositiveSmallIntegerField(_("position"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["position", "created_at", "id"]
        indexes = [models.Index(fields=["owner", "created_at"], name="att_owner_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["image", "pdf", "text"]), name="att_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Folder(models.Model):
    """A person's folder (a project) of conversations, with the system prompt and the
    model each new chat in it starts with (blank: the usual ones). Names are unique per
    owner whatever their letter case (``name_key``, the name case-folded)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_folders",
        verbose_name=_("owner"),
    )
    name = models.CharField(_("name"), max_length=100)
    # ``name.casefold()``: the unique key (SQLite's lower() folds ASCII only).
    name_key = models.CharField(_("name key"), max_length=100, editable=False)
    system_prompt = models.TextField(_("system prompt"), blank=True)
    provider = models.CharField(_("default provider"), max_length=64, blank=True)
    model = models.CharField(_("default model"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("folder")
        verbose_name_plural = _("folders")
        ordering = ["name_key", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name_key"], name="folder_owner_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.name_key = self.key_for(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "name_key"}
        super().save(*args, **kwargs)

    @staticmethod
    def key_for(name: str) -> str:
        """The unique key of a folder named ``name``: case-folded (Unicode), as stored."""
        return name.casefold()[:100]

    @property
    def model_choice(self) -> str:
        """The default model as the model menu names it (``provider::model``), or ""."""
        return f"{self.provider}::{self.model}" if self.provider and self.model else ""


# Each person's folders are cached (chat.selectors.folder_list_for_user: the conversation
# list shows them on every page). Saving or deleting a folder clears the copy, at once
# and again when the transaction commits (a page read meanwhile may have cached the old
# list).
def folders_cache_key(owner_id: int) -> str:
    """The cache key of the folder list of user ``owner_id``."""
    return f"chat:folders:{owner_id}"


def _folders_changed(sender: type[Folder], instance: Folder, **kwargs: Any) -> None:
    key = folders_cache_key(instance.owner_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


post_save.connect(_folders_changed, sender=Folder, dispatch_uid="chat.folders_changed.save")
post_delete.connect(_folders_changed, sender=Folder, dispatch_uid="chat.folders_changed.delete")
