"""WSGI entry point. Pages work under WSGI, but replies arrive only when complete:
serve with ASGI (see README) for token-by-token streaming."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_ai.settings")

application = get_wsgi_application()
