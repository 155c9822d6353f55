"""The system checks: each id triggered by a real bad setting, through Django's check
framework."""

import datetime
import json
import os

import inotifier
import inotifier.event_processors
import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from inotifier import settings as inotifier_settings

SIGNALER = "inotifier.event_processors.AllEventsSignaler"


def inotifier_errors():
    return [
        message
        for message in checks.run_checks(tags=["inotifier"])
        if message.id.startswith("inotifier.")
    ]


def error_ids():
    return [message.id for message in inotifier_errors()]


def test_valid_settings_pass(settings, tmp_path):
    settings.INOTIFIER_WATCH_PATHS = [
        (tmp_path, inotifier.IN_CREATE | inotifier.IN_DELETE, SIGNALER),
        (str(tmp_path), "IN_CLOSE_WRITE|IN_READY", inotifier.event_processors.ReadySignaler),
        (
            str(tmp_path),
            ["IN_CREATE", "IN_MOVED_TO"],
            "inotifier.event_processors.CreateViaChunksSignaler",
            {
                "recursive": True,
                "exclude": ["*.tmp", "build/**"],
                "include": ["*.mp4"],
                "settle": datetime.timedelta(milliseconds=300),
                "temp_patterns": ["*.part"],
                "backend": "poll",
                "poll_interval": datetime.timedelta(milliseconds=500),
                "retry": {"attempts": 3, "initial": 0.1, "max": 2, "multiplier": 2},
                "options": {"suffix": ".part"},
            },
        ),
    ]
    assert inotifier_errors() == []
    watches = inotifier_settings.watches()
    assert [w.mask for w in watches] == [0x300, 0x8 | 0x100000, 0x180]
    assert watches[2].auto_add is True  # defaults to recursive
    assert watches[1].processor_name == "inotifier.event_processors.ReadySignaler"
    assert (watches[0].backend, watches[0].poll_interval) == ("auto", None)
    assert watches[2].document()["backend"] == "poll"
    assert watches[2].document()["poll_interval"] == 0.5


@pytest.mark.parametrize(
    "value",
    [None, "/srv/uploads", []],
    ids=["missing", "a string", "empty"],
)
def test_e001_watch_paths_missing_or_not_a_list(settings, value):
    if value is None:
        del settings.INOTIFIER_WATCH_PATHS
    else:
        settings.INOTIFIER_WATCH_PATHS = value
    errors = inotifier_errors()
    assert [e.id for e in errors] == ["inotifier.E001"]
    assert "INOTIFIER_WATCH_PATHS" in errors[0].hint


BAD_ENTRIES = {
    "inotifier.E002": lambda d: ("/only/two", "IN_CREATE"),
    "inotifier.E003": lambda d: ("relative/path", "IN_CREATE", SIGNALER),
    "inotifier.E005": lambda d: (str(d), "IN_CREAT", SIGNALER),
    "inotifier.E006": lambda d: (str(d), "IN_CREATE", "nowhere.Processor"),
    "inotifier.E007": lambda d: (str(d), "IN_CREATE", SIGNALER, {"recursiv": True}),
    "inotifier.E008": lambda d: (str(d), "IN_CREATE", SIGNALER, {"exclude": ["[a-"]}),
    "inotifier.E009": lambda d: (str(d), "IN_CREATE", SIGNALER, {"options": {"when": object()}}),
}


@pytest.mark.parametrize("expected", sorted(BAD_ENTRIES))
def test_each_bad_entry_has_its_id_and_a_hint(settings, tmp_path, expected):
    settings.INOTIFIER_WATCH_PATHS = [
        (str(tmp_path), "IN_CREATE", SIGNALER),
        BAD_ENTRIES[expected](tmp_path),
    ]
    errors = inotifier_errors()
    assert [e.id for e in errors] == [expected]
    assert "INOTIFIER_WATCH_PATHS[1]" in errors[0].msg
    assert errors[0].hint


@pytest.mark.parametrize(
    "mask",
    [0, -1, 2**32, "IN_ISDIR", ["IN_CREATE", 3], 1.5, True],
)
def test_e005_every_kind_of_bad_mask(settings, tmp_path, mask):
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path), mask, SIGNALER)]
    assert error_ids() == ["inotifier.E005"]


def test_e005_message_names_the_bad_word(settings, tmp_path):
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path), "IN_CREATE|IN_CRATE", SIGNALER)]
    assert '"IN_CRATE"' in inotifier_errors()[0].msg


@pytest.mark.parametrize(
    "options",
    [
        {"recursive": "yes"},
        {"settle": -1},
        {"include": "*.txt"},
        {"retry": {"attempts": 0}},
        {"retry": {"multiplier": 0.5}},
        {"retry": {"initial": 5, "max": 1}},
        {"retry": {"tries": 3}},
        {"backend": "fanotfy"},
        {"poll_interval": 0.001},
        {"poll_interval": "1s"},
    ],
)
def test_e008_bad_option_values(settings, tmp_path, options):
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path), "IN_CREATE", SIGNALER, options)]
    assert error_ids() == ["inotifier.E008"]


def test_w001_a_missing_path_is_a_warning_and_the_watch_stays(settings, tmp_path):
    """A path this machine lacks (not mounted on the host that builds the image) is a fact of
    the machine: a warning, and the entry is still read (its other mistakes still reported)."""
    settings.INOTIFIER_WATCH_PATHS = [
        (str(tmp_path / "missing"), "IN_CREATE", SIGNALER),
        (str(tmp_path / "gone"), "IN_CREAT", SIGNALER),
    ]
    messages = inotifier_errors()
    assert [(m.id, type(m)) for m in messages] == [
        ("inotifier.W001", checks.Warning),
        ("inotifier.E005", checks.Error),
        ("inotifier.W001", checks.Warning),
    ]
    assert str(tmp_path / "missing") in messages[0].msg
    assert "inotifier_start refuses" in messages[0].hint
    watches, _ = inotifier_settings.inspect()
    assert [w.path for w in watches] == [str(tmp_path / "missing")]


def test_w002_unreadable_path(settings, tmp_path):
    if os.getuid() == 0:
        pytest.skip("root reads every path")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    settings.INOTIFIER_WATCH_PATHS = [(str(locked), "IN_CREATE", SIGNALER)]
    assert error_ids() == ["inotifier.W002"]


def test_e010_output_not_a_path_and_w003_in_a_missing_directory(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    settings.INOTIFIER_DAEMON_STDERR = "logs/daemon.err"
    settings.INOTIFIER_DAEMON_STDOUT = 42
    errors = inotifier_errors()
    assert [(e.id, type(e)) for e in errors] == [
        ("inotifier.E010", checks.Error),
        ("inotifier.W003", checks.Warning),
    ]
    assert str(tmp_path / "logs") in errors[1].msg


def test_e011_project_path_not_a_path_and_w004_missing(settings, tmp_path):
    settings.PROJECT_PATH = 42
    assert error_ids() == ["inotifier.E011"]
    settings.PROJECT_PATH = str(tmp_path / "nowhere")
    assert error_ids() == ["inotifier.W004"]


def test_e012_log_level(settings):
    settings.INOTIFIER_LOG_LEVEL = "verbose"
    assert error_ids() == ["inotifier.E012"]


def test_e013_drain_timeout(settings):
    settings.INOTIFIER_DRAIN_TIMEOUT = "10s"
    assert error_ids() == ["inotifier.E013"]


@pytest.mark.parametrize("value", [0, "4", 2.0, True, 5000])
def test_e015_workers(settings, value):
    settings.INOTIFIER_WORKERS = value
    errors = inotifier_errors()
    assert [e.id for e in errors] == ["inotifier.E015"]
    assert repr(value) in errors[0].msg


def test_manage_py_check_fails_with_the_errors_and_passes_with_warnings(settings, tmp_path):
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path), "IN_CREAT", SIGNALER)]
    with pytest.raises(SystemCheckError, match=r"inotifier\.E005"):
        call_command("check")
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path / "missing"), "IN_CREATE", SIGNALER)]
    call_command("check")


def test_pid_file_in_project_path(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    assert inotifier_settings.pid_file() == tmp_path / "inotifier.pid"


def test_pid_file_without_project_path_is_in_a_private_directory(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    pid_file = inotifier_settings.pid_file(create_dir=True)
    assert pid_file.parent == tmp_path / "inotifier"
    assert pid_file.name.startswith("inotifier-") and pid_file.suffix == ".pid"
    assert pid_file.parent.stat().st_mode & 0o777 == 0o700


def test_a_runtime_directory_open_to_others_is_refused(settings, tmp_path, monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "inotifier").mkdir(mode=0o777)
    os.chmod(tmp_path / "inotifier", 0o777)
    with pytest.raises(ImproperlyConfigured, match="PROJECT_PATH"):
        inotifier_settings.pid_file()


def test_journal_defaults_next_to_the_pid_file(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    assert inotifier_settings.journal() == {
        "path": str(tmp_path / "inotifier.journal"),
        "retain": 100_000,
        "catch_up": True,
        "first_start": "silent",
    }


def test_journal_settings_are_read_and_handed_to_the_daemon(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    (tmp_path / "state").mkdir()
    settings.INOTIFIER_JOURNAL = {
        "path": "state/events.journal",
        "retain": 0,
        "catch_up": False,
        "first_start": "report",
    }
    settings.INOTIFIER_WATCH_PATHS = [
        (str(tmp_path), "IN_CREATE", SIGNALER, {"name": "first"}),
        (str(tmp_path), "IN_CREATE", SIGNALER),
    ]
    assert inotifier_errors() == []
    watches = inotifier_settings.watches()
    assert [w.key for w in watches] == ["first", f"{SIGNALER}@{tmp_path}"]
    document = json.loads(inotifier_settings.daemon_config(watches))
    assert document["journal"] == {
        "path": str(tmp_path / "state/events.journal"),
        "retain": 0,
        "catch_up": False,
        "first_start": "report",
    }
    assert [w["name"] for w in document["watches"]] == ["first", None]
    settings.INOTIFIER_JOURNAL = {"enabled": False}
    assert inotifier_settings.journal()["path"] is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("inotifier.journal", "not a dict"),
        ({"enable": True}, "'enable'"),
        ({"enabled": "yes"}, "'enabled'"),
        ({"catch_up": 1}, "'catch_up'"),
        ({"retain": -1}, "'retain'"),
        ({"retain": 1.5}, "'retain'"),
        ({"first_start": "loud"}, "'loud'"),
        ({"path": 3}, "not a file path"),
    ],
)
def test_e016_bad_journal_settings(settings, tmp_path, value, words):
    settings.PROJECT_PATH = str(tmp_path)
    settings.INOTIFIER_JOURNAL = value
    errors = inotifier_errors()
    assert [e.id for e in errors] == ["inotifier.E016"]
    assert words in errors[0].msg
    assert "INOTIFIER_JOURNAL" in errors[0].hint


def test_w005_the_journals_directory_missing(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    settings.INOTIFIER_JOURNAL = {"path": "missing/dir/inotifier.journal"}
    (warning,) = inotifier_errors()
    assert (warning.id, type(warning)) == ("inotifier.W005", checks.Warning)
    assert str(tmp_path / "missing" / "dir") in warning.msg


def test_e017_two_watches_with_one_journal_key(settings, tmp_path):
    settings.INOTIFIER_WATCH_PATHS = [
        (str(tmp_path), "IN_CREATE", SIGNALER),
        (str(tmp_path), "IN_DELETE", SIGNALER, {"recursive": True}),
        (str(tmp_path), "IN_DELETE", "log"),
    ]
    errors = inotifier_errors()
    assert [e.id for e in errors] == ["inotifier.E017"]
    assert "INOTIFIER_WATCH_PATHS[1]" in errors[0].msg
    assert "INOTIFIER_WATCH_PATHS[0]" in errors[0].msg
    assert "'name'" in errors[0].hint
    # Named apart, they are fine; equal names clash too.
    settings.INOTIFIER_WATCH_PATHS[1] = (str(tmp_path), "IN_DELETE", SIGNALER, {"name": "b"})
    assert inotifier_errors() == []
    settings.INOTIFIER_WATCH_PATHS[0] = (str(tmp_path), "IN_CREATE", SIGNALER, {"name": "b"})
    assert error_ids() == ["inotifier.E017"]


@pytest.mark.parametrize("name", ["", "  ", 3])
def test_e008_a_bad_watch_name(settings, tmp_path, name):
    settings.INOTIFIER_WATCH_PATHS = [(str(tmp_path), "IN_CREATE", SIGNALER, {"name": name})]
    assert error_ids() == ["inotifier.E008"]


def test_w007_celery_needs_a_broker_url_and_takes_the_projects(settings, tmp_path, monkeypatch):
    """A ``celery`` watch without a broker URL anywhere is W007 (the URL, which holds a
    password, belongs in the daemon's environment, which a build host lacks), naming where to
    put one; with
    ``settings.CELERY_BROKER_URL`` (as a Django project using Celery has) it is valid, and the
    URL, password included, is handed to the daemon explicitly (never exported: a check
    changes nothing), not written in its options."""
    # Empty counts as unset; monkeypatch puts back whatever was there.
    monkeypatch.setenv("CELERY_BROKER_URL", "")
    settings.INOTIFIER_WATCH_PATHS = [
        (tmp_path, "IN_READY", "celery", {"options": {"task": "app.tasks.on_file"}})
    ]
    if hasattr(settings, "CELERY_BROKER_URL"):
        del settings.CELERY_BROKER_URL
    (warning,) = inotifier_errors()
    assert (warning.id, type(warning)) == ("inotifier.W007", checks.Warning)
    assert "CELERY_BROKER_URL" in warning.msg
    settings.CELERY_BROKER_URL = "amqp://app:s3cret@broker.internal//"
    environment = dict(os.environ)
    assert inotifier_errors() == []
    assert dict(os.environ) == environment
    watches, _ = inotifier_settings.inspect()
    config = json.loads(inotifier_settings.daemon_config(watches))
    assert config["environment"] == {"CELERY_BROKER_URL": "amqp://app:s3cret@broker.internal//"}
    # The daemon's own environment says where to send: that wins, and nothing is given.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    watches, _ = inotifier_settings.inspect()
    assert json.loads(inotifier_settings.daemon_config(watches))["environment"] == {}
    settings.INOTIFIER_WATCH_PATHS = [
        (
            tmp_path,
            "IN_READY",
            "celery",
            {"options": {"task": "t", "broker_url": "amqp://app:s3cret@broker.internal//"}},
        )
    ]
    (error,) = inotifier_errors()
    assert error.id == "inotifier.E014"
    assert "put the whole URL in the environment variable" in error.msg
    assert "s3cret" not in error.msg


def test_w007_a_webhook_secret_missing_from_the_environment(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("INOTIFIER_TEST_WEBHOOK_SECRET", raising=False)
    options = {
        "url": "https://hooks.example.com/files",
        "secret_env": "INOTIFIER_TEST_WEBHOOK_SECRET",
    }
    settings.INOTIFIER_WATCH_PATHS = [(tmp_path, "IN_READY", "webhook", {"options": options})]
    (warning,) = inotifier_errors()
    assert (warning.id, type(warning)) == ("inotifier.W007", checks.Warning)
    assert "INOTIFIER_TEST_WEBHOOK_SECRET" in warning.msg
    monkeypatch.setenv("INOTIFIER_TEST_WEBHOOK_SECRET", "s3cret")
    assert inotifier_errors() == []


def test_the_broker_processors_are_native_processors(settings, tmp_path):
    settings.INOTIFIER_WATCH_PATHS = [
        (tmp_path, "IN_READY", "redis_stream", {"options": {"stream": "uploads", "maxlen": 1000}}),
        (tmp_path, "IN_READY", "jetstream", {"options": {"subject": "uploads.{maskname}"}}),
    ]
    assert inotifier_errors() == []
    settings.INOTIFIER_WATCH_PATHS = [
        (tmp_path, "IN_READY", "redis_stream", {"options": {"streams": "uploads"}}),
    ]
    (error,) = inotifier_errors()
    assert error.id == "inotifier.E014"
    assert "unknown option `streams` for processor redis_stream" in error.msg


def test_broker_tls_files_are_read_relative_to_project_path(settings, tmp_path):
    """The TLS options of the broker processors name files relative to PROJECT_PATH; a file
    that is not there (a certificate mounted only where the daemon runs) is a warning naming
    the option and the path the daemon would read; a file that holds no certificate an
    error."""
    settings.PROJECT_PATH = str(tmp_path)
    watched = tmp_path / "in"
    watched.mkdir()
    options = {"url": "rediss://127.0.0.1:6380/0", "ca_file": "tls/ca.pem"}
    settings.INOTIFIER_WATCH_PATHS = [
        (watched, "IN_READY", "redis_stream", {"options": options}),
    ]
    (warning,) = inotifier_errors()
    assert (warning.id, type(warning)) == ("inotifier.W007", checks.Warning)
    assert "option `ca_file` of processor redis_stream" in warning.msg
    assert str(tmp_path / "tls" / "ca.pem") in warning.msg
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "ca.pem").write_text("not a certificate\n")
    (error,) = inotifier_errors()
    assert (error.id, type(error)) == ("inotifier.E014", checks.Error)
    assert "holds no certificate" in error.msg
    plain = {"url": "redis://127.0.0.1:6379/0", "ca_file": "tls/ca.pem"}
    settings.INOTIFIER_WATCH_PATHS = [(watched, "IN_READY", "redis_stream", {"options": plain})]
    (error,) = inotifier_errors()
    assert "is not TLS: use rediss://" in error.msg
