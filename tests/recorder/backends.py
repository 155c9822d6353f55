"""A task backend that refuses work while ``$INOTIFIER_TEST_OUTPUT_DIR/queue-away`` exists,
as one whose database or broker is unreachable raises from ``enqueue()``; otherwise Django's
ImmediateBackend (the task runs at once, in the daemon)."""

import os

try:
    from django.tasks.backends.immediate import ImmediateBackend
except ImportError:
    from django_tasks.backends.immediate import ImmediateBackend


class FlakyBackend(ImmediateBackend):
    def enqueue(self, task, args, kwargs):
        marker = os.path.join(
            os.environ.get("INOTIFIER_TEST_OUTPUT_DIR", "/nonexistent"), "queue-away"
        )
        if os.path.exists(marker):
            raise ConnectionError("the task queue is away")
        return super().enqueue(task, args, kwargs)
