"""Folders (projects), pins and the archive (issue 13): chat.Folder, and on each
conversation its folder, when it was pinned and when it was archived.

The new conversation columns are nullable without defaults: on SQLite such a column is
added with ALTER TABLE, while one with a default remakes the table and would drop the
search triggers (migrations 0002 and 0004). The folder table is new: its unique
constraint is created with it.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0009_fallback"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Folder",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, verbose_name="name")),
                (
                    "name_key",
                    models.CharField(editable=False, max_length=100, verbose_name="name key"),
                ),
                ("system_prompt", models.TextField(blank=True, verbose_name="system prompt")),
                (
                    "provider",
                    models.CharField(blank=True, max_length=64, verbose_name="default provider"),
                ),
                (
                    "model",
                    models.CharField(blank=True, max_length=200, verbose_name="default model"),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, editable=False, verbose_name="created"
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chat_folders",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="owner",
                    ),
                ),
            ],
            options={
                "verbose_name": "folder",
                "verbose_name_plural": "folders",
                "ordering": ["name_key", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("owner", "name_key"), name="folder_owner_name_unique"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="conversation",
            name="archived_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="archived"),
        ),
        migrations.AddField(
            model_name="conversation",
            name="pinned_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="pinned"),
        ),
        migrations.AddField(
            model_name="conversation",
            name="folder",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="conversations",
                to="chat.folder",
                verbose_name="folder",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("pinned_at__isnull", False)),
                fields=["owner", "-pinned_at"],
                name="conv_owner_pinned",
            ),
        ),
    ]
