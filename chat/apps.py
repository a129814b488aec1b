from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = _("Chat")

    def ready(self) -> None:
        from django.conf import settings
        from django.core.checks import Tags, register

        from chat_ai.middleware import check_security_middleware

        register(check_security_middleware, Tags.security, deploy=True)

        # The search function SQLite's triggers call must exist on every connection,
        # whatever else imports chat.search (see chat/search.py).
        from . import search  # noqa: F401
        from .providers import register_openai_compatible

        register_openai_compatible(getattr(settings, "OPENAI_COMPATIBLE_ENDPOINTS", {}))

        # An attachment's file leaves the storage with its row (cascades included).
        from django.db.models.signals import post_delete

        from .models import Attachment
        from .services.attachments import attachment_file_delete

        post_delete.connect(
            attachment_file_delete, sender=Attachment, dispatch_uid="chat.attachment_file_delete"
        )
