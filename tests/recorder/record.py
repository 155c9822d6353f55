"""Appends what the daemon delivers to JSON-lines files in $INOTIFIER_TEST_OUTPUT_DIR:
``signals.jsonl`` (signals received) and ``events.jsonl`` (events given to
:class:`RecordingProcessor`)."""

import json
import os
import threading
import time

from inotifier.event_processors import ProcessEvent

_lock = threading.Lock()


def append(file_name, record):
    directory = os.environ.get("INOTIFIER_TEST_OUTPUT_DIR")
    if directory is None:
        return
    line = json.dumps(record) + "\n"
    with _lock, open(os.path.join(directory, file_name), "a") as output:
        output.write(line)


def describe(event):
    return {
        "maskname": event.maskname,
        "pathname": event.pathname,
        "name": event.name,
        "src_pathname": event.src_pathname,
        "origin": event.origin,
        "id": event.id,
    }


def receiver_for(signal_name):
    def receive(sender, event, **kwargs):
        append(
            "signals.jsonl",
            {"signal": signal_name, "sender": type(sender).__name__, **describe(event)},
        )

    return receive


class RecordingProcessor(ProcessEvent):
    """Writes every event, with the processor's ``label`` option."""

    def my_init(self, label=""):
        self.label = label

    def process_default(self, event):
        append("events.jsonl", {"label": self.label, **describe(event)})


class FailingOnce(ProcessEvent):
    """Raises on the first attempt of every event, records the second."""

    def my_init(self):
        self.seen = set()

    def process_default(self, event):
        if event.id not in self.seen:
            self.seen.add(event.id)
            raise RuntimeError("first attempt fails")
        append("events.jsonl", describe(event))


class Slow(ProcessEvent):
    """Takes ``delay`` seconds per event, recording when it begins and when it is done: a
    processor still busy when the daemon is told to stop."""

    def my_init(self, delay=0.5):
        self.delay = delay

    def process_default(self, event):
        append("events.jsonl", {"stage": "begun", **describe(event)})
        time.sleep(self.delay)
        append("events.jsonl", {"stage": "done", **describe(event)})


class Gate(ProcessEvent):
    """Holds its first event until the file ``release`` appears in the output directory, then
    records every event: what arrives meanwhile queues up in the daemon."""

    def my_init(self):
        self.opened = False

    def process_default(self, event):
        if not self.opened:
            release = os.path.join(os.environ["INOTIFIER_TEST_OUTPUT_DIR"], "release")
            deadline = time.monotonic() + 60
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.opened = True
        append("events.jsonl", describe(event))


class GilHog(ProcessEvent):
    """Starts a thread that, once ``hog-trigger`` appears in the output directory, holds the GIL
    for seconds (``sum`` over a range runs in C and never lets another thread take it),
    recording when it began and ended. Its own events are ignored: no worker ever waits on it."""

    def my_init(self):
        threading.Thread(target=self._hog, daemon=True).start()

    @staticmethod
    def _hog():
        output = os.environ["INOTIFIER_TEST_OUTPUT_DIR"]
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(output, "hog-trigger")):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        append("events.jsonl", {"stage": "hog begun"})
        sum(range(200_000_000))
        append("events.jsonl", {"stage": "hog done"})
