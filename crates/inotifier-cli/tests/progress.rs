//! Progress of the long passes, on real trees and a real journal: the daemon logs its initial
//! scan, its catch-up diff and its journal replay; `inotifier watch` draws a progress line on a
//! terminal (a pseudo-terminal here) and writes nothing of it to a pipe. The reporting interval
//! is lowered to "every check" with `INOTIFIER_PROGRESS_INTERVAL=0`, so that a tree of a few
//! thousand directories is long enough; every wait is on a condition with a deadline.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::project::{LONG, Project, stop, wait_for};
use common::{BIN, ChildGuard, DEADLINE, run_to_exit};
use inotifier_test_support::inotify_shared;

/// The test trees: the root, `TOPS` directories and `SUBS` in each; several checks' worth of
/// directories (one check per 256).
const TOPS: usize = 30;
const SUBS: usize = 99;
const DIRECTORIES: usize = 1 + TOPS + TOPS * SUBS;

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn make_tree(root: &Path) {
    for top in 0..TOPS {
        for sub in 0..SUBS {
            std::fs::create_dir_all(root.join(format!("t{top}/s{sub}"))).unwrap();
        }
    }
}

#[test]
fn the_daemon_logs_the_progress_of_its_scan_replay_and_catch_up() {
    let _shared = inotify_shared();
    let project = Project::new("");
    let watched = project.path("watched");
    std::fs::write(
        project.path("inotifier.toml"),
        "[daemon]\npid_file = \"run/inotifier.pid\"\nlog_level = \"info\"\n\n[[watch]]\npath = \"watched\"\nevents = \"IN_CLOSE_WRITE\"\nprocessor = \"jsonl\"\nrecursive = true\noptions = { path = \"events.jsonl\" }\n",
    )
    .unwrap();
    make_tree(&watched);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(project.path("run"))
        .unwrap();
    // Events the journal owes the watch's processor: the first start hands them over.
    let owed = 2000;
    let captured = project.path("captured.jsonl");
    let lines: String = (0..owed)
        .map(|n| {
            format!(
                "{{\"mask\":8,\"path\":{:?},\"name\":\"f{n}\"}}\n",
                s(&watched)
            )
        })
        .collect();
    std::fs::write(&captured, lines).unwrap();
    let key = format!("jsonl@{}", watched.display());
    let config = project.path("inotifier.toml");
    let imported = run_to_exit(
        Command::new(BIN).args([
            "journal",
            "-c",
            s(&config),
            "import",
            "--jsonl",
            s(&captured),
            "--processor",
            &key,
        ]),
        None,
        DEADLINE,
    );
    assert!(imported.status.success(), "{}", imported.stderr);

    let run = || {
        project.run_with(
            Command::new(BIN)
                .args(["run", "-c", s(&config)])
                .env("INOTIFIER_PROGRESS_INTERVAL", "0"),
        )
    };
    let daemon = run();
    wait_for("the owed events delivered", LONG, || {
        project.lines("events.jsonl").len() >= owed
    });
    wait_for("the replay's last progress line", LONG, || {
        project.log().lines().any(|line| {
            line.contains(&format!(
                "journal replay of jsonl of {}: ",
                watched.display()
            )) && line.contains("done in")
        })
    });
    stop(daemon);
    let log = project.log();
    let scan = format!("initial scan of {}: ", watched.display());
    let scanning: Vec<&str> = log.lines().filter(|line| line.contains(&scan)).collect();
    assert!(
        scanning.len() >= 2,
        "a line while scanning and one at the end:\n{log}"
    );
    assert!(
        scanning[0].contains(" directories, ") && scanning[0].contains("/s, at least "),
        "{}",
        scanning[0]
    );
    assert!(
        scanning
            .last()
            .unwrap()
            .contains(&format!("{DIRECTORIES} directories, ")),
        "{log}"
    );
    let replay = format!("journal replay of jsonl of {}: ", watched.display());
    let replaying: Vec<&str> = log.lines().filter(|line| line.contains(&replay)).collect();
    assert!(
        replaying
            .iter()
            .any(|line| line.contains(&format!(" of {owed} events, ")) && line.contains("left")),
        "entries, rate and estimated rest:\n{log}"
    );

    // The second start compares the tree with the snapshot the first one saved.
    let daemon = run();
    stop(daemon);
    let log = project.log();
    let catch_up = format!("catch-up of {}: ", watched.display());
    let comparing: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&catch_up))
        .collect();
    assert!(
        comparing
            .iter()
            .any(|line| line.contains(&format!("of {} entries, ", DIRECTORIES - 1))),
        "{log}"
    );
    assert!(
        comparing.iter().any(|line| line.contains("done in")),
        "{log}"
    );
}

/// A pseudo-terminal: (master, slave).
fn open_pty() -> (File, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors it opened; no name, termios or window size asked.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened and are owned by nobody else.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[test]
fn watch_draws_a_progress_line_on_a_terminal_only() {
    let _shared = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());

    let (mut master, slave) = open_pty();
    let mut command = Command::new(BIN);
    command
        .args(["watch", "-r", s(dir.path())])
        .env("INOTIFIER_PROGRESS_INTERVAL", "0")
        .env_remove("INOTIFIER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave));
    let mut watcher = ChildGuard::spawn(&mut command);
    // The child holds the slave now; ours is closed with `command`'s copy below.
    drop(command);
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends with EIO once the child, the slave's last holder, has exited.
            while let Ok(n) = master.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
    }
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    wait_for("the ready line on the terminal", DEADLINE, || {
        text().contains("inotifier: ready, ")
    });
    watcher.signal(libc::SIGTERM);
    let status = watcher.expect_exit(DEADLINE, "the watcher to stop");
    assert!(status.success(), "{status:?}");
    let drawn = text();
    let line = format!("initial scan of {}: ", dir.path().display());
    assert!(drawn.contains(&line), "{drawn:?}");
    assert!(drawn.contains(" directories, "), "{drawn:?}");

    // The same on a pipe: the ready line, nothing else.
    let mut watcher = ChildGuard::spawn(
        Command::new(BIN)
            .args(["watch", "-r", s(dir.path())])
            .env("INOTIFIER_PROGRESS_INTERVAL", "0")
            .env_remove("INOTIFIER_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut stderr = watcher.child_mut().stderr.take().unwrap();
    let piped = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let piped = piped.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                piped.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        })
    };
    wait_for("the ready line on the pipe", DEADLINE, || {
        String::from_utf8_lossy(&piped.lock().unwrap()).contains("inotifier: ready, ")
    });
    watcher.signal(libc::SIGTERM);
    let status = watcher.expect_exit(DEADLINE, "the watcher to stop");
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
    let written = String::from_utf8_lossy(&piped.lock().unwrap()).into_owned();
    assert_eq!(
        written,
        format!("inotifier: ready, {DIRECTORIES} watches established\n")
    );
}
