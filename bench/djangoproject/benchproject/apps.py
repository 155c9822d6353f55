from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Connects the counting receiver when the bench runs AllEventsSignaler."""

    name = "benchproject"

    def ready(self):
        import os

        if os.environ.get("BENCH_PROCESSOR") == "signal":
            from inotifier import signals

            from benchproject import counting

            signals.in_create.connect(counting.receiver, weak=False)
