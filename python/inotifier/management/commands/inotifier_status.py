from django.core.management.base import BaseCommand, CommandError

from inotifier import _native
from inotifier.management.commands.inotifier_stop import (
    NOT_RUNNING,
    command_pid_file,
    not_running_message,
)


class Command(BaseCommand):
    help = (
        "Tell whether the inotifier daemon runs, with its counters. "
        "Exit status (LSB): 0 running, 3 not running (a CommandError with returncode 3 for "
        "call_command)."
    )
    requires_system_checks = ()

    def handle(self, *args, **options):
        pid_file = command_pid_file()
        report = _native.status(str(pid_file))
        if not report["running"]:
            # A CommandError, not SystemExit: call_command() from a health check view or a test
            # gets an exception with the exit status, and its caller goes on.
            raise CommandError(
                not_running_message(pid_file, report["stale_pid"]), returncode=NOT_RUNNING
            )
        self.stdout.write("inotifier is running")
        self.stdout.write(f"pid:            {report['pid']}")
        self.stdout.write(f"pid file:       {pid_file}")
        if "state" in report:
            problems = "; ".join(report["problems"])
            state = f"{report['state']} ({problems})" if problems else report["state"]
            self.stdout.write(f"state:          {state}")
            self.stdout.write(
                f"watches:        {report['watches']} "
                f"({report['kernel_watches']} directories and files)"
            )
            for key in ("events_seen", "delivered", "failed", "retried", "batches", "behind"):
                self.stdout.write(f"{key.replace('_', ' ') + ':':16}{report[key]}")
