from django.db import migrations, models


class Migration(migrations.Migration):
    """No table: the journal lives in the daemon's own file. The model exists for the admin
    index and for its permissions, which ``migrate`` creates."""

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Journal",
            fields=[("id", models.BigAutoField(primary_key=True, serialize=False))],
            options={
                "verbose_name": "journal",
                "verbose_name_plural": "journal",
                "managed": False,
                "default_permissions": ("view", "change", "delete"),
            },
        ),
    ]
