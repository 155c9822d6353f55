"""``manage.py inotifier_doctor``: the checks of ``inotifier doctor`` on the Django settings, run
in a real subprocess against real directories, inotify limits and a closed port."""

import contextlib
from pathlib import Path

import pytest
from conftest import inotify_limit
from django.core.management import call_command
from django.core.management.base import CommandError
from services import free_port

SIGNALER = "inotifier.event_processors.AllEventsSignaler"


def lines(result, level, check):
    prefix = f"{level:<8} {check}: "
    return [line for line in result.stdout.splitlines() if line.startswith(prefix)]


def inotify_watches_in_use():
    watches = 0
    for info in Path("/proc").glob("[0-9]*/fdinfo/*"):
        with contextlib.suppress(OSError):
            watches += info.read_text().count("inotify wd:")
    return watches


def test_sound_settings_have_no_problem(project):
    (project.watched / "a" / "b").mkdir(parents=True)
    project.watches = [
        [str(project.watched), "IN_CLOSE_WRITE", SIGNALER, {"recursive": True}],
        [str(project.watched), "IN_CREATE", "jsonl", {"options": {"path": "events.jsonl"}}],
    ]
    result = project.manage("inotifier_doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("problem ")]
    assert len(lines(result, "ok", "path")) == 1, result.stdout
    (watches,) = lines(result, "ok", "watches")
    assert ": 3 watches needed" in watches, "the root and its two directories, one watch each"
    assert lines(result, "ok", "queue"), result.stdout
    assert any("backend inotify" in line for line in lines(result, "ok", "filesystem"))
    assert any("journal" in line for line in lines(result, "ok", "journal"))
    assert lines(result, "ok", "pid file"), result.stdout
    processors = lines(result, "ok", "processor")
    assert any("run by the host application" in line for line in processors), result.stdout
    assert any("`jsonl`" in line and "valid" in line for line in processors), result.stdout
    assert result.stdout.splitlines()[-1].endswith(", 0 problems")
    assert not (project.path / "events.jsonl").exists(), "nothing created"
    assert not project.pid_file.exists()


def test_a_missing_path_and_an_unreachable_broker_are_problems(project):
    missing = project.watched / "not-mounted-here"
    closed = free_port()
    project.watches = [
        [str(missing), "IN_CLOSE_WRITE", SIGNALER],
        [
            str(project.watched),
            "IN_CLOSE_WRITE",
            "redis_stream",
            {"options": {"url": f"redis://127.0.0.1:{closed}/0"}},
        ],
    ]
    result = project.manage("inotifier_doctor", "--timeout", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    (path,) = lines(result, "problem", "path")
    assert f"{missing} does not exist" in path
    assert "(hint: create it" in path
    (reach,) = lines(result, "problem", "reach")
    assert f"127.0.0.1:{closed}" in reach
    assert "Connection refused" in reach
    assert "hint: start the server" in reach
    assert "2 problems" in result.stderr


@pytest.mark.needs_root("lowers fs.inotify.max_user_watches")
def test_a_lowered_max_user_watches_is_a_problem_with_the_sysctl_line(project):
    for index in range(40):
        (project.watched / f"d{index}").mkdir()
    project.watches = [[str(project.watched), "IN_CLOSE_WRITE", SIGNALER, {"recursive": True}]]
    with inotify_limit("max_user_watches", lambda _: inotify_watches_in_use() + 20):
        result = project.manage("inotifier_doctor")
    assert result.returncode == 1, result.stdout + result.stderr
    (watches,) = lines(result, "problem", "watches")
    assert ": 41 watches needed" in watches
    assert "hint: sysctl fs.inotify.max_user_watches=" in watches
    # Restored by inotify_limit: the same tree fits again.
    again = project.manage("inotifier_doctor")
    assert again.returncode == 0, again.stdout + again.stderr
    assert lines(again, "ok", "watches")


def test_call_command_raises_command_error_with_status_1(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path / "missing"), "IN_CREATE", SIGNALER)]
    with pytest.raises(CommandError, match="1 problem") as raised:
        call_command("inotifier_doctor")
    assert raised.value.returncode == 1
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path), "IN_CREATE", SIGNALER)]
    call_command("inotifier_doctor")


def test_settings_errors_are_problems(settings, tmp_path, capsys):
    settings.PROJECT_PATH = str(tmp_path)
    settings.INOTIFIER_WATCH_PATHS = []
    with pytest.raises(CommandError) as raised:
        call_command("inotifier_doctor")
    assert raised.value.returncode == 1
    assert "problem  settings: inotifier.E001" in capsys.readouterr().out


def test_an_unsafe_private_runtime_directory_is_a_pid_file_problem(
    settings, tmp_path, monkeypatch, capsys
):
    # No PROJECT_PATH: the pid file goes to $XDG_RUNTIME_DIR/inotifier, here open to everyone.
    watched = tmp_path / "watched"
    watched.mkdir()
    runtime = tmp_path / "runtime"
    (runtime / "inotifier").mkdir(parents=True)
    (runtime / "inotifier").chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    if hasattr(settings, "PROJECT_PATH"):
        del settings.PROJECT_PATH
    settings.INOTIFIER_WATCH_PATHS = [(str(watched), "IN_CREATE", SIGNALER)]
    with pytest.raises(CommandError) as failed:
        call_command("inotifier_doctor")
    assert failed.value.returncode == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("problem  pid file: ")]
    assert str(runtime / "inotifier") in line
    assert "set PROJECT_PATH" in line
    assert "Traceback" not in out
