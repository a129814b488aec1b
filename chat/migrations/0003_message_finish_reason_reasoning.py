"""Why a reply ended, the model's reasoning apart from its answer, and errors worded
for people (``error``) apart from the detail for staff (``error_detail``)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_message_search_index")]

    operations = [
        migrations.RemoveConstraint(model_name="message", name="msg_status_valid"),
        migrations.AddField(
            model_name="message",
            name="finish_reason",
            field=models.CharField(blank=True, max_length=32, verbose_name="finish reason"),
        ),
        migrations.AddField(
            model_name="message",
            name="reasoning",
            field=models.TextField(blank=True, verbose_name="reasoning"),
        ),
        migrations.AddField(
            model_name="message",
            name="error_kind",
            field=models.CharField(blank=True, max_length=32, verbose_name="error kind"),
        ),
        migrations.AddField(
            model_name="message",
            name="error_detail",
            field=models.TextField(blank=True, verbose_name="error detail"),
        ),
        migrations.AddField(
            model_name="message",
            name="reasoning_tokens",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="reasoning tokens"
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="status",
            field=models.CharField(
                choices=[
                    ("streaming", "streaming"),
                    ("complete", "complete"),
                    ("incomplete", "incomplete"),
                    ("error", "error"),
                    ("stopped", "stopped"),
                ],
                default="complete",
                max_length=16,
                verbose_name="status",
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status__in", ["streaming", "complete", "incomplete", "error", "stopped"])
                ),
                name="msg_status_valid",
            ),
        ),
    ]
