from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UsageConfig(AppConfig):
    """Usage records, model prices (and, later, budgets)."""

    name = "usage"
    verbose_name = _("Usage and cost")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .models import ModelPrice
        from .prices import price_cache_clear

        # A price saved or deleted in this process applies to the next reply at once;
        # other processes pick it up when their cache entry expires (PRICE_CACHE_SECONDS).
        post_save.connect(price_cache_clear, sender=ModelPrice, dispatch_uid="usage.price_saved")
        post_delete.connect(
            price_cache_clear, sender=ModelPrice, dispatch_uid="usage.price_deleted"
        )
