//! Nothing lost: the journal and catch-up of `inotifier run` against real faults. A daemon
//! killed with SIGKILL mid-burst, changes made while it was stopped, a webhook target down
//! then failing, a journal on a full disk, a damaged journal file. Real processes, real
//! files, real inotify, a real HTTP server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::BIN;
use common::project::{LONG, Project, kill, stop, wait_for};
use inotifier_test_support::hook_server::HookServer;
use inotifier_test_support::{Sysctl, inotify_exclusive, inotify_shared};

/// Records `ID ORIGIN NAME` per event, slowly (50 ms each), through a shell that gets the
/// name as an argument, never as code.
fn slow_recorder(out: &Path) -> String {
    format!(
        r#"processor = "exec"
[watch.options]
argv = ["/bin/sh", "-c", "sleep 0.05; printf '%s %s %s\n' \"$1\" \"$2\" \"$3\" >> \"$0\"", "{}", "{{id}}", "{{origin}}", "{{name}}"]
"#,
        out.display()
    )
}

#[test]
fn a_daemon_killed_mid_burst_delivers_everything_after_its_restart() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delivered.txt");
    let project = Project::new(&format!(
        r#"[daemon]
pid_file = "run/inotifier.pid"
log_level = "info"

[[watch]]
path = "watched"
events = "IN_CLOSE_WRITE"
{}"#,
        slow_recorder(&out)
    ));
    let daemon = project.run();
    let total = 300;
    for index in 0..total {
        std::fs::write(project.watched(&format!("f{index:03}")), b"x").unwrap();
    }
    // Per name, the (id, origin) of each delivery.
    let delivered = |out: &Path| -> BTreeMap<String, BTreeSet<(u64, String)>> {
        let mut by_name: BTreeMap<String, BTreeSet<(u64, String)>> = BTreeMap::new();
        for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
            let mut fields = line.splitn(3, ' ');
            let (id, origin, name) = (fields.next(), fields.next(), fields.next());
            if let (Some(id), Some(origin), Some(name)) = (id, origin, name) {
                by_name
                    .entry(name.to_string())
                    .or_default()
                    .insert((id.parse().unwrap(), origin.to_string()));
            }
        }
        by_name
    };
    // Over a second of work: the journal has saved the tree's snapshot since the burst.
    wait_for("a third delivered", LONG, || {
        delivered(&out).len() >= total / 3
    });
    kill(daemon);
    let at_kill = delivered(&out).len();
    assert!(
        at_kill < total,
        "everything was delivered before the kill: the test needs a slower processor"
    );

    let daemon = project.run();
    // What was not acknowledged is redelivered from the journal: at least what the processor
    // had not finished.
    let log = project.log();
    let redelivered: usize = log
        .lines()
        .find_map(|line| {
            let (before, _) = line.split_once(" event(s) pending since the last run")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("nothing redelivered: {log}"));
    assert!(
        redelivered >= total - at_kill,
        "{redelivered} redelivered, {at_kill} of {total} done at the kill"
    );
    wait_for("every file delivered after the restart", LONG, || {
        delivered(&out).len() == total
    });
    stop(daemon);
    let delivered = delivered(&out);
    let names: Vec<String> = (0..total).map(|i| format!("f{i:03}")).collect();
    assert_eq!(delivered.keys().cloned().collect::<Vec<_>>(), names);
    // A redelivery from the journal keeps the event's id, so a consumer can tell a
    // duplicate: one id per file for the kernel's event. Files whose event the kernel still
    // held at the kill (or created after the last snapshot save) are also reported by the
    // catch-up, under ids of their own.
    let mut caught_up = 0;
    for (name, deliveries) in &delivered {
        let kernel: Vec<_> = deliveries.iter().filter(|(_, o)| o == "kernel").collect();
        assert!(
            kernel.len() <= 1,
            "{name}: one event under several ids: {deliveries:?}"
        );
        assert!(
            deliveries
                .iter()
                .all(|(_, o)| o == "kernel" || o == "catchup"),
            "{name}: {deliveries:?}"
        );
        caught_up += deliveries.iter().filter(|(_, o)| o == "catchup").count();
    }
    eprintln!("delivered before the kill: {at_kill} of {total}; caught up: {caught_up}");
}

/// The names in a slow recorder's output.
fn delivered_names(out: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.splitn(3, ' ').nth(2).map(str::to_string))
        .collect()
}

/// The ids in a slow recorder's output, each with how many times it was delivered.
fn deliveries_by_id(out: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        if let Some(id) = line.split(' ').next().and_then(|id| id.parse().ok()) {
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

#[test]
fn a_reload_that_changes_a_watch_delivers_its_pending_events_once() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delivered.txt");
    let config = |events: &str| {
        format!(
            "[daemon]\npid_file = \"run/inotifier.pid\"\n\n[[watch]]\npath = \"watched\"\n\
             events = \"{events}\"\n{}",
            slow_recorder(&out)
        )
    };
    let project = Project::new(&config("IN_CLOSE_WRITE"));
    let daemon = project.run();
    let total = 60;
    for index in 0..total {
        std::fs::write(project.watched(&format!("f{index:02}")), b"x").unwrap();
    }
    wait_for("some deliveries", LONG, || delivered_names(&out).len() >= 5);
    // Same processor and path, so the same journal key: the old watch's pending events are
    // still on their way to it while the new one starts.
    std::fs::write(
        project.path("inotifier.toml"),
        config("IN_CLOSE_WRITE|IN_DELETE"),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for("the reload", LONG, || project.log().contains("reloaded: "));
    assert!(
        delivered_names(&out).len() < total,
        "everything was delivered before the reload: the test needs a slower processor"
    );
    wait_for("every file delivered", LONG, || {
        delivered_names(&out).len() == total
    });
    // Left to finish whatever it would have redelivered by mistake.
    stop(daemon);
    let twice: Vec<u64> = deliveries_by_id(&out)
        .into_iter()
        .filter(|&(_, count)| count > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
}

#[test]
fn changes_made_while_the_daemon_was_stopped_are_delivered_at_its_start() {
    let _lock = inotify_shared();
    let project = Project::new(
        r#"[daemon]
pid_file = "run/inotifier.pid"

[[watch]]
path = "watched"
events = "IN_CREATE|IN_DELETE"
processor = "jsonl"
[watch.options]
path = "events.jsonl"
"#,
    );
    for index in 0..20 {
        std::fs::write(project.watched(&format!("old{index:02}")), b"x").unwrap();
    }
    // The first start records what exists and reports none of it.
    let daemon = project.run();
    assert!(
        project
            .log()
            .contains("its snapshot of 20 entries is recorded")
    );
    std::fs::write(project.watched("probe"), b"x").unwrap();
    wait_for("the probe", LONG, || {
        project.jsonl("events.jsonl").len() == 1
    });
    stop(daemon);

    for index in 0..100 {
        std::fs::write(project.watched(&format!("new{index:03}")), b"x").unwrap();
    }
    for index in 0..10 {
        std::fs::remove_file(project.watched(&format!("old{index:02}"))).unwrap();
    }
    let daemon = project.run();
    wait_for("110 changes", LONG, || {
        project.jsonl("events.jsonl").len() >= 111
    });
    stop(daemon);
    let events = project.jsonl("events.jsonl");
    let caught_up: Vec<&serde_json::Value> = events[1..].iter().collect();
    assert_eq!(caught_up.len(), 110, "{caught_up:#?}");
    let named = |mask: &str| -> BTreeSet<String> {
        caught_up
            .iter()
            .filter(|e| e["maskname"] == mask)
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        named("IN_CREATE"),
        (0..100).map(|i| format!("new{i:03}")).collect()
    );
    assert_eq!(
        named("IN_DELETE"),
        (0..10).map(|i| format!("old{i:02}")).collect()
    );
    assert!(caught_up.iter().all(|e| e["origin"] == "catchup"));
    // Ids go on from the last run's.
    let first_id = events[0]["id"].as_u64().unwrap();
    assert!(
        caught_up
            .iter()
            .all(|e| e["id"].as_u64().unwrap() > first_id)
    );
}

/// The events of the requests `server` answered 200 (after its first `fail`), in the order it
/// received them.
fn accepted(server: &HookServer, fail: usize) -> Vec<serde_json::Value> {
    server
        .request_lines()
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|request| request["number"].as_u64().unwrap() as usize > fail)
        .map(|request| serde_json::from_str(request["body"].as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn a_webhook_target_down_then_failing_gets_everything_once_it_recovers() {
    let _lock = inotify_shared();
    // A port nothing listens on yet: connections are refused until the server starts.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let project = Project::new(&format!(
        r#"[daemon]
pid_file = "run/inotifier.pid"

[[watch]]
path = "watched"
events = "IN_CREATE|IN_CLOSE_WRITE"
processor = "webhook"
[watch.options]
url = "http://127.0.0.1:{port}/hook"
[watch.retry]
attempts = 1000
initial = "20ms"
max = "200ms"
"#
    ));
    let daemon = project.run();
    let files = 30;
    for index in 0..files {
        std::fs::write(project.watched(&format!("f{index:02}")), b"x").unwrap();
    }
    wait_for("refused connections to be retried", LONG, || {
        project.log().matches("retry_in_ms").count() >= files
    });
    let fail = 40;
    let server = HookServer::start(
        &project.path("requests.jsonl"),
        &["--port", &port.to_string(), "--fail", &fail.to_string()],
        &[],
    );
    assert_eq!(server.port, port);
    wait_for("every event accepted", LONG, || {
        accepted(&server, fail).len() >= 2 * files
    });
    stop(daemon);
    let accepted = accepted(&server, fail);
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &accepted {
        by_file
            .entry(event["name"].as_str().unwrap().to_string())
            .or_default()
            .push(event["maskname"].as_str().unwrap().to_string());
    }
    assert_eq!(by_file.len(), files);
    for (name, masks) in &by_file {
        // In order per file, and each once: nothing was given up, nothing acknowledged twice.
        assert_eq!(masks, &["IN_CREATE", "IN_CLOSE_WRITE"], "{name}");
    }
}

#[test]
fn a_damaged_journal_stops_the_start_and_names_the_recovery_command() {
    let project = Project::new(
        r#"[daemon]
pid_file = "run/inotifier.pid"

[[watch]]
path = "watched"
events = "IN_CREATE"
processor = "log"
"#,
    );
    std::fs::create_dir(project.path("run")).unwrap();
    let journal = project.path("run/inotifier.journal");
    let garbage = b"this is not a journal, whatever it once was".repeat(200);
    std::fs::write(&journal, &garbage).unwrap();
    let finished = common::run_to_exit(
        Command::new(BIN)
            .args(["run", "-c"])
            .arg(project.path("inotifier.toml")),
        None,
        LONG,
    );
    assert!(!finished.status.success());
    let recovery = format!("inotifier journal recover --journal {}", journal.display());
    assert!(
        finished.stderr.contains(&recovery),
        "no recovery command in: {}",
        finished.stderr
    );
    // Never a silent reset: the file is as it was.
    assert_eq!(std::fs::read(&journal).unwrap(), garbage);
}

/// A tmpfs of `size` mounted on a new directory (a test that mounts one asks
/// `root_available` first), unmounted when dropped.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount(size: &str) -> TinyDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root");
        TinyDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

#[test]
fn a_full_journal_disk_stops_reading_and_loses_nothing() {
    if !inotifier_test_support::privileges::root_available(
        "a_full_journal_disk_stops_reading_and_loses_nothing",
        "mounts a tmpfs and lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    // A short kernel queue (taken by the daemon's instance when it starts), so that the burst
    // overflows it while reading is stopped: the rescan must find what the kernel dropped.
    let exclusive = inotify_exclusive();
    let _queue = Sysctl::set("max_queued_events", 256, &exclusive);
    let disk = TinyDisk::mount("1m");
    let project = Project::new(&format!(
        r#"[daemon]
pid_file = "{}/inotifier.pid"

[metrics]
listen = "127.0.0.1:0"

[[watch]]
path = "watched"
events = "IN_CLOSE_WRITE"
processor = "jsonl"
[watch.options]
path = "events.jsonl"
"#,
        disk.path().display()
    ));
    let daemon = project.run();
    let config = project.path("inotifier.toml");
    let status_json = common::run_inotifier(&["status", "--json", "-c", config.to_str().unwrap()]);
    let document: serde_json::Value = serde_json::from_str(&status_json.stdout).unwrap();
    let address = document["metrics"].as_str().unwrap().to_string();
    let gauge = |name: &str| common::metric(&common::scrape_metrics(&address), name);
    assert_eq!(gauge("inotifier_reading_paused"), Some(0.0));
    std::fs::write(project.watched("before"), b"x").unwrap();
    wait_for("the first event", LONG, || {
        project.jsonl("events.jsonl").len() == 1
    });
    let filler = disk.fill();
    let files = 3000;
    for index in 0..files {
        std::fs::write(project.watched(&format!("f{index:04}")), b"x").unwrap();
    }
    wait_for("the journal's error", LONG, || {
        project
            .log()
            .contains("Reading stops until the journal can be written")
    });
    assert!(
        project.log().contains("free space or make it writable"),
        "{}",
        project.log()
    );
    // Issue 20, point 8: the pause is in the status, not only the log.
    let status = || {
        common::run_inotifier(&[
            "status",
            "-c",
            project.path("inotifier.toml").to_str().unwrap(),
        ])
        .stdout
    };
    wait_for("status to say reading is paused", LONG, || {
        status().contains("state:          degraded (reading paused: journal disk full")
    });
    // And the metrics, for an alert.
    wait_for("the metrics to say reading is paused", LONG, || {
        gauge("inotifier_reading_paused") == Some(1.0) && gauge("inotifier_degraded") == Some(1.0)
    });
    // What was journaled before the disk filled up may still be on its way to the processor:
    // once that has arrived (the count holds still for 300 ms), nothing more is delivered,
    // since nothing more is journaled.
    let mut settled = (
        project.jsonl("events.jsonl").len(),
        std::time::Instant::now(),
    );
    wait_for("the journaled events to be delivered", LONG, || {
        let now = project.jsonl("events.jsonl").len();
        if now != settled.0 {
            settled = (now, std::time::Instant::now());
        }
        settled.1.elapsed() >= Duration::from_millis(300)
    });
    let while_full = settled.0;
    assert!(
        while_full < 1 + files,
        "everything was journaled before the disk filled up"
    );
    let window = std::time::Instant::now();
    while window.elapsed() < Duration::from_millis(300) {
        assert_eq!(project.jsonl("events.jsonl").len(), while_full);
        std::thread::yield_now();
    }

    std::fs::remove_file(filler).unwrap();
    wait_for("every file once the disk has room", LONG, || {
        let names: BTreeSet<String> = project
            .jsonl("events.jsonl")
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        (0..files).all(|i| names.contains(&format!("f{i:04}")))
    });
    wait_for("status to say running again", LONG, || {
        status().contains("state:          running\n")
    });
    wait_for("the metrics to say reading again", LONG, || {
        gauge("inotifier_reading_paused") == Some(0.0) && gauge("inotifier_degraded") == Some(0.0)
    });
    let log = project.log();
    assert!(log.contains("is writable again"), "{log}");
    assert!(
        log.contains("inotify queue overflowed; rescanning"),
        "{log}"
    );
    stop(daemon);
}

#[test]
fn watch_with_state_reports_what_changed_between_two_runs() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    let state = dir.path().join("state");
    std::fs::create_dir(&watched).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(watched.join(name), name).unwrap();
    }
    let args = |watched: &Path, state: &Path| {
        vec![
            "-r".to_string(),
            "--state".to_string(),
            state.display().to_string(),
            watched.display().to_string(),
        ]
    };
    // First run: records the snapshot, reports none of what exists, then a new file.
    let mut first = common::Watcher::spawn(args(&watched, &state));
    first.wait_ready();
    std::fs::write(watched.join("made-while-watching"), b"x").unwrap();
    first.expect_mask("IN_CLOSE_WRITE", &watched.join("made-while-watching"));
    first.signal(libc::SIGTERM);
    assert!(first.finish().success(), "{}", first.stderr());
    assert!(first.events().iter().all(|e| e["origin"] == "kernel"));
    let mode = std::fs::metadata(&state).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );

    // While nobody watches.
    std::fs::remove_file(watched.join("a")).unwrap();
    std::fs::rename(watched.join("b"), watched.join("b-renamed")).unwrap();
    std::fs::write(watched.join("c"), b"c, longer now").unwrap();
    std::fs::write(watched.join("d"), b"d").unwrap();

    let mut second = common::Watcher::spawn(args(&watched, &state));
    second.wait_ready();
    second.expect_mask("IN_CLOSE_WRITE", &watched.join("d"));
    second.expect_mask("IN_CLOSE_WRITE", &watched.join("c"));
    second.expect_mask("IN_DELETE", &watched.join("a"));
    let (_, moved) = second.expect_mask("IN_MOVED_TO", &watched.join("b-renamed"));
    assert_eq!(
        moved["src_pathname"],
        watched.join("b").display().to_string()
    );
    second.signal(libc::SIGTERM);
    assert!(second.finish().success(), "{}", second.stderr());
    let events = second.events();
    assert!(
        events.iter().all(|e| e["origin"] == "catchup"),
        "{events:#?}"
    );
    let mut seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["maskname"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = [
        ("a", "IN_DELETE"),
        ("b", "IN_MOVED_FROM"),
        ("b-renamed", "IN_MOVED_TO"),
        ("c", "IN_CLOSE_WRITE"),
        ("c", "IN_MODIFY"),
        ("d", "IN_CLOSE_WRITE"),
        ("d", "IN_CREATE"),
    ]
    .iter()
    .map(|(n, m)| (n.to_string(), m.to_string()))
    .collect();
    // Nothing of the file made during the first run: its snapshot was saved at the stop.
    assert_eq!(seen, expected);
}
