from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .providers.base_provider import MAX_TOKENS_RANGE, TEMPERATURE_RANGE
from .services import ReplyAction


class ReplyForm(forms.Form):
    """One request for a reply: send a message, edit the last one, regenerate, retry a
    failed reply (``reply_id``) or continue a reply cut off (``reply_id``)."""

    action = forms.ChoiceField(
        choices=[(a, a) for a in ReplyAction.ALL], required=False, initial=ReplyAction.SEND
    )
    content = forms.CharField(required=False, strip=False)
    provider = forms.CharField(required=False, max_length=64)
    model = forms.CharField(required=False, max_length=200)
    reply_id = forms.IntegerField(required=False, min_value=1)
    # The settings of a new chat, chosen before its first message (ignored otherwise).
    system_prompt = forms.CharField(required=False, strip=False, label=_("System prompt"))
    temperature = forms.FloatField(
        required=False,
        min_value=TEMPERATURE_RANGE[0],
        max_value=TEMPERATURE_RANGE[1],
        label=_("Temperature"),
    )
    max_tokens = forms.IntegerField(
        required=False,
        min_value=MAX_TOKENS_RANGE[0],
        max_value=MAX_TOKENS_RANGE[1],
        label=_("Max tokens"),
    )

    def clean_action(self) -> str:
        return self.cleaned_data.get("action") or ReplyAction.SEND

    def clean_content(self) -> str:
        content = self.cleaned_data.get("content", "")
        if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
            raise forms.ValidationError(
                _("The message is too long (%(length)d characters; the limit is %(limit)d).")
                % {"length": len(content), "limit": settings.CHAT_MAX_MESSAGE_CHARS}
            )
        return content


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200, label=_("Title"))


class ConversationSettingsForm(forms.Form):
    system_prompt = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), label=_("System prompt")
    )
    temperature = forms.FloatField(
        required=False,
        min_value=TEMPERATURE_RANGE[0],
        max_value=TEMPERATURE_RANGE[1],
        label=_("Temperature"),
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    max_tokens = forms.IntegerField(
        required=False,
        min_value=MAX_TOKENS_RANGE[0],
        max_value=MAX_TOKENS_RANGE[1],
        label=_("Max tokens"),
    )


class NewConversationForm(forms.Form):
    provider = forms.CharField(required=False, max_length=64)
    model = forms.CharField(required=False, max_length=200)
