from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from django.conf import settings

        from .providers import register_openai_compatible

        register_openai_compatible(getattr(settings, "OPENAI_COMPATIBLE_ENDPOINTS", {}))
