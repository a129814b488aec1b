from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SharingConfig(AppConfig):
    """Share links: a read-only snapshot of a conversation behind a secret link."""

    name = "sharing"
    verbose_name = _("Share links")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from .models import SharedImage
        from .services import shared_image_files_delete

        # A shared image's files leave the storage with its row (cascades included).
        post_delete.connect(
            shared_image_files_delete, sender=SharedImage, dispatch_uid="sharing.image_delete"
        )
