"""What the bench counts with, on the inotifier side: one byte appended per event to
$BENCH_COUNT_FILE, opened once, so that the count is the file's size (read by the script with
stat, without disturbing the watcher). bench/pyinotify_bench.py does exactly the same."""

import os

from inotifier.event_processors import ProcessEvent

# O_APPEND: the daemon calls processors on several worker threads; each os.write is one
# write() that the kernel appends atomically, so no lock is needed and no byte is lost.
_fd = os.open(os.environ["BENCH_COUNT_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def count():
    os.write(_fd, b".")


class CountingProcessor(ProcessEvent):
    """A no-op processor: pyinotify's dispatch to process_IN_CREATE, then count."""

    def process_IN_CREATE(self, event):
        count()


def receiver(sender, event, **kwargs):
    count()
