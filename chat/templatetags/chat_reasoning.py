"""How long a model thought, as the reply's reasoning block says it ("Thought for 12 s").

The page's script words the live summary the same way (messages.js, from the labels the
reply template carries), so a reply reads the same while it streams and after a reload.
"""

from __future__ import annotations

from django import template
from django.utils.translation import gettext, ngettext

register = template.Library()


def thought_for(reasoning_ms: int | None) -> str:
    """The summary of a reasoning block whose model thought ``reasoning_ms``
    milliseconds: "Thought for a moment" under a second, "Thought for 12 s",
    "Thought for 2 min 5 s" (whole seconds, rounded); "Reasoning" when the time is not
    known (replies saved before it was measured)."""
    if reasoning_ms is None:
        return gettext("Reasoning")
    if reasoning_ms < 1000:
        return gettext("Thought for a moment")
    seconds = (reasoning_ms + 500) // 1000
    if seconds < 60:
        return ngettext("Thought for %(seconds)d s", "Thought for %(seconds)d s", seconds) % {
            "seconds": seconds
        }
    minutes, seconds = divmod(seconds, 60)
    if not seconds:
        return ngettext("Thought for %(minutes)d min", "Thought for %(minutes)d min", minutes) % {
            "minutes": minutes
        }
    return ngettext(
        "Thought for %(minutes)d min %(seconds)d s",
        "Thought for %(minutes)d min %(seconds)d s",
        minutes,
    ) % {"minutes": minutes, "seconds": seconds}


@register.filter(name="thought_for")
def thought_for_filter(reasoning_ms: int | None) -> str:
    """``{{ message.reasoning_ms|thought_for }}``: see ``thought_for``."""
    return thought_for(reasoning_ms)
