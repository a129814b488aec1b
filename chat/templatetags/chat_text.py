"""Template filters for message text."""

from __future__ import annotations

from django import template

from chat.textdir import text_direction

register = template.Library()


@register.filter(name="text_direction")
def text_direction_filter(text: str | None) -> str:
    """``{{ message.content|text_direction }}``: "rtl" or "ltr" (see chat.textdir)."""
    return text_direction(text or "")
