"""The daemon's native processors (log, jsonl, exec, webhook) named in INOTIFIER_WATCH_PATHS:
run by the daemon through manage.py, on real files, without a Python processor."""

import json
import os
import signal
import sys

import pytest
from conftest import read_jsonl, wait_for
from django.core import checks
from inotifier import settings as inotifier_settings

# Appends its arguments (after the output file) to the output file as one JSON line: what the
# exec processor handed over, argument by argument. One write per line, as the daemon may run
# several at once.
RECORD_ARGV = (
    "import json, os, sys\n"
    "line = (json.dumps(sys.argv[2:]) + '\\n').encode()\n"
    "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)\n"
    "os.write(fd, line)\n"
)


def stop(process):
    os.kill(process.pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    return stdout


def test_jsonl_writes_every_event_and_takes_relative_paths_from_the_project(project):
    # Relative: the file goes to PROJECT_PATH, as INOTIFIER_DAEMON_STDERR does.
    project.watches = [
        [
            str(project.watched),
            "IN_CREATE|IN_CLOSE_WRITE|IN_MOVED_TO|IN_DELETE",
            "jsonl",
            {"options": {"path": "native.jsonl"}},
        ]
    ]
    process = project.popen("inotifier_start", "--foreground")
    wait_for(project.watching, what="the daemon to start")
    (project.watched / "a.txt").write_text("a")
    (project.watched / "b.part").write_text("b")
    os.rename(project.watched / "b.part", project.watched / "b.txt")
    os.unlink(project.watched / "a.txt")
    expected = [
        ("IN_CREATE", "a.txt"),
        ("IN_CLOSE_WRITE", "a.txt"),
        ("IN_CREATE", "b.part"),
        ("IN_CLOSE_WRITE", "b.part"),
        ("IN_MOVED_TO", "b.txt"),
        ("IN_DELETE", "a.txt"),
    ]
    output = project.path / "native.jsonl"
    wait_for(lambda: len(read_jsonl(output)) >= len(expected), what="six events in the file")
    stdout = stop(process)
    assert f"Adding watch on {project.watched}, processed by jsonl" in stdout

    lines = read_jsonl(output)
    # Different files are processed concurrently: only each file's own order is guaranteed.
    assert sorted((line["maskname"], line["name"]) for line in lines) == sorted(expected)
    for name in ("a.txt", "b.part"):
        assert [line["maskname"] for line in lines if line["name"] == name][:2] == [
            "IN_CREATE",
            "IN_CLOSE_WRITE",
        ]
    moved = next(line for line in lines if line["maskname"] == "IN_MOVED_TO")
    assert moved["src_pathname"] == str(project.watched / "b.part")
    # The native processor's own format (that of `inotifier watch`), not a Python processor's.
    assert set(moved) >= {"id", "mask", "path", "pathname", "wd", "cookie", "origin", "time"}
    assert not (project.output / "events.jsonl").exists()


def test_native_processors_deliver_while_python_holds_the_gil(project):
    # A thread of a Python processor on another watch takes the GIL and keeps it for seconds;
    # the jsonl processor must deliver meanwhile, which it could not if it called Python.
    hogged = project.path / "hogged"
    hogged.mkdir()
    project.watches = [
        [str(hogged), "IN_CREATE", "recorder.record.GilHog"],
        [str(project.watched), "IN_CREATE", "jsonl", {"options": {"path": "native.jsonl"}}],
    ]
    process = project.popen("inotifier_start", "--foreground")
    wait_for(project.watching, what="the daemon to start")
    (project.output / "hog-trigger").touch()
    wait_for(
        lambda: any(e.get("stage") == "hog begun" for e in project.events()),
        what="the Python processor to take the GIL",
    )
    for index in range(50):
        (project.watched / f"f{index}").touch()
    native = project.path / "native.jsonl"
    wait_for(lambda: len(read_jsonl(native)) >= 50, what="the native processor's 50 lines")
    assert not any(e.get("stage") == "hog done" for e in project.events()), (
        "the native processor waited for the GIL"
    )
    wait_for(
        lambda: any(e.get("stage") == "hog done" for e in project.events()),
        timeout=60,
        what="the Python processor to finish",
    )
    stop(process)


def test_exec_hands_each_name_over_as_one_argument(project):
    argv_file = project.output / "argv.jsonl"
    project.watches = [
        [
            str(project.watched),
            "IN_CLOSE_WRITE",
            "exec",
            {
                "options": {
                    "argv": [
                        sys.executable,
                        "-c",
                        RECORD_ARGV,
                        str(argv_file),
                        "{pathname}",
                        "{maskname}",
                        "name={name}",
                    ]
                }
            },
        ]
    ]
    process = project.popen("inotifier_start", "--foreground")
    wait_for(project.watching, what="the daemon to start")
    # Would remove a file named x if a shell ever saw it; x exists to show it does not.
    (project.watched / "x").write_text("keep")
    hostile = "report 2026 ;rm -rf x $(touch y) 'q\".txt"
    (project.watched / hostile).write_text("data")
    recorded = wait_for(
        lambda: [argv for argv in read_jsonl(argv_file) if argv[0].endswith(".txt")],
        what="the program to run for the hostile name",
    )
    wait_for(lambda: len(read_jsonl(argv_file)) == 2, what="the program to run for x")
    stop(process)

    assert recorded == [[str(project.watched / hostile), "IN_CLOSE_WRITE", f"name={hostile}"]]
    assert (project.watched / "x").read_text() == "keep"
    assert not (project.watched / "y").exists()
    assert not (project.path / "y").exists()


def inotifier_errors():
    return [m for m in checks.run_checks(tags=["inotifier"]) if m.id.startswith("inotifier.")]


@pytest.mark.parametrize(
    ("processor", "options", "message"),
    [
        ("jsonl", {}, "path"),
        ("jsonl", {"path": "/tmp/x.jsonl", "colour": "red"}, "colour"),
        ("exec", {"argv": ["{pathname}"]}, "placeholder"),
        ("exec", {"argv": []}, "argv"),
        ("webhook", {"url": "ftp://example.invalid/"}, "http"),
        ("log", {"colour": "red"}, "colour"),
    ],
    ids=[
        "jsonl without path",
        "unknown option",
        "placeholder in program",
        "empty argv",
        "not http",
        "log takes no options",
    ],
)
def test_native_processor_options_are_checked(settings, tmp_path, processor, options, message):
    settings.INOTIFIER_WATCH_PATHS = [(tmp_path, "IN_CREATE", processor, {"options": options})]
    errors = inotifier_errors()
    assert [error.id for error in errors] == ["inotifier.E014"]
    assert f"the {processor} processor's options are invalid" in errors[0].msg
    assert message in errors[0].msg


def test_valid_native_processors_pass_the_checks_and_create_nothing(settings, tmp_path):
    settings.PROJECT_PATH = tmp_path
    settings.INOTIFIER_WATCH_PATHS = [
        (tmp_path, "IN_CREATE", "log"),
        (tmp_path, "IN_CREATE", "jsonl", {"options": {"path": "events.jsonl"}}),
        (tmp_path, "IN_CREATE", "exec", {"options": {"argv": ["/bin/true", "{pathname}"]}}),
        (tmp_path, "IN_CREATE", "webhook", {"options": {"url": "http://127.0.0.1:9/hook"}}),
    ]
    assert inotifier_errors() == []
    assert not (tmp_path / "events.jsonl").exists()
    document = json.loads(inotifier_settings.daemon_config(inotifier_settings.watches()))
    assert [watch["processor"] for watch in document["watches"]] == [
        "log",
        "jsonl",
        "exec",
        "webhook",
    ]
    assert document["base_dir"] == str(tmp_path.resolve())
