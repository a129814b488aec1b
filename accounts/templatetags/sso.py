"""``{% sso_provider_name as name %}``: the single sign-on provider's name for the
sign-in page's button, or "" while single sign-on is off."""

from __future__ import annotations

from django import template

from accounts.oidc import provider_name

register = template.Library()


@register.simple_tag
def sso_provider_name() -> str:
    """OIDC_PROVIDER_NAME when single sign-on is on (OIDC_CLIENT_ID set), else ""."""
    return provider_name()
