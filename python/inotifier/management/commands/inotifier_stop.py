from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from inotifier import _native
from inotifier import settings as inotifier_settings

#: LSB: "program is not running".
NOT_RUNNING = 3


class Command(BaseCommand):
    help = (
        "Stop the inotifier daemon: SIGTERM to the process holding the pid file's lock (never to "
        "a pid merely written in it), then wait until it has delivered what it read. "
        "Exit status: 0 stopped, 1 still running after --timeout, 3 not running."
    )
    # Stopping must work even when the settings have become invalid.
    requires_system_checks = ()

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout",
            type=float,
            default=60.0,
            help="Seconds to wait for the daemon to finish (default 60).",
        )

    def handle(self, *args, timeout=60.0, **options):
        if not timeout >= 0:
            raise CommandError(f"--timeout {timeout:g}: give the seconds to wait, 0 or more")
        pid_file = command_pid_file()
        outcome, pid = _native.stop(str(pid_file), timeout)
        if outcome == "stopped":
            self.stdout.write(f"inotifier (pid {pid}) stopped")
        elif outcome == "still_running":
            raise CommandError(
                f"inotifier (pid {pid}) was sent SIGTERM but is still running after {timeout:g}s: "
                f"it is delivering what it had read; wait longer (--timeout), or kill -KILL {pid} "
                "to give those events up"
            )
        else:
            raise CommandError(not_running_message(pid_file, pid), returncode=NOT_RUNNING)


def not_running_message(pid_file, stale_pid):
    if stale_pid is not None:
        return (
            f"inotifier is not running (stale pid file {pid_file} names pid {stale_pid}, which "
            "no longer holds it; the next start takes it over)"
        )
    return f"inotifier is not running (no pid file at {pid_file})"


def command_pid_file():
    """The pid file; an unusable runtime directory is a command error, not a traceback."""
    try:
        return inotifier_settings.pid_file()
    except ImproperlyConfigured as error:
        raise CommandError(str(error)) from None
