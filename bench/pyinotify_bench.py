"""pyinotify's side of bench/django.sh, run in bench/build/pyinotify-venv.

    python pyinotify_bench.py noop|signal DIR COUNT_FILE

Watches DIR for IN_CREATE with a pyinotify Notifier and appends one byte per event to
COUNT_FILE (opened once), as benchproject/counting.py does for inotifier: "noop" counts in
process_IN_CREATE; "signal" sends a plain Django Signal there, whose one receiver counts.
Prints "ready" on stderr once the watch is in place; runs until SIGTERM.
"""

import os
import signal
import sys

import pyinotify

mode, directory, count_file = sys.argv[1:]
fd = os.open(count_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def count():
    os.write(fd, b".")


if mode == "signal":
    import django
    from django.conf import settings
    from django.dispatch import Signal

    settings.configure()
    django.setup()
    in_create = Signal()
    in_create.connect(lambda sender, event, **kwargs: count(), weak=False)

    class Processor(pyinotify.ProcessEvent):
        def process_IN_CREATE(self, event):
            in_create.send(sender=self, event=event)

else:

    class Processor(pyinotify.ProcessEvent):
        def process_IN_CREATE(self, event):
            count()


# SIGTERM as a plain exit, so that the process ends with status 0 and its rusage is complete.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
manager = pyinotify.WatchManager()
notifier = pyinotify.Notifier(manager, Processor())
manager.add_watch(directory, pyinotify.IN_CREATE)
print("ready", file=sys.stderr, flush=True)
notifier.loop()
