"""Static files that are generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from chat.markdown import pygments_css

STATIC = Path(settings.BASE_DIR) / "static" / "chat"


def test_committed_pygments_css_matches_the_highlighter_output() -> None:
    committed = (STATIC / "pygments.css").read_text(encoding="utf-8")
    assert committed == pygments_css(), (
        "static/chat/pygments.css is out of date; regenerate it with: "
        "python -c \"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='chat_ai.settings'; "
        "django.setup(); from chat.markdown import pygments_css; "
        "open('static/chat/pygments.css', 'w').write(pygments_css())\""
    )
