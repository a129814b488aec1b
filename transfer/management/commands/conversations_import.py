"""``manage.py conversations_import --user NAME FILE``: import conversations for one
person from a file in any supported format (this app's export, ChatGPT's or Claude's
data export, an OpenAI-style list of messages; JSON or ZIP), with the same checks,
limits and duplicate detection as the import page (``transfer.services.importer``):
nothing is imported when the file is not valid, and conversations imported before are
skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from transfer.services import importer

from .conversations_export import _user


class Command(BaseCommand):
    help = (
        "Import conversations for one user from a file (this app's, ChatGPT's or Claude's "
        "export, or an OpenAI-style list of messages)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The user's username.")
        parser.add_argument("file", help="The file to import (.json or .zip).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = _user(options["user"])
        path = Path(options["file"])
        try:
            handle = path.open("rb")
        except OSError as e:
            raise CommandError(f"Could not read {path}: {e.strerror or e}") from None
        with handle:
            try:
                batch = importer.conversations_import(
                    owner=user, handle=handle, file_name=path.name
                )
            except ValidationError as e:
                raise CommandError(
                    "Nothing was imported:\n" + "\n".join(f"- {m}" for m in e.messages)
                ) from None
        self.stdout.write(
            f"Imported {batch.conversations_imported} conversation(s), "
            f"{batch.messages_imported} message(s) and {batch.attachments_imported} file(s) "
            f"for {user.get_username()}; {len(batch.skipped)} skipped as already imported."
        )
        for note in batch.notes:
            self.stdout.write(f"Left out: {note}")
