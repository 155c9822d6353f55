from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Upload",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("pathname", models.TextField()),
                ("event_id", models.BigIntegerField()),
                ("size", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="Ingested",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("pathname", models.TextField()),
                ("event_id", models.BigIntegerField(unique=True)),
            ],
        ),
    ]
