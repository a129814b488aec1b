from __future__ import annotations

from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    """A user name and a password typed twice, checked by AUTH_PASSWORD_VALIDATORS."""
