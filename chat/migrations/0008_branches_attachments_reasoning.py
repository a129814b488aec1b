"""Conversations become trees (Message.parent, Conversation.current_leaf), attachments,
reasoning settings and thinking time.

Every new column is nullable without a default: on SQLite such a column is added with
ALTER TABLE, while one with a default remakes the table and would drop the search triggers.
Existing conversations become single branches: each message's parent is the one before it.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def link_existing(apps, schema_editor):
    Message = apps.get_model("chat", "Message")
    Conversation = apps.get_model("chat", "Conversation")
    batch: list = []
    previous_conversation = None
    previous_id = None
    leaves: dict[int, int] = {}
    rows = Message.objects.order_by("conversation_id", "created_at", "id").values_list(
        "id", "conversation_id"
    )
    for message_id, conversation_id in rows.iterator(chunk_size=5000):
        if conversation_id != previous_conversation:
            previous_conversation, previous_id = conversation_id, None
        if previous_id is not None:
            batch.append(Message(id=message_id, parent_id=previous_id))
        previous_id = message_id
        leaves[conversation_id] = message_id
        if len(batch) >= 2000:
            Message.objects.bulk_update(batch, ["parent"])
            batch = []
    if batch:
        Message.objects.bulk_update(batch, ["parent"])
    for conversation_id, leaf_id in leaves.items():
        Conversation.objects.filter(pk=conversation_id).update(current_leaf_id=leaf_id)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0007_reply_runs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="chat.message",
                verbose_name="parent",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="reasoning_ms",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="thinking time (ms)"
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="current_leaf",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="chat.message",
                verbose_name="branch shown",
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="reasoning_effort",
            field=models.CharField(
                blank=True, max_length=16, null=True, verbose_name="reasoning effort"
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="thinking_budget",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="thinking budget (tokens)"
            ),
        ),
        migrations.CreateModel(
            name="Attachment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "file",
                    models.FileField(
                        max_length=255, upload_to="attachments/%Y/%m/", verbose_name="file"
                    ),
                ),
                ("name", models.CharField(max_length=255, verbose_name="file name")),
                ("content_type", models.CharField(max_length=100, verbose_name="content type")),
                (
                    "kind",
                    models.CharField(
                        choices=[("image", "image"), ("pdf", "PDF"), ("text", "text file")],
                        max_length=8,
                        verbose_name="kind",
                    ),
                ),
                ("size", models.PositiveBigIntegerField(verbose_name="size (bytes)")),
                ("text", models.TextField(blank=True, verbose_name="text")),
                (
                    "page_count",
                    models.PositiveIntegerField(blank=True, null=True, verbose_name="pages"),
                ),
                ("width", models.PositiveIntegerField(blank=True, null=True, verbose_name="width")),
                (
                    "height",
                    models.PositiveIntegerField(blank=True, null=True, verbose_name="height"),
                ),
                (
                    "position",
                    models.PositiveSmallIntegerField(
                        blank=True, null=True, verbose_name="position"
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, editable=False, verbose_name="created"
                    ),
                ),
                (
                    "message",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attachments",
                        to="chat.message",
                        verbose_name="message",
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attachments",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="owner",
                    ),
                ),
            ],
            options={
                "verbose_name": "attachment",
                "verbose_name_plural": "attachments",
                "ordering": ["position", "created_at", "id"],
                "indexes": [models.Index(fields=["owner", "created_at"], name="att_owner_created")],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["image", "pdf", "text"])),
                        name="att_kind_valid",
                    )
                ],
            },
        ),
        migrations.RunPython(link_existing, migrations.RunPython.noop, elidable=True),
    ]
