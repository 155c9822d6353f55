from django.apps import AppConfig


class ReceivedConfig(AppConfig):
    """Records every file the inotifier daemon reports ready in the inbox."""

    name = "received"
    verbose_name = "Received files"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from inotifier import signals

        from received.receivers import record_ready_file

        # dispatch_uid: connected once even if ready() runs twice.
        signals.in_ready.connect(record_ready_file, dispatch_uid="received.record_ready_file")
