"""``manage.py conversations_export --user NAME [--output FILE.zip]``: every conversation
of one person as a ZIP archive (the same archive as "Export all conversations" on the
export and import page; see ``transfer.services.export``), for backups and for moving
to another server (``conversations_import`` reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from transfer.services import export


class Command(BaseCommand):
    help = "Export every conversation of one user as a ZIP archive (JSON, Markdown and files)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The user's username.")
        parser.add_argument(
            "--output",
            help="The archive to write (default: chat-ai-conversations-<user>-<date>.zip "
            "in the current folder). An existing file is replaced.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = _user(options["user"])
        output = Path(
            options["output"]
            or export.conversations_zip_name().replace(
                "conversations-", f"conversations-{user.get_username()}-"
            )
        )
        queryset = export.conversations_of(user)
        count = queryset.count()
        partial = output.with_name(f".{output.name}.part")
        try:
            with partial.open("wb") as target:
                size = export.zip_to_file(queryset=queryset, target=target)
            partial.replace(output)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise CommandError(f"Could not write {output}: {e.strerror or e}") from None
        self.stdout.write(
            f"Exported {count} conversation(s) of {user.get_username()} to {output} ({size} bytes)."
        )


def _user(username: str) -> Any:
    """The user named ``username``; CommandError when there is none."""
    model = get_user_model()
    try:
        return model.objects.get(**{model.USERNAME_FIELD: username})
    except model.DoesNotExist:
        raise CommandError(f"No user is named {username!r}.") from None
