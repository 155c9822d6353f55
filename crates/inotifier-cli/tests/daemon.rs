//! The daemon's lifecycle with real processes: `start`, `stop`, `status`, `run` with SIGHUP and
//! SIGTERM, and systemd's readiness protocol on a real datagram socket.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::project::{DaemonGuard, alive};
use common::{BIN, DEADLINE, Finished, Watcher, run_inotifier};
use inotifier_test_support::hook_server::HookServer;
use inotifier_test_support::workloads::write_reopening;
use inotifier_test_support::{inotify_shared, wait_until};

#[track_caller]
fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    assert!(
        wait_until(DEADLINE, condition),
        "{what}: not within {DEADLINE:?}"
    );
}

/// A project directory: a config file, a watched folder and the processor's output.
struct Project {
    dir: tempfile::TempDir,
    config_arg: String,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("watched")).unwrap();
        let config_arg = dir
            .path()
            .join("inotifier.toml")
            .to_str()
            .unwrap()
            .to_string();
        Project { dir, config_arg }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("inotifier.toml")
    }

    fn s(&self) -> &str {
        &self.config_arg
    }

    /// Writes the config: the watched folder's creations and writes to `events.jsonl`, plus
    /// `extra` (more TOML).
    fn write_config(&self, extra: &str) {
        let text = format!(
            r#"[daemon]
pid_file = "run/inotifier.pid"
stdout = "out.log"
stderr = "err.log"
log_level = "info"
drain_timeout = "30s"

[[watch]]
path = "watched"
events = "IN_CREATE|IN_CLOSE_WRITE"
processor = "jsonl"
[watch.options]
path = "events.jsonl"
{extra}"#
        );
        std::fs::write(self.config(), text).unwrap();
    }

    fn pid_file(&self) -> PathBuf {
        self.path("run/inotifier.pid")
    }

    fn jsonl(&self, name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    fn has_event(&self, jsonl: &str, name: &str) -> bool {
        self.jsonl(jsonl).iter().any(|event| event["name"] == name)
    }

    fn start(&self) -> Finished {
        run_inotifier(&["start", "-c", self.s()])
    }

    fn started_pid(&self, finished: &Finished) -> DaemonGuard {
        assert!(
            finished.status.success(),
            "start failed: {}{}",
            finished.stdout,
            finished.stderr
        );
        let pid: i32 = std::fs::read_to_string(self.pid_file())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            finished.stdout.contains(&format!("pid {pid}")),
            "{}",
            finished.stdout
        );
        DaemonGuard { pid }
    }
}

#[test]
fn start_status_stop_and_the_refusals() {
    let _lock = inotify_shared();
    let project = Project::new();
    project.write_config("");

    let started = project.start();
    let daemon = project.started_pid(&started);
    assert!(alive(daemon.pid));
    // Its exit status promised the watches are in place: a file created right now is seen.
    std::fs::write(project.path("watched/first"), b"1").unwrap();
    wait_for("first file delivered", || {
        project.has_event("events.jsonl", "first")
    });

    let second = project.start();
    assert_eq!(second.status.code(), Some(1), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains(&format!("already running with pid {}", daemon.pid)),
        "{}",
        second.stderr
    );
    assert!(alive(daemon.pid));

    wait_for("status shows the event", || {
        run_inotifier(&["status", "-c", project.s()])
            .stdout
            .contains("delivered:      2")
    });
    let status = run_inotifier(&["status", "-c", project.s()]);
    assert_eq!(status.status.code(), Some(0));
    for expected in [
        format!("pid:            {}", daemon.pid),
        "watches:        1 (1 directories and files)".to_string(),
        "events seen:    2".to_string(),
        "failed:         0".to_string(),
        "uptime:".to_string(),
    ] {
        assert!(
            status.stdout.contains(&expected),
            "{expected:?} in\n{}",
            status.stdout
        );
    }

    let stopped = run_inotifier(&["stop", "-c", project.s()]);
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.stderr);
    assert!(
        stopped
            .stdout
            .contains(&format!("(pid {}) stopped", daemon.pid))
    );
    assert!(!alive(daemon.pid), "stop returned before the daemon exited");
    assert!(
        !project.pid_file().exists(),
        "the pid file is removed on a clean stop"
    );

    let again = run_inotifier(&["stop", "-c", project.s()]);
    assert_eq!(again.status.code(), Some(3));
    assert!(again.stderr.contains("not running"), "{}", again.stderr);
    let status = run_inotifier(&["status", "--pid-file", project.pid_file().to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(3));
    assert!(status.stdout.contains("not running"));

    // The daemon's log went where the config said, with mode 0640.
    let log = std::fs::read_to_string(project.path("err.log")).unwrap();
    assert!(log.contains("ready: 1 watches"), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(project.path("err.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn a_stale_pid_file_is_reported_and_taken_over() {
    let _lock = inotify_shared();
    let project = Project::new();
    project.write_config("");
    std::fs::create_dir(project.path("run")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(project.path("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    // A pid that cannot be a live process holding the lock.
    std::fs::write(project.pid_file(), "4194303\n").unwrap();

    let status = run_inotifier(&["status", "-c", project.s()]);
    assert_eq!(status.status.code(), Some(3));
    assert!(
        status.stdout.contains("stale pid file"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("4194303"), "{}", status.stdout);
    let stop = run_inotifier(&["stop", "-c", project.s()]);
    assert_eq!(stop.status.code(), Some(3));
    assert!(stop.stderr.contains("stale"), "{}", stop.stderr);

    let started = project.start();
    let daemon = project.started_pid(&started);
    assert_ne!(daemon.pid, 4194303);
    let stopped = run_inotifier(&["stop", "-c", project.s()]);
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.stderr);
}

/// `inotifier run` in the foreground, its stderr collected on a thread.
fn run_foreground(project: &Project, notify_socket: Option<&Path>) -> Watcher {
    let mut command = Command::new(BIN);
    command
        .args(["run", "-c", project.s()])
        .env_remove("INOTIFIER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(socket) = notify_socket {
        command.env("NOTIFY_SOCKET", socket);
    }
    Watcher::spawn_command(&mut command, true)
}

#[test]
fn run_tells_systemd_it_is_ready_only_once_watching_and_drains_on_sigterm() {
    let _lock = inotify_shared();
    let project = Project::new();
    // A slow exec processor beside the fast jsonl one: 30 files whose events are all read
    // (jsonl has them) while exec still has most to do when SIGTERM arrives.
    std::fs::create_dir(project.path("done")).unwrap();
    project.write_config(&format!(
        r#"
[[watch]]
path = "watched"
events = "IN_CLOSE_WRITE"
processor = "exec"
[watch.options]
argv = ["/bin/sh", "-c", "sleep 0.05; : > \"$1/$2\"", "sh", "{done}", "{{name}}"]
max_concurrent = 1
"#,
        done = project.path("done").display()
    ));
    let socket_path = project.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut daemon = run_foreground(&project, Some(&socket_path));

    let mut buffer = [0u8; 4096];
    let size = socket.recv(&mut buffer).expect("READY=1 from the daemon");
    let message = String::from_utf8_lossy(&buffer[..size]).into_owned();
    assert!(message.starts_with("READY=1\n"), "{message}");
    assert!(
        message.contains(&format!("MAINPID={}", daemon.pid())),
        "{message}"
    );
    // Ready means watching: files written right away are all seen.
    let files = 30;
    for i in 0..files {
        std::fs::write(project.path(&format!("watched/f{i:02}")), b"x").unwrap();
    }
    wait_for("jsonl has every file", || {
        (0..files).all(|i| project.has_event("events.jsonl", &format!("f{i:02}")))
    });
    let done_before = std::fs::read_dir(project.path("done")).unwrap().count();
    assert!(done_before < files, "exec was too fast to test draining");

    daemon.child.signal(libc::SIGTERM);
    let size = socket.recv(&mut buffer).expect("STOPPING=1");
    assert_eq!(&buffer[..size], b"STOPPING=1");
    let status = daemon
        .child
        .expect_exit(DEADLINE, "the daemon after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    let done = std::fs::read_dir(project.path("done")).unwrap().count();
    assert_eq!(
        done, files,
        "events read before SIGTERM were not all delivered"
    );
    assert!(!project.pid_file().exists());
}

#[test]
fn sighup_applies_a_changed_config_and_rejects_an_invalid_one() {
    let _lock = inotify_shared();
    let project = Project::new();
    std::fs::create_dir(project.path("second")).unwrap();
    project.write_config("");
    let mut daemon = run_foreground(&project, None);
    wait_for("ready", || daemon.stderr().contains("ready: 1 watches"));

    // Add a second watch.
    project.write_config(
        r#"
[[watch]]
path = "second"
events = "IN_CREATE"
processor = "jsonl"
[watch.options]
path = "second.jsonl"
"#,
    );
    daemon.child.signal(libc::SIGHUP);
    wait_for("reloaded", || {
        daemon
            .stderr()
            .contains("reloaded: 1 added, 0 removed, 0 changed, 1 unchanged")
    });
    std::fs::write(project.path("second/s1"), b"x").unwrap();
    std::fs::write(project.path("watched/w1"), b"x").unwrap();
    wait_for("second watch works", || {
        project.has_event("second.jsonl", "s1")
    });
    wait_for("first watch still works", || {
        project.has_event("events.jsonl", "w1")
    });

    // An invalid file: rejected with its location, and both watches keep running.
    std::fs::write(
        project.config(),
        "[daemon]\npid_file = \"run/inotifier.pid\"\n\n[[watch]]\npath = \"watched\"\nevents = \"IN_BOGUS\"\nprocessor = \"jsonl\"\n",
    )
    .unwrap();
    daemon.child.signal(libc::SIGHUP);
    wait_for("rejected", || daemon.stderr().contains("reload rejected"));
    let log = daemon.stderr();
    assert!(log.contains("inotifier.toml:6:"), "{log}");
    assert!(log.contains("IN_BOGUS"), "{log}");
    std::fs::write(project.path("second/s2"), b"x").unwrap();
    std::fs::write(project.path("watched/w2"), b"x").unwrap();
    wait_for("second watch still works", || {
        project.has_event("second.jsonl", "s2")
    });
    wait_for("first watch still works", || {
        project.has_event("events.jsonl", "w2")
    });

    daemon.child.signal(libc::SIGINT);
    let status = daemon
        .child
        .expect_exit(DEADLINE, "the daemon after SIGINT");
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
}

#[test]
fn processors_do_real_work_through_the_daemon() {
    let _lock = inotify_shared();
    let project = Project::new();
    std::fs::create_dir(project.path("done")).unwrap();
    std::fs::create_dir(project.path("x")).unwrap();
    std::fs::write(project.path("x/keep"), b"keep").unwrap();
    let hook_log = project.path("hook.jsonl");
    // Answers 500 to the first 3 requests and checks the HMAC signature itself.
    let server = HookServer::start(
        &hook_log,
        &["--fail", "3", "--secret-env", "HOOK_SECRET"],
        &[("HOOK_SECRET", "s3cret for the test")],
    );
    let port = server.port;
    project.write_config(&format!(
        r#"
[[watch]]
path = "watched"
events = "IN_CLOSE_WRITE"
processor = "exec"
[watch.options]
argv = ["/usr/bin/touch", "{done}/{{name}}"]

[[watch]]
path = "watched"
events = "IN_CLOSE_WRITE"
processor = "webhook"
[watch.options]
url = "http://127.0.0.1:{port}/hook"
secret_env = "HOOK_SECRET"
[watch.retry]
attempts = 10
initial = "20ms"
max = "200ms"

[[watch]]
path = "watched"
events = "IN_CLOSE_WRITE"
processor = "log"
"#,
        done = project.path("done").display()
    ));
    let mut command = Command::new(BIN);
    command
        .args(["run", "-c", project.s()])
        .env_remove("INOTIFIER_LOG")
        .env("HOOK_SECRET", "s3cret for the test")
        .current_dir(project.path("x"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut daemon = Watcher::spawn_command(&mut command, true);
    wait_for("ready", || daemon.stderr().contains("ready: 4 watches"));

    let evil = "it's a \"name\" with spaces;rm -rf x";
    std::fs::write(project.path("watched").join(evil), b"payload").unwrap();

    // exec: the name reached touch as one argument; no shell ran the rest.
    wait_for("exec ran", || project.path("done").join(evil).exists());
    let made: Vec<String> = std::fs::read_dir(project.path("done"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(made, vec![evil.to_string()]);
    assert_eq!(std::fs::read(project.path("x/keep")).unwrap(), b"keep");

    // webhook: three 500s, retried with backoff, then delivered, signed.
    let requests = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&hook_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_for("the webhook got through", || requests().len() >= 4);
    let requests = requests();
    assert_eq!(requests.len(), 4, "one event, 3 failures and 1 success");
    for request in &requests {
        assert_eq!(request["signature_ok"], true, "{request}");
        let body: serde_json::Value =
            serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["name"], evil);
        assert_eq!(body["maskname"], "IN_CLOSE_WRITE");
    }
    wait_for("the retries are logged", || {
        daemon.stderr().matches("retry_in_ms").count() == 3
    });

    // log: one human-readable line on the daemon's stdout.
    daemon.expect_line("the log processor's line", |line| {
        line.contains("IN_CLOSE_WRITE") && line.contains("with spaces;rm -rf x")
    });

    daemon.child.signal(libc::SIGTERM);
    let status = daemon
        .child
        .expect_exit(DEADLINE, "the daemon after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    assert!(
        !daemon.stderr().contains("giving up"),
        "{}",
        daemon.stderr()
    );
}

#[test]
fn ready_events_reach_the_processor_once_per_completed_write() {
    let _lock = inotify_shared();
    let project = Project::new();
    std::fs::create_dir(project.path("in")).unwrap();
    project.write_config(
        r#"
[[watch]]
path = "in"
events = "IN_READY"
processor = "jsonl"
recursive = true
[watch.options]
path = "ready.jsonl"
[watch.ready]
settle = "150ms"
temp_patterns = ["*.part"]
"#,
    );
    let mut daemon = run_foreground(&project, None);
    wait_for("ready", || daemon.stderr().contains("ready: 2 watches"));
    let dir = project.path("in");

    // Written in 100 chunks over about a second, closing after each.
    write_reopening(&dir.join("chunked.bin"), 100, Duration::from_millis(10));
    // Downloaded under a temporary name, then renamed into place.
    std::fs::write(dir.join("download.part"), b"partial then whole").unwrap();
    std::fs::rename(dir.join("download.part"), dir.join("download.zip")).unwrap();
    // Copied by cp.
    std::fs::write(project.path("source"), vec![7u8; 1 << 20]).unwrap();
    let cp = Command::new("cp")
        .arg(project.path("source"))
        .arg(dir.join("copied"))
        .status()
        .unwrap();
    assert!(cp.success());
    // Found by the scan of a directory moved in.
    std::fs::create_dir(project.path("outside")).unwrap();
    std::fs::write(project.path("outside/found"), b"found by a scan").unwrap();
    std::fs::rename(project.path("outside"), dir.join("moved-in")).unwrap();
    // Last: a marker, so that everything before it has had its chance.
    std::fs::write(dir.join("zz-marker"), b"marker").unwrap();
    wait_for("the marker is ready", || {
        project.has_event("ready.jsonl", "zz-marker")
    });

    let events = project.jsonl("ready.jsonl");
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    for event in &events {
        assert_eq!(event["maskname"], "IN_READY", "{event}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "chunked.bin",
            "copied",
            "download.zip",
            "found",
            "zz-marker"
        ],
        "one ready event per completed file: {names:?}"
    );
    let download = events.iter().find(|e| e["name"] == "download.zip").unwrap();
    assert!(
        download["src_pathname"]
            .as_str()
            .unwrap()
            .ends_with("download.part")
    );
    let found = events.iter().find(|e| e["name"] == "found").unwrap();
    assert_eq!(found["origin"], "scan");

    daemon.child.signal(libc::SIGTERM);
    let status = daemon
        .child
        .expect_exit(DEADLINE, "the daemon after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
}

#[test]
fn a_printing_command_ends_quietly_when_its_reader_goes_away() {
    // `status --json | grep -q x` where grep is gone already: the write finds no reader, and
    // status must end by SIGPIPE, as Unix tools do, not panic on the failed write.
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("inotifier.pid");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(common::BIN)
        .args(["status", "--json", "--pid-file", pid_file.to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}
