from django.core.management.base import BaseCommand, CommandError

from inotifier import _native, daemon
from inotifier import settings as inotifier_settings
from inotifier.management.commands.inotifier_stop import command_pid_file


class Command(BaseCommand):
    help = (
        "Start the inotifier daemon: watch every INOTIFIER_WATCH_PATHS entry and hand its "
        "events to its processor. Daemonizes unless --foreground; exits 0 once every watch is "
        "in place, 1 if the daemon did not come up (the reason is printed)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--foreground",
            action="store_true",
            help="Run in this process until SIGTERM or SIGINT (systemd, Docker, supervisord).",
        )

    def handle(self, *args, foreground=False, **options):
        watches = inotifier_settings.watches()
        pid_file = command_pid_file()
        report = _native.status(str(pid_file))
        if report["running"]:
            raise CommandError(
                f"inotifier is already running with pid {report['pid']} (pid file {pid_file}); "
                "stop it with `manage.py inotifier_stop`"
            )
        for watch in watches:
            self.stdout.write(f"Adding watch on {watch.path}, processed by {watch.processor_name}")
        self.stdout.flush()
        try:
            if foreground:
                daemon.run_foreground(watches)
                return
            pid, kernel_watches = daemon.start_background(watches)
        except (daemon.StartError, _native.DaemonError, ValueError) as error:
            raise CommandError(f"the daemon did not start: {error}") from None
        self.stdout.write(
            f"inotifier started: pid {pid}, {len(watches)} watches ({kernel_watches} "
            f"directories and files), pid file {pid_file}"
        )
