from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _


class SignupForm(UserCreationForm):
    """A user name and a password typed twice, checked by AUTH_PASSWORD_VALIDATORS. Names
    starting with "oidc-" belong to single sign-on accounts (accounts.oidc) and are
    refused: registering one could block that person's sign-in."""

    def clean_username(self) -> str:
        username = super().clean_username()
        if username.lower().startswith("oidc-"):
            raise forms.ValidationError(
                _("User names starting with “oidc-” are reserved for single sign-on.")
            )
        return username


class ApiKeyCreateForm(forms.Form):
    """A new API key: a name to recognise it by, and optionally how many days it lasts."""

    MAX_DAYS = 3650

    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("Where you will use it, for example “laptop” or “CI”."),
    )
    expires_in_days = forms.IntegerField(
        label=_("Expires after (days)"),
        required=False,
        min_value=1,
        max_value=MAX_DAYS,
        help_text=_("Leave empty for a key that does not expire."),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("Give the key a name."))
        return name

    def expires_at(self, now: datetime) -> datetime | None:
        """When the key stops working, counted from ``now``; None for never."""
        days = self.cleaned_data.get("expires_in_days")
        return now + timedelta(days=days) if days else None
