from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TransferConfig(AppConfig):
    """Export and import of conversations: files for people, backups, moving servers."""

    name = "transfer"
    verbose_name = _("Export and import")
