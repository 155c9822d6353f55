"""A Celery app for the broker tests: its one task records every call it runs, as a JSON
line in ``$INOTIFIER_TEST_RECORD_FILE``, for the test to compare with the files it made. Run
by a real ``celery worker`` (``-A celery_recorder``), connected to ``$CELERY_BROKER_URL``."""

import json
import os

from celery import Celery

app = Celery("celery_recorder", broker=os.environ.get("CELERY_BROKER_URL"))
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_acks_late=False,
    # After a reconnection to RabbitMQ, a worker whose event loop has nothing else to do can
    # leave deliveries unread in its buffer (seen: 4 unacknowledged, nothing running, until
    # any other message arrived); heartbeats give the loop something to do every few seconds.
    broker_heartbeat=10,
)

TASK = "inotifier_tests.record"


@app.task(name=TASK, bind=True)
def record(self, *args, **kwargs):
    line = json.dumps(
        {
            "task_id": self.request.id,
            "args": args,
            "kwargs": kwargs,
            "origin": self.request.origin,
            "routing_key": (self.request.delivery_info or {}).get("routing_key"),
        }
    )
    # One write per line, appended: a line is whole or absent.
    fd = os.open(os.environ["INOTIFIER_TEST_RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
