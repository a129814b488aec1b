# Fallback (issue 12): a conversation's own fallback chain, and on each reply the models
# that failed before the one that answered. Nullable without defaults: on SQLite a
# column with a default is added by remaking the table, which would drop the search
# triggers.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0008_branches_attachments_reasoning"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="fallback_models",
            field=models.JSONField(blank=True, null=True, verbose_name="fallback models"),
        ),
        migrations.AddField(
            model_name="message",
            name="fallback",
            field=models.JSONField(blank=True, null=True, verbose_name="fallback"),
        ),
    ]
