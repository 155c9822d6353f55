"""The journal as Django sees it: no table (the journal is the daemon's SQLite file, read
through the native module), only the entry the admin index lists and the permissions that
guard the admin page."""

from django.db import models


class Journal(models.Model):
    """The admin page of the journal (``inotifier/admin.py``). Its permissions, as the admin
    grants them to users and groups: ``view`` shows the daemon and each processor's pending and
    dead-lettered events, ``change`` retries dead letters (they become pending again), and
    ``delete`` purges dead letters for good. There is no ``add``: events come from the daemon."""

    # Explicit, so that the migration does not depend on the project's DEFAULT_AUTO_FIELD.
    id = models.BigAutoField(primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view", "change", "delete")
        verbose_name = "journal"
        verbose_name_plural = "journal"
