from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from .models import Conversation
from .providers.base_provider import MAX_TOKENS_RANGE, TEMPERATURE_RANGE
from .providers.options import REASONING_EFFORTS, THINKING_BUDGET_RANGE
from .services import ReplyAction


def reasoning_effort_field() -> forms.TypedChoiceField:
    """How hard a reasoning model thinks: "" (the model's default, cleaned to None) or
    one of ``REASONING_EFFORTS``."""
    labels = {
        "minimal": _("Minimal"),
        "low": _("Low"),
        "medium": _("Medium"),
        "high": _("High"),
    }
    return forms.TypedChoiceField(
        required=False,
        choices=[("", _("Model's default")), *((e, labels.get(e, e)) for e in REASONING_EFFORTS)],
        empty_value=None,
        label=_("Reasoning effort"),
        error_messages={
            "invalid_choice": _("Choose the model's default, minimal, low, medium or high.")
        },
    )


def thinking_budget_field() -> forms.IntegerField:
    """Tokens a reasoning model may spend thinking (``THINKING_BUDGET_RANGE``); empty
    (None): no budget set."""
    low, high = THINKING_BUDGET_RANGE
    return forms.IntegerField(
        required=False,
        min_value=low,
        max_value=high,
        label=_("Thinking budget (tokens)"),
        help_text=format_lazy(_("Empty: off. From {low} to {high} tokens."), low=low, high=high),
        widget=forms.NumberInput(attrs={"step": "1024", "placeholder": _("Off")}),
        error_messages={
            "min_value": _("A thinking budget is at least %(limit_value)s tokens (empty: off)."),
            "max_value": _("A thinking budget is at most %(limit_value)s tokens."),
            "invalid": _("Enter a whole number of tokens, or leave it empty."),
        },
    )


class FallbackFieldsMixin(forms.Form):
    """Three "provider/model" choices tried in order when the conversation's model fails
    before answering (``chat.services.fallback``). ``clean`` gathers them into
    ``cleaned_data["fallback_models"]`` (a list, blanks dropped); the service checks them."""

    fallback_1 = forms.CharField(
        required=False,
        max_length=280,
        label=_("Fallback model"),
        help_text=_(
            "Answers when the chosen model fails before its first word (unavailable, "
            "rate limited, timed out). Empty: the administrator's choice, if any."
        ),
    )
    fallback_2 = forms.CharField(required=False, max_length=280, label=_("Second fallback"))
    fallback_3 = forms.CharField(required=False, max_length=280, label=_("Third fallback"))

    FALLBACK_FIELDS = ("fallback_1", "fallback_2", "fallback_3")

    def fallback_menu(self, menu: list | None) -> None:
        """Offer the models of ``menu`` (``ProviderChoice`` list, already filtered by the
        person's access rules) in the fallback selects."""
        choices = [("", _("None"))]
        for choice in menu or []:
            if choice.usable:
                choices += [(f"{choice.name}/{m}", f"{choice.label} · {m}") for m in choice.models]
        for name in self.FALLBACK_FIELDS:
            current = self.initial.get(name) or ""
            options = list(choices)
            if current and current not in {value for value, _label in options}:
                options.append((current, current))  # chosen before, no longer offered
            self.fields[name].widget = forms.Select(choices=options)

    def clean(self) -> dict:
        data = super().clean() or {}
        data["fallback_models"] = [
            value for name in self.FALLBACK_FIELDS if (value := data.pop(name, "") or "")
        ]
        return data


class ReplyForm(FallbackFieldsMixin, forms.Form):
    """One request for a reply: send a message, edit the last one, regenerate, retry a
    failed reply (``reply_id``) or continue a reply cut off (``reply_id``)."""

    action = forms.ChoiceField(
        choices=[(a, a) for a in ReplyAction.ALL], required=False, initial=ReplyAction.SEND
    )
    content = forms.CharField(required=False, strip=False)
    provider = forms.CharField(required=False, max_length=64)
    model = forms.CharField(required=False, max_length=200)
    reply_id = forms.IntegerField(required=False, min_value=1)
    # Edit: the person's message edited (default: the last of the branch shown).
    message_id = forms.IntegerField(required=False, min_value=1)
    # Send: the message the new one follows, the last of the branch the page shows.
    parent_id = forms.IntegerField(required=False, min_value=1)
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

    reasoning_effort = reasoning_effort_field()
    thinking_budget = thinking_budget_field()

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


class ConversationSettingsForm(FallbackFieldsMixin, forms.Form):
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
    reasoning_effort = reasoning_effort_field()
    thinking_budget = thinking_budget_field()

    @classmethod
    def for_conversation(
        cls, conversation: Conversation | None, menu: list | None = None
    ) -> ConversationSettingsForm:
        """The settings dialog's form holding ``conversation``'s settings (empty for a
        new chat, whose settings go with its first message); the fallback selects offer
        the models of ``menu``."""
        initial: dict = {}
        if conversation is not None:
            initial = {
                name: getattr(conversation, name)
                for name in cls.base_fields
                if name not in cls.FALLBACK_FIELDS
            }
            for name, value in zip(
                cls.FALLBACK_FIELDS, conversation.fallback_models or [], strict=False
            ):
                initial[name] = value
        form = cls(initial=initial)
        form.fallback_menu(menu)
        return form


class NewConversationForm(forms.Form):
    provider = forms.CharField(required=False, max_length=64)
    model = forms.CharField(required=False, max_length=200)
