"""Template tags of the chat page's Share parts: ``{% share_dialog %}`` (the dialog that
makes a link), ``{% share_button %}`` (the topbar button that opens it) and
``{% shared_links_link %}`` (the sidebar link to the person's links)."""

from __future__ import annotations

from typing import Any

from django import template

from ..models import SharedLink
from ..services import public_links_allowed

register = template.Library()


@register.inclusion_tag("sharing/_share_dialog.html", takes_context=True)
def share_dialog(context: template.Context) -> dict[str, Any]:
    """The Share dialog: who can open the link (links for anyone disabled, with the
    reason, while the admin forbids them), then the link with a Copy button."""
    return {
        "csrf_token": context.get("csrf_token"),
        "conversation": context.get("conversation"),
        "public_allowed": public_links_allowed(),
        "audiences": SharedLink.Audience,
    }


@register.inclusion_tag("sharing/_share_button.html", takes_context=True)
def share_button(context: template.Context) -> dict[str, Any]:
    """The topbar's Share button (hidden until the chat has a conversation)."""
    return {"conversation": context.get("conversation")}


@register.inclusion_tag("sharing/_shared_links_link.html")
def shared_links_link() -> dict[str, Any]:
    """The sidebar's link to the "Shared links" page."""
    return {}
