from django.db import models


class Upload(models.Model):
    """Written by the processor, in the daemon."""

    pathname = models.TextField()
    event_id = models.BigIntegerField()
    size = models.BigIntegerField()


class Ingested(models.Model):
    """Written by the task, in the task worker."""

    pathname = models.TextField()
    event_id = models.BigIntegerField(unique=True)
