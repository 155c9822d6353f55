//! The daemon on an operator's bad day: a receiver that is down, a journal that lost its
//! content, a second daemon on the same journal, descriptors inherited from the caller, a pid
//! file lock held by another program, a watch root removed and made again. One test per
//! failure seen in the field; each runs `inotifier run` or `start` for real, on real files,
//! against real receivers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;

use common::project::{LONG, Project, stop, wait_for};
use inotifier_test_support::damage::{damage_page, middle_leaf};
use inotifier_test_support::hook_server::HookServer;
use inotifier_test_support::privileges::root_available;
use inotifier_test_support::{Sysctl, inotify_exclusive, inotify_shared, wait_until};

/// A port nothing listens on (yet): connections to it are refused.
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A webhook watch on `path` posting to `port`, retrying every 20-200 ms for as long as the
/// receiver is unreachable.
fn webhook_watch(path: &str, port: u16, events: &str) -> String {
    format!(
        r#"
[[watch]]
name = "hook"
path = "{path}"
events = "{events}"
processor = "webhook"
[watch.options]
url = "http://127.0.0.1:{port}/hook"
[watch.retry]
attempts = 3
initial = "20ms"
max = "200ms"
"#
    )
}

fn jsonl_watch(path: &str, out: &str, events: &str) -> String {
    recursive_jsonl_watch(path, out, events, false)
}

fn recursive_jsonl_watch(path: &str, out: &str, events: &str, recursive: bool) -> String {
    format!(
        r#"
[[watch]]
name = "lines"
path = "{path}"
events = "{events}"
recursive = {recursive}
processor = "jsonl"
[watch.options]
path = "{out}"
"#
    )
}

fn names(events: &[serde_json::Value], mask: &str) -> BTreeSet<String> {
    events
        .iter()
        .filter(|event| event["maskname"] == mask)
        .map(|event| event["name"].as_str().unwrap().to_string())
        .collect()
}

fn write_files(dir: &Path, prefix: &str, count: usize) {
    for index in 0..count {
        std::fs::write(dir.join(format!("{prefix}{index:05}")), b"x").unwrap();
    }
}

/// Point 1, across watches: a webhook whose receiver is down holds up none of another
/// watch's deliveries, even with more of its own events waiting than it has workers.
fn an_unreachable_receiver_holds_up_no_other_watch(journal: bool) {
    let _lock = inotify_shared();
    let port = refused_port();
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\nlog_level = \"info\"\n[journal]\nenabled = \
         {journal}\n{}{}",
        webhook_watch("watched/a", port, "IN_CLOSE_WRITE"),
        jsonl_watch("watched/b", "b.jsonl", "IN_CLOSE_WRITE")
    ));
    std::fs::create_dir(project.watched("a")).unwrap();
    std::fs::create_dir(project.watched("b")).unwrap();
    let daemon = project.run();
    write_files(&project.watched("a"), "a", 20);
    wait_for("the webhook's outage to be retried", LONG, || {
        project.log().contains("retry_in_ms")
    });
    write_files(&project.watched("b"), "b", 50);
    wait_for("every file of b delivered", LONG, || {
        names(&project.jsonl("b.jsonl"), "IN_CLOSE_WRITE").len() == 50
    });
    // Once the receiver is up, the webhook gets its 20 as well.
    let server = HookServer::start(
        &project.path("requests.jsonl"),
        &["--port", &port.to_string()],
        &[],
    );
    wait_for("the webhook's 20 files", LONG, || {
        server.request_lines().len() >= 20
    });
    stop(daemon);
}

#[test]
fn an_unreachable_receiver_holds_up_no_other_watch_with_the_journal() {
    an_unreachable_receiver_holds_up_no_other_watch(true);
}

#[test]
fn an_unreachable_receiver_holds_up_no_other_watch_without_a_journal() {
    an_unreachable_receiver_holds_up_no_other_watch(false);
}

/// The bodies of the requests `server` received, in order.
fn posted(server: &HookServer) -> Vec<serde_json::Value> {
    server
        .request_lines()
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|request| serde_json::from_str(request["body"].as_str().unwrap()).unwrap())
        .collect()
}

/// Point 1, on one directory: a jsonl processor beside a webhook that is down gets all 3,000
/// files while the webhook's lane, far past its queue, falls behind into the journal; once the
/// receiver is up, the webhook gets every event too, each file's in order, each once.
#[test]
fn a_processor_beside_one_that_is_down_delivers_everything_and_the_other_catches_up() {
    let _lock = inotify_shared();
    let port = refused_port();
    let events = "IN_CREATE|IN_CLOSE_WRITE";
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\nlog_level = \"info\"\nworkers = 2\n\
         queue_capacity = 64\n{}{}",
        webhook_watch("watched", port, events),
        jsonl_watch("watched", "lines.jsonl", events)
    ));
    let daemon = project.run();
    let files = 3000;
    write_files(&project.watched(""), "f", files);
    wait_for("every file in the jsonl output", LONG, || {
        names(&project.jsonl("lines.jsonl"), "IN_CLOSE_WRITE").len() == files
    });
    assert!(
        project.log().contains("is not keeping up"),
        "the webhook's lane fell behind: {}",
        project.log()
    );
    let server = HookServer::start(
        &project.path("requests.jsonl"),
        &["--port", &port.to_string()],
        &[],
    );
    wait_for("every event posted", LONG, || {
        posted(&server).len() >= 2 * files
    });
    wait_for("the webhook's lane to catch up", LONG, || {
        project.log().contains("caught up")
    });
    stop(daemon);
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for event in posted(&server) {
        assert!(
            ids.insert(event["id"].as_u64().unwrap()),
            "posted twice: {event}"
        );
        by_file
            .entry(event["name"].as_str().unwrap().to_string())
            .or_default()
            .push(event["maskname"].as_str().unwrap().to_string());
    }
    assert_eq!(by_file.len(), files);
    for (name, masks) in &by_file {
        assert_eq!(masks, &["IN_CREATE", "IN_CLOSE_WRITE"], "{name}");
    }
}

/// An exec watch on `watched` recording `MASKNAME|PATHNAME` per event into `out`, through a
/// shell that gets them as arguments, never as code.
fn exec_recorder(name: &str, events: &str, out: &Path) -> String {
    format!(
        r#"
[[watch]]
name = "{name}"
path = "watched"
events = "{events}"
processor = "exec"
[watch.options]
argv = ["/bin/sh", "-c", "printf '%s|%s\n' \"$1\" \"$2\" >> \"$0\"", "{}", "{{maskname}}", "{{pathname}}"]
"#,
        out.display()
    )
}

fn recorded(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let (mask, pathname) = line.split_once('|').expect("MASK|PATHNAME");
            (mask.to_string(), pathname.to_string())
        })
        .collect()
}

/// Point 12: a kernel queue overflow reaches only the watches that asked for IN_Q_OVERFLOW,
/// with the watched path as its pathname; the others get the rescan's events alone, and no
/// command runs with an empty `{pathname}`.
#[test]
fn a_queue_overflow_reaches_only_the_watches_that_asked_for_it() {
    if !root_available(
        "a_queue_overflow_reaches_only_the_watches_that_asked_for_it",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    // Before the daemon starts: a queue's size is fixed when its instance is made.
    let _queue = Sysctl::set("max_queued_events", 64, &exclusive);
    let dir = tempfile::tempdir().unwrap();
    let (files_out, overflow_out) = (dir.path().join("files"), dir.path().join("overflows"));
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\nlog_level = \"info\"\n{}{}",
        exec_recorder("files", "IN_CLOSE_WRITE", &files_out),
        exec_recorder("overflows", "IN_Q_OVERFLOW", &overflow_out),
    ));
    let daemon = project.run();
    // Stopped, the daemon reads nothing: 300 files overflow a queue of 64 for certain.
    daemon.signal(libc::SIGSTOP);
    let files = 300;
    write_files(&project.watched(""), "f", files);
    daemon.signal(libc::SIGCONT);
    wait_for("every file, through the rescan", LONG, || {
        recorded(&files_out).len() >= files
    });
    let watched = project.watched("").canonicalize().unwrap();
    wait_for("the overflow at the watch that asked for it", LONG, || {
        recorded(&overflow_out)
            .iter()
            .any(|(mask, pathname)| mask == "IN_Q_OVERFLOW" && Path::new(pathname) == watched)
    });
    stop(daemon);
    let files_seen = recorded(&files_out);
    assert!(
        files_seen
            .iter()
            .all(|(mask, pathname)| mask == "IN_CLOSE_WRITE" && !pathname.is_empty()),
        "only the files' own events: {files_seen:?}"
    );
    assert!(
        recorded(&overflow_out)
            .iter()
            .all(|(mask, _)| mask == "IN_Q_OVERFLOW"),
    );
}

/// An exec watch recording, per event, whether the command it ran had descriptor 5 open.
fn descriptor_probe(out: &Path) -> String {
    format!(
        r#"[daemon]
pid_file = "run/inotifier.pid"
[[watch]]
path = "watched"
events = "IN_CLOSE_WRITE"
processor = "exec"
[watch.options]
argv = ["/bin/sh", "-c", "if [ -e /proc/self/fd/5 ]; then echo inherited; else echo clean; fi >> \"$0\"", "{}"]
"#,
        out.display()
    )
}

/// Point 6, `start`: the daemon keeps none of its caller's descriptors, so a caller that
/// reads its output through a pipe (`inotifier start ... 5>&1 | cat`) gets its end of file.
#[test]
fn start_keeps_none_of_the_callers_descriptors() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    let project = Project::new(&descriptor_probe(&probe));
    let started = common::run_to_exit(
        std::process::Command::new("/bin/sh")
            .args(["-c", r#""$0" start -c "$1" 5>&1 | cat"#, common::BIN])
            .arg(project.path("inotifier.toml")),
        None,
        common::DEADLINE,
    );
    assert!(started.status.success(), "{}", started.stderr);
    let pid: i32 = started
        .stdout
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {:?}", started.stdout));
    let _guard = common::project::DaemonGuard { pid };
    std::fs::write(project.watched("one"), b"x").unwrap();
    // The shell creates the file before it writes the line: wait for the whole line.
    wait_for("the probe's line", LONG, || {
        std::fs::read_to_string(&probe).is_ok_and(|text| text.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&probe).unwrap(), "clean\n");
    let stopped = common::run_inotifier(&[
        "stop",
        "-c",
        project.path("inotifier.toml").to_str().unwrap(),
    ]);
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

/// Point 6, `run`: commands the exec processor runs get stdin, stdout and stderr only, not a
/// descriptor the daemon was started with.
#[test]
fn exec_commands_get_only_the_standard_descriptors() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    let project = Project::new(&descriptor_probe(&probe));
    let held = dir.path().join("held-open");
    let daemon = project.run_with(
        std::process::Command::new("/bin/sh")
            .args(["-c", r#"exec "$0" run -c "$1" 5>"$2""#, common::BIN])
            .arg(project.path("inotifier.toml"))
            .arg(&held),
    );
    std::fs::write(project.watched("one"), b"x").unwrap();
    // The shell creates the file before it writes the line: wait for the whole line.
    wait_for("the probe's line", LONG, || {
        std::fs::read_to_string(&probe).is_ok_and(|text| text.ends_with('\n'))
    });
    stop(daemon);
    assert_eq!(
        std::fs::read_to_string(&probe).unwrap(),
        "clean\n",
        "the command inherited the daemon's descriptor 5"
    );
}

/// Point 7: a process that is not inotifier holding the pid file's lock is neither reported
/// as the running daemon nor signalled.
#[test]
fn stop_and_status_never_take_a_stranger_holding_the_lock_for_the_daemon() {
    let project = Project::new(&jsonl_watch("watched", "lines.jsonl", "IN_CREATE").replace(
        "\n[[watch]]",
        "[daemon]\npid_file = \"run/inotifier.pid\"\n\n[[watch]]",
    ));
    let run = project.path("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let pid_file = run.join("inotifier.pid");
    let mut stranger = common::ChildGuard::spawn(
        std::process::Command::new("flock")
            .arg(&pid_file)
            .args(["sleep", "60"])
            .stdin(std::process::Stdio::null()),
    );
    let config = project.path("inotifier.toml");
    let config = config.to_str().unwrap();
    let mut status = common::run_inotifier(&["status", "-c", config]);
    wait_for("flock to hold the pid file", LONG, || {
        status = common::run_inotifier(&["status", "-c", config]);
        !status.stdout.contains("not running")
    });
    let named = format!("locked by pid {}", stranger.pid());
    assert!(!status.status.success(), "{}", status.stdout);
    assert!(status.stderr.contains(&named), "{}", status.stderr);
    assert!(status.stderr.contains("flock"), "{}", status.stderr);
    let stopped = common::run_inotifier(&["stop", "-c", config, "--timeout", "2"]);
    assert!(!stopped.status.success(), "{}", stopped.stdout);
    assert!(
        stopped.stderr.contains(&named) && stopped.stderr.contains("was not signalled"),
        "{}",
        stopped.stderr
    );
    assert!(stranger.try_wait().is_none(), "the stranger was signalled");
}

/// Point 9: a second daemon on the journal of a running one (another pid file, the same
/// `[journal] path`) refuses to start, naming the first; once the first stopped, it starts.
#[test]
fn a_second_daemon_on_the_same_journal_refuses_to_start() {
    let _lock = inotify_shared();
    let watch = jsonl_watch("watched", "lines.jsonl", "IN_CREATE");
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/one.pid\"\n[journal]\npath = \"shared.journal\"\n{watch}"
    ));
    let second = project.path("second.toml");
    std::fs::write(
        &second,
        format!(
            "[daemon]\npid_file = \"run/two.pid\"\n[journal]\npath = \"shared.journal\"\n{watch}"
        ),
    )
    .unwrap();
    let first = project.run();
    let refused = common::run_inotifier(&["run", "-c", second.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr
            .contains(&format!("in use by another daemon (pid {})", first.pid())),
        "{}",
        refused.stderr
    );
    stop(first);
    let mut again = common::ChildGuard::spawn(
        std::process::Command::new(common::BIN)
            .args(["run", "-c"])
            .arg(&second)
            .stderr(std::process::Stdio::null()),
    );
    wait_for("the second daemon to take the journal", LONG, || {
        std::fs::read_to_string(project.path("shared.journal.lock"))
            .is_ok_and(|pid| pid.trim() == again.pid().to_string())
    });
    again.signal(libc::SIGTERM);
    assert!(
        again
            .expect_exit(LONG, "the second daemon to stop")
            .success()
    );
}

/// The journal header of the requests `server` received, in order.
fn journals_posted(server: &HookServer) -> Vec<String> {
    server
        .request_lines()
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|request| {
            request["headers"]["x-inotifier-journal"]
                .as_str()
                .expect("an X-Inotifier-Journal header")
                .to_string()
        })
        .collect()
}

/// Point 4: a journal file that lost its content is never taken for a first start: `run`
/// refuses, naming the command that accepts the loss, and leaves the file alone; after
/// `journal reset`, the new journal has a new identity, so message ids do not repeat even
/// though event ids start at 1 again.
#[test]
fn a_journal_that_lost_its_content_is_refused_until_reset_and_ids_never_repeat() {
    let _lock = inotify_shared();
    let server = HookServer::start(
        &tempfile::tempdir().unwrap().keep().join("requests"),
        &[],
        &[],
    );
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\n{}",
        webhook_watch("watched", server.port, "IN_CLOSE_WRITE")
    ));
    let config = project.path("inotifier.toml");
    let config = config.to_str().unwrap();
    let daemon = project.run();
    std::fs::write(project.watched("first"), b"x").unwrap();
    wait_for("the first post", LONG, || server.request_lines().len() == 1);
    stop(daemon);
    let journal = project.path("run/inotifier.journal");
    std::fs::File::create(&journal).unwrap();
    let refused = common::run_inotifier(&["run", "-c", config]);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("its content is lost")
            && refused.stderr.contains(&format!(
                "inotifier journal reset --journal {}",
                journal.display()
            )),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0, "left alone");
    let reset = common::run_inotifier(&["journal", "reset", "-c", config]);
    assert!(reset.status.success(), "{}", reset.stderr);
    assert!(reset.stdout.contains("moved aside to"), "{}", reset.stdout);
    let daemon = project.run();
    std::fs::write(project.watched("second"), b"x").unwrap();
    wait_for("the second post", LONG, || {
        server.request_lines().len() == 2
    });
    stop(daemon);
    let journals = journals_posted(&server);
    assert_ne!(journals[0], journals[1], "a new journal, a new identity");
    let bodies = posted(&server);
    assert_eq!(bodies[0]["id"], bodies[1]["id"], "event ids start again");
}

/// Point 2: files made while the daemon was down are found by catch-up and get their
/// IN_READY once their settle time is over, with no later kernel event to wake the daemon.
#[test]
fn files_found_by_catch_up_are_ready_without_any_later_event() {
    let _lock = inotify_shared();
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\n{}[watch.ready]\nsettle = \"100ms\"\n",
        jsonl_watch("watched", "ready.jsonl", "IN_READY")
    ));
    stop(project.run());
    let files = 50;
    write_files(&project.watched(""), "f", files);
    let daemon = project.run();
    wait_for("every file found by catch-up to be ready", LONG, || {
        names(&project.jsonl("ready.jsonl"), "IN_READY").len() == files
    });
    stop(daemon);
    assert!(
        project
            .jsonl("ready.jsonl")
            .iter()
            .all(|event| event["origin"] == "catchup"),
        "{:?}",
        project.jsonl("ready.jsonl")
    );
}

/// Point 4, at run time: owed events the journal cannot read make the daemon degraded, with
/// their count and the recovery command, instead of `running` with nothing delivered.
#[test]
fn owed_events_the_journal_cannot_read_make_the_daemon_degraded() {
    let _lock = inotify_shared();
    let daemon_table = "[daemon]\npid_file = \"run/inotifier.pid\"\ndrain_timeout = \"1s\"\n";
    // First the receiver is down: every event stays owed in the journal.
    let project = Project::new(&format!(
        "{daemon_table}{}",
        webhook_watch("watched", refused_port(), "IN_CLOSE_WRITE")
    ));
    let daemon = project.run();
    let files = 3000;
    write_files(&project.watched(""), "f", files);
    let config = project.path("inotifier.toml");
    let owed = || {
        let summary = common::run_inotifier(&["journal", "-c", config.to_str().unwrap()]);
        summary.stdout
    };
    wait_for("every event journaled", LONG, || {
        owed().contains(&format!("{files}"))
    });
    stop(daemon);
    let journal = project.path("run/inotifier.journal");
    damage_page(&journal, middle_leaf(&journal, "events"));
    // The same watch (its name is its journal key), now with a processor that works.
    std::fs::write(
        &config,
        format!(
            "{daemon_table}{}",
            jsonl_watch("watched", "lines.jsonl", "IN_CLOSE_WRITE")
                .replace("\"lines\"", "\"hook\"")
        ),
    )
    .unwrap();
    let daemon = project.run();
    let status = || common::run_inotifier(&["status", "-c", config.to_str().unwrap()]).stdout;
    wait_for("status to say the journal is unreadable", LONG, || {
        status().contains("state:          degraded (journal unreadable: ")
    });
    let text = status();
    assert!(
        text.contains("event(s) owed to jsonl of")
            && text.contains(&format!(
                "inotifier journal recover --journal {}",
                journal.display()
            )),
        "{text}"
    );
    assert!(
        project.lines("lines.jsonl").len() < files,
        "what is past the damage is not delivered"
    );
    stop(daemon);
}

fn status_of(project: &Project) -> String {
    let config = project.path("inotifier.toml");
    common::run_inotifier(&["status", "-c", config.to_str().unwrap()]).stdout
}

/// Point 10: a watched directory removed says so (log and status), and once it is made
/// again it is watched again, what is in it reported.
#[test]
fn a_watched_path_removed_and_made_again_is_watched_again() {
    let _lock = inotify_shared();
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\n{}",
        recursive_jsonl_watch("watched/root", "lines.jsonl", "IN_CREATE", true)
    ));
    let root = project.watched("root");
    std::fs::create_dir(&root).unwrap();
    let daemon = project.run();
    std::fs::write(root.join("one"), b"x").unwrap();
    wait_for("the first file", LONG, || {
        names(&project.jsonl("lines.jsonl"), "IN_CREATE").contains("one")
    });
    std::fs::remove_dir_all(&root).unwrap();
    wait_for("status to say the watched path is gone", LONG, || {
        status_of(&project).contains(&format!(
            "state:          degraded (watched path gone: {}",
            root.display()
        ))
    });
    assert!(project.log().contains("is gone"), "{}", project.log());
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("two"), b"x").unwrap();
    wait_for("the file made with the path", LONG, || {
        names(&project.jsonl("lines.jsonl"), "IN_CREATE").contains("two")
    });
    wait_for("status to say running again", LONG, || {
        status_of(&project).contains("state:          running\n")
    });
    // Watched by the kernel again, not only scanned.
    std::fs::write(root.join("three"), b"x").unwrap();
    wait_for("a file made after", LONG, || {
        names(&project.jsonl("lines.jsonl"), "IN_CREATE").contains("three")
    });
    stop(daemon);
}

/// Point 5: directories that found no inotify watch at run time are visible in the status
/// and, once watches are to be had, watched and scanned: their files reported, later changes
/// seen by the kernel.
#[test]
fn directories_left_without_a_watch_are_reported_and_watched_once_the_limit_allows() {
    if !root_available(
        "directories_left_without_a_watch_are_reported_and_watched_once_the_limit_allows",
        "lowers fs.inotify.max_user_watches",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\n{}",
        recursive_jsonl_watch("watched", "lines.jsonl", "IN_CREATE|IN_CLOSE_WRITE", true)
    ));
    let (in_use, _) = inotifier_test_support::inotify_usage();
    let limit = Sysctl::set("max_user_watches", in_use + 3, &exclusive);
    let daemon = project.run();
    let dirs = 10;
    for index in 0..dirs {
        let dir = project.watched(&format!("d{index}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("inside"), b"x").unwrap();
    }
    wait_for("status to count the unwatched directories", LONG, || {
        status_of(&project).contains("directories not watched: out of inotify watches")
    });
    drop(limit);
    // Each file at least once: a directory watched while its file was written may report it
    // twice (the kernel's close, and the scan of the new directory).
    let reported = || {
        project
            .jsonl("lines.jsonl")
            .iter()
            .filter(|event| event["name"] == "inside" && event["maskname"] == "IN_CLOSE_WRITE")
            .map(|event| event["pathname"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    let all_reported = wait_until(LONG, || reported().len() == dirs);
    assert!(
        all_reported,
        "every directory's file, once watched and scanned: {:?}\n{}",
        reported(),
        project.log()
    );
    let last = project.watched(&format!("d{}", dirs - 1));
    std::fs::write(last.join("later"), b"x").unwrap();
    wait_for("a file made after, seen by the kernel", LONG, || {
        project
            .jsonl("lines.jsonl")
            .iter()
            .any(|event| event["name"] == "later" && event["origin"] == "kernel")
    });
    stop(daemon);
}

/// Makes directories below `top`, each with a 200-byte name, `levels` deep, through directory
/// descriptors: their paths grow past PATH_MAX, which path-taking calls refuse.
fn make_deep_tree(top: &Path, levels: usize) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let name = std::ffi::CString::new("d".repeat(200)).unwrap();
    let mut dir = OwnedFd::from(std::fs::File::open(top).unwrap());
    for _ in 0..levels {
        // SAFETY: mkdirat/openat relative to a directory descriptor we own, with a valid
        // NUL-terminated name; the new descriptor is owned right away.
        unsafe {
            assert_eq!(libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755), 0);
            let fd = libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            dir = OwnedFd::from_raw_fd(fd);
        }
    }
}

/// Point 5: a subtree deeper than PATH_MAX, which inotify cannot watch, is reported as
/// unwatched in the status, not skipped after a log line.
#[test]
fn directories_beyond_path_max_are_reported_as_unwatched() {
    let _lock = inotify_shared();
    let project = Project::new(&format!(
        "[daemon]\npid_file = \"run/inotifier.pid\"\n{}",
        recursive_jsonl_watch("watched", "lines.jsonl", "IN_CREATE", true)
    ));
    make_deep_tree(&project.watched(""), 25);
    let daemon = project.run();
    wait_for(
        "status to count the directories too deep to watch",
        LONG,
        || {
            status_of(&project)
                .contains("directories not watched: their paths are longer than PATH_MAX")
        },
    );
    stop(daemon);
}

/// Point 3: after a SIGKILL, what was delivered is not delivered again beyond what the
/// workers were running at the kill: acknowledgements are written as each event is done, not
/// once a whole batch is, and catch-up does not report again what the journal holds.
#[test]
fn a_kill_redelivers_only_what_the_workers_were_running() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delivered");
    let workers = 4;
    let project = Project::new(&format!(
        r#"[daemon]
pid_file = "run/inotifier.pid"
log_level = "info"
workers = {workers}

[[watch]]
name = "slow"
path = "watched"
events = "IN_CLOSE_WRITE"
processor = "exec"
[watch.options]
argv = ["/bin/sh", "-c", "sleep 0.02; printf '%s\n' \"$1\" >> \"$0\"", "{}", "{{name}}"]
"#,
        out.display()
    ));
    let delivered = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut daemon = project.run();
    let files = 500;
    write_files(&project.watched(""), "f", files);
    wait_for("a fifth delivered", LONG, || delivered().len() >= files / 5);
    daemon.signal(libc::SIGKILL);
    daemon.expect_exit(LONG, "the killed daemon to be reaped");
    let daemon = project.run();
    wait_for("every file delivered", LONG, || {
        delivered().iter().collect::<BTreeSet<_>>().len() == files
    });
    stop(daemon);
    let all = delivered();
    let duplicates = all.len() - files;
    eprintln!("{duplicates} duplicate(s) after the kill");
    assert!(
        duplicates <= 2 * workers,
        "{duplicates} delivered twice; at most what {workers} workers were running"
    );
}
