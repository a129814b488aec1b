from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-in, sign-out and sign-up; the sign-in lockout (django-axes) is set up in
    ``accounts.lockout``."""

    name = "accounts"
    verbose_name = "Accounts"
