"""How a reply ended, in words for people.

One plain sentence per kind of provider fault, the same for every provider (the
provider's label and the model are the only parts that change), and one per finish
reason. People never see setting names, hosts or upstream texts here: staff and the
server log get those (``Message.error_detail``, ``ProviderError.message``).
"""

from __future__ import annotations

import math

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .providers import ErrorKind, FinishReason, ProviderError


def error_for_person(error: ProviderError, *, label: str, model: str) -> str:
    """The sentence a person sees for a failed reply, chosen by ``error.kind``.

    ``label`` is the provider's name as shown in the model menu, ``model`` the model id.
    The result never contains the upstream's text, a host, a setting name or a key."""
    values = {"label": label, "model": model}
    kind = error.kind
    if kind == ErrorKind.AUTHENTICATION:
        return (
            _("%(label)s refused this server's credentials. Ask an administrator to check them.")
            % values
        )
    if kind == ErrorKind.PERMISSION:
        return (
            _("%(label)s does not allow this server to use %(model)s. Choose another model.")
            % values
        )
    if kind == ErrorKind.NOT_CONFIGURED:
        return (
            _(
                "%(label)s is not set up on this server. "
                "Choose another model or ask an administrator."
            )
            % values
        )
    if kind == ErrorKind.RATE_LIMITED:
        if error.retry_after:
            seconds = max(1, math.ceil(error.retry_after))
            return ngettext(
                "%(label)s is receiving too many requests. Try again in %(seconds)d second.",
                "%(label)s is receiving too many requests. Try again in %(seconds)d seconds.",
                seconds,
            ) % {**values, "seconds": seconds}
        return _("%(label)s is receiving too many requests. Try again in a minute.") % values
    if kind == ErrorKind.TIMEOUT:
        return _("%(label)s took too long to answer. Try again.") % values
    if kind == ErrorKind.MODEL_NOT_FOUND:
        return _("%(label)s does not have the model %(model)s. Choose another model.") % values
    if kind == ErrorKind.BAD_REQUEST:
        return (
            _("%(label)s could not answer this request. Try rephrasing it or choose another model.")
            % values
        )
    return (
        _("%(label)s is unavailable or the connection to it was lost. Try again in a moment.")
        % values
    )


def unexpected_error_for_person(*, label: str) -> str:
    """The sentence for a fault that is not the provider's (a bug of ours)."""
    return _("Something went wrong while %(label)s was answering. Try again.") % {"label": label}


def empty_reply_message(
    *, reason: str, detail: str = "", reasoned: bool = False, label: str = ""
) -> str:
    """Why a reply has no text, from the provider's finish reason (``FinishReason``
    values). ``reasoned``: the model produced reasoning (or reasoning tokens) first."""
    values = {"label": label}
    if reason == FinishReason.CONTENT_FILTER:
        if detail.startswith("prompt blocked"):
            return (
                _("%(label)s's safety filter blocked the message before the model answered.")
                % values
            )
        return _("%(label)s's safety filter blocked the reply.") % values
    if reason == FinishReason.REFUSAL:
        return _("The model declined to answer.")
    if reason == FinishReason.LENGTH:
        if reasoned:
            return _(
                "The token limit was used up by the model's thinking before it answered. "
                "Raise Max tokens in the conversation's settings and try again."
            )
        return _(
            "The token limit was reached before the model answered. Raise Max tokens in the "
            "conversation's settings and try again."
        )
    if reason == FinishReason.CUT_OFF:
        return _("The reply ended before the model answered. Try again.")
    return _("%(label)s returned an empty reply.") % values


def incomplete_notice(reason: str) -> str:
    """The note shown under a reply that has text but did not finish normally."""
    if reason == FinishReason.LENGTH:
        return _("The reply was cut off at the token limit.")
    if reason == FinishReason.CONTENT_FILTER:
        return _("The rest of the reply was blocked by the provider's safety filter.")
    if reason == FinishReason.REFUSAL:
        return _("The model stopped and declined to go on.")
    if reason == FinishReason.CUT_OFF:
        return _("The reply was cut off: the connection ended before the model finished.")
    if reason == "interrupted":
        return _("The reply was interrupted: the server restarted before the model finished.")
    if reason == "time_limit":
        return _("The reply was cut off: it took longer than the server allows.")
    return _("The reply ended early (%(reason)s).") % {"reason": reason}


# Replies that may go on where they stopped (Continue).
CONTINUABLE_REASONS = frozenset(
    {FinishReason.LENGTH, FinishReason.CUT_OFF, "interrupted", "time_limit"}
)
