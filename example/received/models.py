from django.db import models


class ReceivedFile(models.Model):
    """A file the daemon reported completely written (``IN_READY``) in the inbox."""

    path = models.TextField(help_text="Where the file was when it was ready.")
    size = models.BigIntegerField(
        null=True, blank=True, help_text="Its size then; empty if it was gone before recording."
    )
    renamed_from = models.TextField(
        blank=True, help_text="The temporary name it was renamed from (x.part), if any."
    )
    event_id = models.BigIntegerField(help_text="The daemon's id of the IN_READY event.")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return self.path
