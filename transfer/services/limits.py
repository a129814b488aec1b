"""The limits of an import, each a setting with a default (set it in settings.py):

- ``TRANSFER_IMPORT_MAX_BYTES``: the largest file accepted (50 MB);
- ``TRANSFER_IMPORT_MAX_UNPACKED_BYTES``: the most bytes read out of a ZIP archive, its
  conversations.json and attached files together (200 MB);
- ``TRANSFER_IMPORT_MAX_CONVERSATIONS``: conversations in one file (10,000);
- ``TRANSFER_IMPORT_MAX_MESSAGES``: messages in one file, all conversations together
  (200,000).

Attached files also obey the chat's own limits (``CHAT_ATTACHMENT_MAX_BYTES`` per file,
``CHAT_ATTACHMENT_QUOTA_BYTES`` per person).
"""

from __future__ import annotations

from django.conf import settings

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_UNPACKED_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_CONVERSATIONS = 10_000
DEFAULT_MAX_MESSAGES = 200_000


def max_bytes() -> int:
    """The largest file an import accepts, in bytes (``TRANSFER_IMPORT_MAX_BYTES``)."""
    return int(getattr(settings, "TRANSFER_IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES))


def max_unpacked_bytes() -> int:
    """The most bytes read out of one ZIP archive (``TRANSFER_IMPORT_MAX_UNPACKED_BYTES``)."""
    return int(getattr(settings, "TRANSFER_IMPORT_MAX_UNPACKED_BYTES", DEFAULT_MAX_UNPACKED_BYTES))


def max_conversations() -> int:
    """Conversations one file may hold (``TRANSFER_IMPORT_MAX_CONVERSATIONS``)."""
    return int(getattr(settings, "TRANSFER_IMPORT_MAX_CONVERSATIONS", DEFAULT_MAX_CONVERSATIONS))


def max_messages() -> int:
    """Messages one file may hold in all (``TRANSFER_IMPORT_MAX_MESSAGES``)."""
    return int(getattr(settings, "TRANSFER_IMPORT_MAX_MESSAGES", DEFAULT_MAX_MESSAGES))
