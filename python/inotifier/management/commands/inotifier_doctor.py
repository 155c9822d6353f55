from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from inotifier import _native
from inotifier import settings as inotifier_settings


def finding_line(level, check, what, hint):
    """One line per finding, as ``inotifier doctor`` prints them."""
    line = f"{level:<8} {check}: {what}"
    return f"{line} (hint: {hint})" if hint else line


class Command(BaseCommand):
    help = (
        "Check this machine for the INOTIFIER_WATCH_PATHS settings without starting the daemon "
        "(the checks of `inotifier doctor`): the watched paths, inotify watches against "
        "fs.inotify.max_user_watches, max_queued_events, each path's filesystem, the journal "
        "(read-only integrity check, free space), the pid file's directory, the native "
        "processors' options and each broker or webhook (connect and TLS handshake, no event "
        "sent). One line per check: ok, warning or problem, with a hint. Exit status 0 when "
        "nothing is a problem, 1 otherwise (a CommandError with returncode 1 for call_command)."
    )
    # The settings' own checks are part of the findings (their errors as problems).
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="How long to wait for each broker or webhook (connection and TLS handshake).",
        )
        parser.add_argument(
            "--walk-limit",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="How long counting the directories below recursive watches may take.",
        )

    def handle(self, *args, timeout=5.0, walk_limit=30.0, **options):
        watches, problems = inotifier_settings.inspect()
        # Errors are mistakes in the settings: the daemon's configuration cannot be made from
        # them. Warnings are facts of this machine, which the checks below find themselves.
        findings = [
            {"level": "problem", "check": "settings", "what": f"{p.id}: {p.msg}", "hint": p.hint}
            for p in problems
            if not p.warning
        ]
        if not findings:
            try:
                document = inotifier_settings.daemon_config(watches, create_dir=False)
            except ImproperlyConfigured as error:
                # The private runtime directory of the pid file (no PROJECT_PATH) is not safe:
                # the daemon's configuration cannot name its pid file, so nothing else is run.
                findings.append(
                    {
                        "level": "problem",
                        "check": "pid file",
                        "what": str(error),
                        "hint": "make that directory private to this user (mode 0700, owned "
                        "by it), or set PROJECT_PATH",
                    }
                )
            else:
                findings.extend(
                    _native.doctor(document, connect_timeout=timeout, walk_limit=walk_limit)
                )
        counts = {level: 0 for level in ("ok", "warning", "problem")}
        for finding in findings:
            counts[finding["level"]] += 1
            self.stdout.write(
                finding_line(finding["level"], finding["check"], finding["what"], finding["hint"])
            )
        plural = {n: "" if n == 1 else "s" for n in counts.values()}
        summary = (
            f"{counts['ok']} ok, {counts['warning']} warning{plural[counts['warning']]}, "
            f"{counts['problem']} problem{plural[counts['problem']]}"
        )
        self.stdout.write(summary)
        if counts["problem"]:
            raise CommandError(summary, returncode=1)
