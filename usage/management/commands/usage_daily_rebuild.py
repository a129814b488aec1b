"""``manage.py usage_daily_rebuild``: recount the daily usage tables from the records.

The usage pages and budgets read per-day sums (``UsageDaily``, ``UsageDailyPerson``,
``UsageDailyModel``) kept up to date as each usage record is written, with days counted
in the server's ``TIME_ZONE``. Run this after changing ``TIME_ZONE`` (the days then
change) or after deleting usage records by hand. It takes seconds for a million records;
meanwhile new records wait (PostgreSQL) or queue behind it (SQLite).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from usage.services import usage_daily_rebuild


class Command(BaseCommand):
    help = "Recount the daily usage tables from the usage records (after a TIME_ZONE change)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--chunk-days",
            type=int,
            default=31,
            help="Local days summed per statement (default 31).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = usage_daily_rebuild(chunk_days=options["chunk_days"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(", ".join(f"{table}: {count:,} rows" for table, count in rows.items()))
