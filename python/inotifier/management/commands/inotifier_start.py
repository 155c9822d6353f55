from django.core.management.base import BaseCommand, CommandError

from inotifier import _native, checks, daemon
from inotifier import settings as inotifier_settings
from inotifier.management.commands.inotifier_stop import command_pid_file


class Command(BaseCommand):
    help = (
        "Start the inotifier daemon: watch every INOTIFIER_WATCH_PATHS entry and hand its "
        "events to its processor. Daemonizes unless --foreground; exits 0 once every watch is "
        "in place, 1 if the daemon did not come up or the system checks found a problem "
        "(inotifier's warnings included: a watched path missing on this machine)."
    )
    # Run by handle() itself, on the inspection the daemon is then started from.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--foreground",
            action="store_true",
            help="Run in this process until SIGTERM or SIGINT (systemd, Docker, supervisord).",
        )
        parser.add_argument(
            "--skip-checks",
            action="store_true",
            help="Skip the system checks of the other apps (inotifier's own always run).",
        )

    def handle(self, *args, foreground=False, skip_checks=False, **options):
        inspection = inotifier_settings.inspect()
        watches, problems = inspection
        if not skip_checks:
            # Every app's checks; an error stops here (SystemCheckError), warnings are shown.
            with checks.reporting(inspection):
                self.check()
        if problems:
            # The warnings of inotifier are facts of this machine that the daemon cannot run
            # without: a host that only builds or migrates may have them, a daemon may not.
            raise CommandError(
                "the daemon cannot start on this machine:\n"
                + "\n".join(f"  {problem}" for problem in problems),
                returncode=1,
            )
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
