from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SiteConfigConfig(AppConfig):
    """Instance-wide choices an admin makes in the admin (the default model, ...)."""

    name = "siteconfig"
    verbose_name = _("Site configuration")
    default_auto_field = "django.db.models.BigAutoField"
