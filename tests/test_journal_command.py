"""``manage.py inotifier_journal`` run in subprocesses on real journals.

Journals are filled with the command's own ``import`` (events as the jsonl processor writes
them). What only the running daemon does to a journal (acknowledge, dead-letter) is done here
with SQL on the documented schema (``crates/inotifier-journal/src/lib.rs``: ``deliveries.state``
0 pending, 1 dead, 2 acknowledged), then the commands' effect is read back the same way."""

import json
import sqlite3
import subprocess
import sys

import pytest

KEY = "jsonl@/srv/in"


def event_line(name, mask=8):
    return json.dumps({"mask": mask, "path": "/srv/in", "name": name, "time": 1764077825.5})


@pytest.fixture
def journal_project(project):
    project.watches = [(str(project.watched), "IN_CLOSE_WRITE", "log")]
    return project


def run(project, *args):
    return project.manage("inotifier_journal", *args)


def journal_path(project):
    return project.path / "inotifier.journal"


def fill(project, names=("a", "b", "c", "d"), processor=KEY):
    """Imports one event per name for ``processor``; returns the command's result."""
    source = project.path / f"captured-{processor.replace('/', '_')}.jsonl"
    source.write_text("".join(event_line(n) + "\n" for n in names))
    result = run(project, "import", "--jsonl", source.name, "--processor", processor)
    assert result.returncode == 0, result.stderr
    return result


def states(project, processor=KEY):
    """``{event id: state}`` of ``processor``'s deliveries, read straight from the file."""
    with sqlite3.connect(journal_path(project)) as db:
        rows = db.execute(
            "SELECT d.event, d.state FROM deliveries d JOIN processors p ON p.id = d.processor "
            "WHERE p.key = ? ORDER BY d.event",
            (processor,),
        ).fetchall()
    db.close()
    return dict(rows)


def set_state(project, ids, state, attempts=0, error=None):
    with sqlite3.connect(journal_path(project)) as db:
        db.executemany(
            "UPDATE deliveries SET state = ?, attempts = ?, error = ? WHERE event = ?",
            [(state, attempts, error, i) for i in ids],
        )
    db.close()


def test_without_a_journal_yet_says_so_and_creates_nothing(journal_project):
    result = run(journal_project)
    assert result.returncode == 1
    assert (
        "the daemon has not run with these settings yet: no journal at "
        f"{journal_path(journal_project)}"
    ) in result.stderr
    assert not journal_path(journal_project).exists()


def test_import_then_summary_and_list(journal_project):
    imported = fill(journal_project)
    assert imported.stdout == f"imported 4 events for {KEY} as pending, ids 1-4\n"
    fill(journal_project, names=("x",), processor="other")
    set_state(journal_project, [1], 2)
    set_state(journal_project, [2], 1, attempts=5, error="HTTP 500\nfrom hook")

    summary = run(journal_project, "summary")
    assert summary.returncode == 0, summary.stderr
    assert [line.split() for line in summary.stdout.splitlines()] == [
        ["PROCESSOR", "PENDING", "DEAD", "OLDEST", "PENDING", "LAST", "ACKED"],
        [KEY, "2", "1", "3", "-"],
        ["other", "1", "0", "5", "-"],
    ]
    assert run(journal_project).stdout == summary.stdout

    pending = run(journal_project, "list", "--processor", KEY)
    assert pending.returncode == 0, pending.stderr
    assert pending.stdout.splitlines() == [
        "ID\tPROCESSOR\tMASKNAME\tPATHNAME\tATTEMPTS\tERROR",
        f"3\t{KEY}\tIN_CLOSE_WRITE\t/srv/in/c\t0\t-",
        f"4\t{KEY}\tIN_CLOSE_WRITE\t/srv/in/d\t0\t-",
    ]
    dead = run(journal_project, "list", "--dead", "--json")
    assert dead.returncode == 0, dead.stderr
    [line] = dead.stdout.splitlines()
    entry = json.loads(line)
    assert entry["processor"] == KEY and entry["state"] == "dead"
    assert entry["attempts"] == 5 and entry["error"] == "HTTP 500\nfrom hook"
    assert entry["event"]["id"] == 2 and entry["event"]["pathname"] == "/srv/in/b"

    limited = run(journal_project, "list", "--limit", "1")
    assert len(limited.stdout.splitlines()) == 2
    assert "--limit" in limited.stderr


def test_retry_replay_and_purge_change_the_journal(journal_project):
    fill(journal_project)
    set_state(journal_project, [1, 2], 2)
    set_state(journal_project, [3, 4], 1, attempts=3, error="refused")

    retried = run(journal_project, "retry", "--ids", "4")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == "1 dead-lettered events made pending again\n"
    assert states(journal_project) == {1: 2, 2: 2, 3: 1, 4: 0}

    replayed = run(journal_project, "replay", "--processor", KEY, "--ids", "1-2")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith(f"2 acknowledged events of {KEY} (ids 1-2)")
    assert states(journal_project) == {1: 0, 2: 0, 3: 1, 4: 0}

    refused = run(journal_project, "purge", "--pending")
    assert refused.returncode == 2
    assert "--all" in refused.stderr
    assert states(journal_project) == {1: 0, 2: 0, 3: 1, 4: 0}

    purged = run(journal_project, "purge", "--dead")
    assert purged.stdout == "1 dead events purged\n"
    purged = run(journal_project, "purge", "--pending", "--ids", "1-2")
    assert purged.stdout == "2 pending events purged\n"
    assert states(journal_project) == {4: 0}

    unknown = run(journal_project, "retry", "--processor", "nope")
    assert unknown.returncode == 1
    assert '"nope"' in unknown.stderr and KEY in unknown.stderr


def test_check_corruption_and_recover(journal_project):
    fill(journal_project)
    check = run(journal_project, "check")
    assert check.returncode == 0, check.stderr
    assert check.stdout == f"{journal_path(journal_project)}: ok\n"

    journal_path(journal_project).write_bytes(b"not a SQLite file at all")
    broken = run(journal_project, "summary")
    assert broken.returncode == 1
    assert f"inotifier journal recover --journal {journal_path(journal_project)}" in broken.stderr

    recovered = run(journal_project, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert "damaged journal moved to" in recovered.stdout
    assert "fresh journal written at" in recovered.stdout
    assert run(journal_project).stdout == "no processor has used this journal yet\n"
    assert list(journal_project.path.glob("inotifier.journal.corrupt-*"))


def test_recover_is_refused_while_a_daemon_holds_the_journal(journal_project):
    fill(journal_project)
    # A process holding the journal's lock file as the daemon does: an exclusive flock, its
    # pid written in it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "f = open(sys.argv[1], 'w')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "f.write(f'{os.getpid()}\\n')\n"
            "f.flush()\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            f"{journal_path(journal_project)}.lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    journal_project.processes.append(holder)
    assert holder.stdout.readline() == "locked\n"
    refused = run(journal_project, "recover")
    assert refused.returncode == 1, refused.stderr
    assert f"in use by another daemon (pid {holder.pid})" in refused.stderr
    assert states(journal_project) == {1: 0, 2: 0, 3: 0, 4: 0}


def test_a_disabled_journal_and_bad_usage(journal_project):
    journal_project.extra_env["INOTIFIER_TEST_JOURNAL"] = json.dumps({"enabled": False})
    disabled = run(journal_project)
    assert disabled.returncode == 1
    assert "disabled" in disabled.stderr
    usage = run(journal_project, "replay", "--processor", KEY)
    assert usage.returncode == 2
    bad_ids = run(journal_project, "retry", "--ids", "9-1")
    assert bad_ids.returncode == 2


def test_a_custom_journal_path_is_used(journal_project):
    (journal_project.path / "state").mkdir()
    journal_project.extra_env["INOTIFIER_TEST_JOURNAL"] = json.dumps(
        {"path": "state/events.journal"}
    )
    fill(journal_project)
    assert (journal_project.path / "state/events.journal").exists()
    assert not journal_path(journal_project).exists()
    assert KEY in run(journal_project).stdout
