"""Indexes for substring search over message text, per database.

SQLite: an FTS5 table with the trigram tokenizer, kept in step by triggers.
PostgreSQL: a pg_trgm GIN index on UPPER(content), the expression Django's icontains
compares, so the same query uses it.
"""

from django.db import migrations

SQLITE_UP = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS chat_message_fts USING fts5(
        content, content='chat_message', content_rowid='id', tokenize='trigram')""",
    """CREATE TRIGGER IF NOT EXISTS chat_message_fts_ai AFTER INSERT ON chat_message BEGIN
        INSERT INTO chat_message_fts(rowid, content) VALUES (new.id, new.content);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chat_message_fts_ad AFTER DELETE ON chat_message BEGIN
        INSERT INTO chat_message_fts(chat_message_fts, rowid, content)
        VALUES ('delete', old.id, old.content);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chat_message_fts_au AFTER UPDATE OF content ON chat_message
    BEGIN
        INSERT INTO chat_message_fts(chat_message_fts, rowid, content)
        VALUES ('delete', old.id, old.content);
        INSERT INTO chat_message_fts(rowid, content) VALUES (new.id, new.content);
    END""",
    "INSERT INTO chat_message_fts(chat_message_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS chat_message_fts_ai",
    "DROP TRIGGER IF EXISTS chat_message_fts_ad",
    "DROP TRIGGER IF EXISTS chat_message_fts_au",
    "DROP TABLE IF EXISTS chat_message_fts",
]
POSTGRES_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS msg_content_trgm ON chat_message "
    "USING gin (UPPER(content) gin_trgm_ops)",
]
POSTGRES_DOWN = ["DROP INDEX IF EXISTS msg_content_trgm"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}),
            _run({"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}),
        ),
    ]
