import json

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

    def add_arguments(self, parser):
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="One JSON object, the format of `inotifier status --json` (docs/metrics.md).",
        )

    def handle(self, *args, as_json=False, **options):
        pid_file = command_pid_file()
        if as_json:
            document = _native.status_json(str(pid_file))
            self.stdout.write(document)
            if not json.loads(document)["running"]:
                raise CommandError("inotifier is not running", returncode=NOT_RUNNING)
            return
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
