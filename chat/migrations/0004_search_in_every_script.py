"""Search that matches in every script (issue 8): titles and message text compared through
one normalisation, ``chat.search.fold`` (casefold, ё as е), on both databases.

SQLite: replaces migration 0002's FTS5 table over the raw text (whose triggers 0003's
table remake had dropped) with triggers filling an FTS5 trigram table of folded message
text and a table of folded titles, both filled from the rows already there.
PostgreSQL: the SQL function ``chat_search_fold``, derived from this database's
``lower()`` and checked against ``fold`` for every character, and a pg_trgm index on
``chat_search_fold(content)`` in place of the one on ``UPPER(content)``.
See chat/search.py.
"""

import importlib

from django.db import migrations

from chat import search

_initial_index = importlib.import_module("chat.migrations.0002_message_search_index")


def forwards(apps, schema_editor):
    statements = {
        "sqlite": _initial_index.SQLITE_DOWN,
        "postgresql": _initial_index.POSTGRES_DOWN,
    }
    for statement in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement)
    search.install_search_objects(schema_editor.connection)


def backwards(apps, schema_editor):
    search.remove_search_objects(schema_editor.connection)
    statements = {
        "sqlite": _initial_index.SQLITE_UP,
        "postgresql": _initial_index.POSTGRES_UP,
    }
    for statement in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_message_finish_reason_reasoning")]

    operations = [migrations.RunPython(forwards, backwards)]
