//! A journal whose process is killed (SIGKILL): what was appended is redelivered, and
//! acknowledgements count only once committed.
//!
//! The killed process is this test binary itself, re-run on the ignored `child` test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use inotifier_journal::{Journal, JournalOptions};

const PATH_VAR: &str = "INOTIFIER_JOURNAL_TEST_CHILD_PATH";
const FLUSH_VAR: &str = "INOTIFIER_JOURNAL_TEST_CHILD_FLUSH";

/// Appends 100 events, acknowledges the even ones, optionally flushes, says so on stdout,
/// then waits to be killed.
#[test]
#[ignore = "run by the restart tests in a child process"]
fn child() {
    let Some(path) = std::env::var_os(PATH_VAR) else {
        return;
    };
    // An hour: nothing but an explicit flush commits the acknowledgements before the kill.
    let journal = Journal::open(&JournalOptions {
        commit_interval: Duration::from_secs(3600),
        ..options(Path::new(&path))
    })
    .unwrap();
    let p = journal.processor("p").unwrap();
    append_to(&journal, &events(1..=100), &[p]);
    for id in (2..=100).step_by(2) {
        journal.ack(p, id);
    }
    if std::env::var_os(FLUSH_VAR).is_some() {
        journal.flush().unwrap();
    }
    println!("CHILD READY");
    loop {
        std::thread::park();
    }
}

/// Runs `child`, waits for its line, kills it with SIGKILL.
fn run_and_kill(path: &Path, flush: bool) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PATH_VAR, path)
        .stdout(Stdio::piped());
    if flush {
        command.env(FLUSH_VAR, "1");
    }
    let mut child = command.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ready = false;
    for line in stdout.lines() {
        if line.unwrap().contains("CHILD READY") {
            ready = true;
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(ready, "the child exited before appending: {status}");
}

#[test]
fn appended_events_survive_a_kill_and_unflushed_acks_are_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    run_and_kill(&path, false);
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    assert_eq!(
        ids(&journal.pending(p).unwrap()),
        (1..=100).collect::<Vec<_>>()
    );
    assert_eq!(journal.next_event_id(), 101);
}

#[test]
fn flushed_acks_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    run_and_kill(&path, true);
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    assert_eq!(
        ids(&journal.pending(p).unwrap()),
        (1..=100).step_by(2).collect::<Vec<_>>()
    );
}
