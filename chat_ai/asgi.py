"""ASGI entry point (uvicorn, daphne). Streaming replies need ASGI."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_ai.settings")

application = get_asgi_application()
