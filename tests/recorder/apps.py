from django.apps import AppConfig


class RecorderConfig(AppConfig):
    """Records every inotifier signal the daemon sends, for the tests to read."""

    name = "recorder"

    def ready(self):
        from inotifier import signals

        from recorder import record

        for name, signal in signals.BY_EVENT_NAME.items():
            signal.connect(record.receiver_for(name), weak=False)
