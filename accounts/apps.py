from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Sign-in, sign-out and sign-up; the sign-in lockout (django-axes) is set up in
    ``accounts.lockout``; a person's language is applied at sign-in by
    ``accounts.language``."""

    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .language import apply_account_language_at_sign_in

        user_logged_in.connect(
            apply_account_language_at_sign_in, dispatch_uid="accounts.language.sign_in"
        )
