from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The OpenAI-compatible API (``/v1``): another front door to the reply run."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "api"
    verbose_name = "API"
