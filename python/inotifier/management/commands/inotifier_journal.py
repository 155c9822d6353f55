"""``manage.py inotifier_journal``: what ``inotifier journal`` does, on the journal of the
settings (``INOTIFIER_JOURNAL``), with the same output."""

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inotifier import _native, journal
from inotifier import settings as inotifier_settings

SUBCOMMANDS = (
    "summary",
    "list",
    "retry",
    "purge",
    "replay",
    "check",
    "recover",
    "reset",
    "import",
)


def id_range(text):
    """``A-B`` or ``A`` as ``(A, B)``; argparse reports the ValueError as a usage error."""
    first, _, last = text.partition("-")
    try:
        first, last = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"{text!r} is not an id range: write A-B or A, such as 100-200") from None
    if first < 0 or first > last:
        raise ValueError(f"{text!r}: the first id is above the last")
    return first, last


id_range.__name__ = "id range"


class Command(BaseCommand):
    help = (
        "Inspect and repair the inotifier daemon's durable journal: pending and dead-lettered "
        "events per processor (summary, the default), list, retry, purge, replay, check, "
        "recover, reset, import. Every subcommand but recover and reset works while the daemon "
        "runs. "
        "Exit status: 0 done, 1 an error, 2 a usage error."
    )
    # Repairing the journal must work even when the watches have become invalid.
    requires_system_checks = ()

    def add_arguments(self, parser):
        parser.add_argument(
            "--journal",
            metavar="PATH",
            help="The journal file (default: INOTIFIER_JOURNAL's path, next to the pid file).",
        )
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")

        sub.add_parser(
            "summary",
            help="Per processor: pending, dead, the oldest pending id, the last acknowledged id.",
        )

        listing = sub.add_parser("list", help="List pending (or --dead) events.")
        listing.add_argument("--processor", metavar="KEY", help="Only this processor key.")
        listing.add_argument("--dead", action="store_true", help="Dead-lettered events.")
        listing.add_argument(
            "--limit", type=int, default=100, metavar="N", help="At most N (default 100)."
        )
        listing.add_argument("--json", action="store_true", help="One JSON object per line.")

        retry = sub.add_parser("retry", help="Make dead-lettered events pending again.")
        retry.add_argument("--processor", metavar="KEY", help="Only this processor key.")
        retry.add_argument("--ids", type=id_range, metavar="A-B", help="Only these ids.")

        purge = sub.add_parser("purge", help="Delete dead-lettered or pending events for good.")
        purge.add_argument("--processor", metavar="KEY", help="Only this processor key.")
        state = purge.add_mutually_exclusive_group(required=True)
        state.add_argument("--dead", action="store_true", help="Dead-lettered events.")
        state.add_argument("--pending", action="store_true", help="Pending events.")
        purge.add_argument("--ids", type=id_range, metavar="A-B", help="Only these ids.")
        purge.add_argument(
            "--all",
            action="store_true",
            help="With --pending and neither --processor nor --ids: every pending event.",
        )

        replay = sub.add_parser(
            "replay", help="Deliver retained acknowledged events to a processor again."
        )
        replay.add_argument("--processor", metavar="KEY", required=True, help="The processor.")
        replay.add_argument("--ids", type=id_range, metavar="A-B", required=True, help="The ids.")

        sub.add_parser("check", help="Read the whole journal file and report damage.")
        sub.add_parser(
            "recover", help="Salvage a corrupt journal into a fresh one (daemon stopped)."
        )

        sub.add_parser(
            "reset",
            help="Accept the loss of a journal: move it aside so that the next start makes a "
            "new one (daemon stopped).",
        )

        imported = sub.add_parser(
            "import", help="Append the events of a JSON-lines file as pending for a processor."
        )
        imported.add_argument("--jsonl", metavar="FILE", required=True, help="The file.")
        imported.add_argument(
            "--processor", metavar="KEY", required=True, help="The processor key."
        )

    def handle(self, *args, **options):
        path = self.journal_path(options["journal"])
        subcommand = options["subcommand"] or "summary"
        try:
            getattr(self, f"do_{subcommand}")(path, options)
        except (RuntimeError, ValueError) as error:
            raise CommandError(str(error)) from None

    def journal_path(self, given):
        if given:
            return str(inotifier_settings.project_dir() / given)
        try:
            return journal.path()
        except journal.Unavailable as error:
            raise CommandError(str(error)) from None

    def do_summary(self, path, options):
        rows = _native.journal_summary(path)
        if not rows:
            self.stdout.write("no processor has used this journal yet")
            return
        width = max(len("PROCESSOR"), *(len(row["key"]) for row in rows))
        line = "{:<" + str(width) + "}  {:>8}  {:>8}  {:>14}  {:>10}"
        self.stdout.write(
            line.format("PROCESSOR", "PENDING", "DEAD", "OLDEST PENDING", "LAST ACKED")
        )
        for row in rows:
            self.stdout.write(
                line.format(
                    row["key"],
                    row["pending"],
                    row["dead"],
                    "-" if row["oldest_pending"] is None else row["oldest_pending"],
                    "-" if row["last_acked"] is None else row["last_acked"],
                )
            )

    def do_list(self, path, options):
        if options["limit"] < 0:
            raise CommandError("--limit: give a number of entries, 0 or more")
        rows = _native.journal_list(path, options["processor"], options["dead"], options["limit"])
        state = "dead" if options["dead"] else "pending"
        if options["json"]:
            for row in rows:
                head = (
                    f'{{"attempts":{row["attempts"]},"error":{_json(row["error"])},'
                    f'"processor":{_json(row["processor"])},"state":"{row["state"]}"'
                )
                self.stdout.write(f'{head},"event":{row["json"]}}}')
        elif not rows:
            self.stdout.write(f"no {state} events")
        else:
            self.stdout.write("ID\tPROCESSOR\tMASKNAME\tPATHNAME\tATTEMPTS\tERROR")
            for row in rows:
                error = "-" if row["error"] is None else " ".join(row["error"].split("\n"))
                pathname = os.fsencode(row["pathname"])
                self.stdout.write(
                    "\t".join(
                        [
                            str(row["id"]),
                            row["processor"],
                            row["maskname"],
                            journal.printable(pathname),
                            str(row["attempts"]),
                            error.replace("\t", " "),
                        ]
                    )
                )
        if len(rows) == options["limit"]:
            self.stderr.write(f"(the first {len(rows)} shown: --limit N for more, or --processor)")

    def do_retry(self, path, options):
        first, last = options["ids"] or (None, None)
        count = _native.journal_retry(path, options["processor"], first, last)
        self.stdout.write(f"{count} dead-lettered events made pending again")

    def do_purge(self, path, options):
        if options["pending"] and not (options["processor"] or options["ids"] or options["all"]):
            raise CommandError(
                "purging pending events loses them: name them with --processor KEY "
                "and/or --ids A-B, or give --all to purge every pending event",
                returncode=2,
            )
        first, last = options["ids"] or (None, None)
        count = _native.journal_purge(path, options["dead"], options["processor"], first, last)
        self.stdout.write(f"{count} {'dead' if options['dead'] else 'pending'} events purged")

    def do_replay(self, path, options):
        first, last = options["ids"]
        count = _native.journal_replay(path, options["processor"], first, last)
        self.stdout.write(
            f"{count} acknowledged events of {options['processor']} (ids {first}-{last}) made "
            "pending again"
        )
        if count == 0:
            self.stderr.write(
                "(none: ids no longer retained, not yet acknowledged, or never routed to this "
                "processor)"
            )

    def do_check(self, path, options):
        _native.journal_check(path)
        self.stdout.write(f"{path}: ok")

    def do_recover(self, path, options):
        # A daemon running with the journal holds its lock: recovery refuses then.
        self.stdout.write(_native.journal_recover(path), ending="")
        self.stdout.write(f"fresh journal written at {path}")

    def do_reset(self, path, options):
        # The journal's lock refuses this while a daemon runs with it.
        aside = _native.journal_reset(path)
        self.stdout.write(
            f"journal {path} moved aside to {aside}; the next start makes a new journal"
        )

    def do_import(self, path, options):
        jsonl = Path(inotifier_settings.project_dir()) / options["jsonl"]
        ids = _native.journal_import(path, str(jsonl), options["processor"])
        if ids is None:
            self.stdout.write(f"imported 0 events: {jsonl} holds none")
            return
        first, last = ids
        self.stdout.write(
            f"imported {last - first + 1} events for {options['processor']} as pending, "
            f"ids {first}-{last}"
        )


def _json(value):
    return json.dumps(value, ensure_ascii=False)
