from __future__ import annotations

from django.conf import settings
from django.db import models
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

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conv_owner_updated")]
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
