from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccessConfig(AppConfig):
    """Who may use which model: access rules per Django group (``access.services``)."""

    name = "access"
    verbose_name = _("Model access")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from . import checks  # noqa: F401  (registers the settings check)
        from .models import FallbackChain, ModelAccessRule
        from .services import FALLBACK_CHAINS_KEY, rules_changed

        post_save.connect(rules_changed, sender=ModelAccessRule, dispatch_uid="access-rules-saved")
        post_delete.connect(
            rules_changed, sender=ModelAccessRule, dispatch_uid="access-rules-deleted"
        )

        def chains_changed(**_kwargs: object) -> None:
            from django.core.cache import cache

            cache.delete(FALLBACK_CHAINS_KEY)

        post_save.connect(chains_changed, sender=FallbackChain, dispatch_uid="fallback-saved")
        post_delete.connect(chains_changed, sender=FallbackChain, dispatch_uid="fallback-deleted")
