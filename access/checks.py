"""System checks for the access settings (run by ``manage.py check`` and on start-up of
the management commands)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from .services import DEFAULT_ALL, DEFAULT_NONE


@register()
def check_access_default(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``access.E001`` when CHAT_ACCESS_DEFAULT is neither "all" nor "none" (such a value
    is treated as "none")."""
    value = str(getattr(settings, "CHAT_ACCESS_DEFAULT", DEFAULT_ALL)).strip().lower()
    if value in (DEFAULT_ALL, DEFAULT_NONE):
        return []
    return [
        Error(
            f"CHAT_ACCESS_DEFAULT is {value!r}; it must be 'all' or 'none'.",
            hint="Until it is fixed, people whose groups have no access rules may use no model.",
            id="access.E001",
        )
    ]
