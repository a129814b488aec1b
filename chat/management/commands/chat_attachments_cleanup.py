"""``manage.py chat_attachments_cleanup``: delete uploads never sent with a message.

A file attached in the message box is stored at once; if the message is never sent
(the tab closed, the chip forgotten), it would stay. Run this daily (cron, a systemd
timer): it deletes such uploads older than ``--hours`` (24 by default), files included.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.services.attachments import attachments_expire_unsent


class Command(BaseCommand):
    help = "Delete attachments uploaded but never sent with a message (older than a day)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours",
            type=float,
            default=24.0,
            help="Delete unsent uploads older than this many hours (default 24).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = attachments_expire_unsent(older_than=timedelta(hours=options["hours"]))
        self.stdout.write(f"Deleted {count} unsent attachment(s).")
