from django.apps import AppConfig


class IngestConfig(AppConfig):
    """The production test project's own app: what an ORM-writing processor and a task store."""

    name = "ingest"
    default_auto_field = "django.db.models.BigAutoField"
