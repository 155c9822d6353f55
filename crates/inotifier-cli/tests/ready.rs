//! `inotifier watch -e IN_READY` run as a real process on real files. Nothing here changes
//! machine state (the overflow test, which lowers a limit, is in `limits.rs`).
//!
//! Absences ("no ready event for the `.part` file", "only one") are asserted after a barrier:
//! the ready event of a marker file closed after everything else. The kernel queue is ordered
//! and the watcher's timers run out in the order they were armed (one settle time), so every
//! ready event caused before the marker's has been printed by then.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Watcher, maskname, pathname, run_inotifier};
use inotifier_test_support::inotify_shared;
use inotifier_test_support::workloads::{
    files_in_new_directories, write_one_descriptor, write_reopening,
};
use serde_json::Value;

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inotifier-ready-")
        .tempdir()
        .expect("temporary directory")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The `time` of an event: when the watcher made it, seconds since the epoch.
fn time_of(event: &Value) -> f64 {
    event["time"].as_f64().expect("time is a number")
}

/// Nine decimals of seconds since 1970 are more than a double holds exactly.
const TIME_ROUNDING: f64 = 1e-6;

/// `inotifier watch` asking for ready events, with a counter for barrier files.
struct ReadyWatcher {
    watcher: Watcher,
    barriers: usize,
}

impl ReadyWatcher {
    fn spawn(args: &[&str]) -> ReadyWatcher {
        let mut watcher = Watcher::spawn(args);
        watcher.wait_ready();
        ReadyWatcher {
            watcher,
            barriers: 0,
        }
    }

    fn expect_ready(&mut self, path: &Path) -> Value {
        self.watcher.expect_mask("IN_READY", path).1
    }

    /// Closes a marker file in `dir` and waits for its ready event (see the module docs).
    fn barrier(&mut self, dir: &Path) {
        self.barriers += 1;
        let marker = dir.join(format!("barrier-{}", self.barriers));
        std::fs::write(&marker, b"").unwrap();
        self.expect_ready(&marker);
    }

    fn readies(&self, path: &Path) -> Vec<Value> {
        self.watcher
            .events()
            .into_iter()
            .filter(|e| maskname(e) == "IN_READY" && pathname(e) == s(path))
            .collect()
    }

    fn assert_one_ready(&self, path: &Path) -> Value {
        let readies = self.readies(path);
        assert_eq!(
            readies.len(),
            1,
            "ready events for {}; output:\n{}",
            path.display(),
            self.watcher.lines.join("\n")
        );
        readies.into_iter().next().unwrap()
    }

    fn assert_no_ready(&self, path: &Path) {
        assert!(
            self.readies(path).is_empty(),
            "{} got a ready event; output:\n{}",
            path.display(),
            self.watcher.lines.join("\n")
        );
    }

    /// Stops the watcher with SIGTERM, by its PID, and checks it exited 0.
    fn stop(mut self) -> Watcher {
        self.watcher.signal(libc::SIGTERM);
        let status = self.watcher.finish();
        assert_eq!(status.code(), Some(0), "stderr:\n{}", self.watcher.stderr());
        self.watcher
    }
}

// ----- options -----------------------------------------------------------------------------------

#[test]
fn help_documents_the_ready_event_and_its_options() {
    let _lock = inotify_shared();
    let help = run_inotifier(&["watch", "--help"]);
    assert_eq!(help.status.code(), Some(0), "{}", help.stderr);
    for text in [
        "IN_READY",
        "--settle <DURATION>",
        "--temp-pattern <GLOB>",
        "200ms",
        "*.part",
        "*.crdownload",
        ".*.swp",
        "0x00100000",
    ] {
        assert!(
            help.stdout.contains(text),
            "watch --help lacks {text:?}:\n{}",
            help.stdout
        );
    }
}

#[test]
fn ready_options_without_ready_or_malformed_are_usage_errors() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let d = s(dir.path());
    let cases: [(&[&str], &str); 4] = [
        (&["watch", "--settle", "1s", d], "IN_READY"),
        (
            &["watch", "-e", "IN_CREATE", "--temp-pattern", "*.x", d],
            "IN_READY",
        ),
        (&["watch", "-e", "IN_READY", "--settle", "soon", d], "soon"),
        (
            &["watch", "-e", "ready", "--temp-pattern", "tmp/*.x", d],
            "tmp/*.x",
        ),
    ];
    for (args, expected) in cases {
        let run = run_inotifier(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

// ----- chunks ----------------------------------------------------------------------------------

#[test]
fn a_file_written_in_100_reopened_chunks_is_ready_once_after_the_last() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    // Each reopen closes the file, so a pause longer than the settle time would rightly make it
    // ready in the middle. The chunks are 10 ms apart; 500 ms leaves room for a loaded machine,
    // and the writer checks that its pauses stayed below it.
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", "--settle", "500ms", s(dir.path())]);
    let file = dir.path().join("upload.bin");
    let written = write_reopening(&file, 100, Duration::from_millis(10));
    assert!(
        written.longest_pause < Duration::from_millis(500),
        "the machine stalled the writer for {:?}: no verdict possible",
        written.longest_pause
    );
    let ready = watcher.expect_ready(&file);
    assert!(
        time_of(&ready) + TIME_ROUNDING >= epoch_seconds(written.before_last_close_wall) + 0.5,
        "ready {}s after the last close: {ready}",
        time_of(&ready) - epoch_seconds(written.before_last_close_wall)
    );
    watcher.barrier(dir.path());
    watcher.assert_one_ready(&file);
    watcher.stop();
}

#[test]
fn a_file_written_in_100_chunks_through_one_descriptor_is_ready_once() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", s(dir.path())]);
    let file = dir.path().join("stream.log");
    let (_, before_close) = write_one_descriptor(&file, 100, Duration::from_millis(10));
    let ready = watcher.expect_ready(&file);
    assert!(time_of(&ready) + TIME_ROUNDING >= epoch_seconds(before_close) + 0.2);
    watcher.barrier(dir.path());
    watcher.assert_one_ready(&file);
    watcher.stop();
}

// ----- renamed into place ------------------------------------------------------------------------

#[test]
fn temporary_files_renamed_into_place_are_ready_once_under_their_final_name() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", s(dir.path())]);
    let cases = [
        ("report.csv.part", "report.csv"),
        ("movie.mkv.crdownload", "movie.mkv"),
        (".notes.txt.swp", "notes.txt"),
    ];
    for (temporary, final_name) in cases {
        let temporary = dir.path().join(temporary);
        let final_path = dir.path().join(final_name);
        std::fs::write(&temporary, b"complete content").unwrap();
        std::fs::rename(&temporary, &final_path).unwrap();
        let ready = watcher.expect_ready(&final_path);
        assert_eq!(ready["src_pathname"], s(&temporary), "{ready}");
        assert_eq!(ready["origin"], "kernel", "{ready}");
        assert_eq!(ready["mask"], 0x0010_0000, "{ready}");
        assert_eq!(ready["dir"], false, "{ready}");
    }
    watcher.barrier(dir.path());
    for (temporary, final_name) in cases {
        watcher.assert_one_ready(&dir.path().join(final_name));
        watcher.assert_no_ready(&dir.path().join(temporary));
    }
    let watcher = watcher.stop();
    // Only ready events were asked for, and the output numbers them one by one.
    let events = watcher.events();
    assert!(
        events.iter().all(|e| maskname(e) == "IN_READY"),
        "{:?}",
        watcher.lines
    );
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}

#[test]
fn custom_temp_patterns_replace_the_defaults() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let mut watcher = ReadyWatcher::spawn(&[
        "-e",
        "IN_READY",
        "--temp-pattern",
        "*.upload",
        "--temp-pattern",
        "~*",
        s(dir.path()),
    ]);
    let uploading = dir.path().join("photo.jpg.upload");
    let photo = dir.path().join("photo.jpg");
    let locked = dir.path().join("~doc.txt");
    let doc = dir.path().join("doc.txt");
    let part = dir.path().join("plain.part");
    std::fs::write(&uploading, b"jpeg").unwrap();
    std::fs::write(&locked, b"text").unwrap();
    std::fs::write(&part, b"not temporary here").unwrap();
    std::fs::rename(&uploading, &photo).unwrap();
    std::fs::rename(&locked, &doc).unwrap();
    assert_eq!(watcher.expect_ready(&photo)["src_pathname"], s(&uploading));
    assert_eq!(watcher.expect_ready(&doc)["src_pathname"], s(&locked));
    // `.part` is not temporary with these patterns: it settles like any file.
    assert!(watcher.expect_ready(&part)["src_pathname"].is_null());
    watcher.barrier(dir.path());
    for path in [&photo, &doc, &part] {
        watcher.assert_one_ready(path);
    }
    watcher.assert_no_ready(&uploading);
    watcher.assert_no_ready(&locked);
    watcher.stop();
}

// ----- cp --------------------------------------------------------------------------------------

#[test]
fn a_file_copied_with_cp_is_ready_once() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let outside = temp_dir();
    let source = outside.path().join("source.bin");
    // Several megabytes: cp writes it in many pieces.
    let content: Vec<u8> = (0..4 * 1024 * 1024).map(|n| (n % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", s(dir.path())]);
    let copy = dir.path().join("copy.bin");
    let mut cp = Command::new("cp")
        .arg(&source)
        .arg(&copy)
        .spawn()
        .expect("cp runs");
    // Waited for by its PID, like every process a test starts.
    let status = cp.wait().unwrap();
    assert!(status.success(), "cp failed: {status}");
    watcher.expect_ready(&copy);
    assert_eq!(std::fs::read(&copy).unwrap(), content);
    watcher.barrier(dir.path());
    watcher.assert_one_ready(&copy);
    watcher.stop();
}

// ----- found by a scan ---------------------------------------------------------------------------

#[test]
fn files_of_a_directory_moved_into_a_recursive_watch_are_ready_once_each() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let outside = temp_dir();
    let staged = outside.path().join("batch");
    std::fs::create_dir_all(staged.join("nested")).unwrap();
    let names = ["a.csv", "b.csv", "nested/c.csv"];
    for name in names {
        std::fs::write(staged.join(name), name.as_bytes()).unwrap();
    }
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", "-r", s(dir.path())]);
    let moved_in = dir.path().join("batch");
    std::fs::rename(&staged, &moved_in).unwrap();
    for name in names {
        let ready = watcher.expect_ready(&moved_in.join(name));
        // The kernel never saw these files written: only the scan of the new directory did.
        assert_eq!(ready["origin"], "scan", "{ready}");
        assert_eq!(ready["synthetic"], true, "{ready}");
    }
    watcher.barrier(dir.path());
    for name in names {
        watcher.assert_one_ready(&moved_in.join(name));
    }
    watcher.assert_no_ready(&moved_in);
    watcher.assert_no_ready(&moved_in.join("nested"));
    watcher.stop();
}

#[test]
fn files_created_in_a_new_directory_before_its_watch_lands_are_ready_once_each() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", "-r", s(dir.path())]);
    let files = files_in_new_directories(dir.path(), 20);
    for file in &files {
        watcher.expect_ready(file);
    }
    watcher.barrier(dir.path());
    for file in &files {
        watcher.assert_one_ready(file);
    }
    watcher.stop();
}

// ----- the settle time -------------------------------------------------------------------------

#[test]
fn the_settle_time_is_honoured_and_configurable() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", "--settle", "700ms", s(dir.path())]);
    let file = dir.path().join("f");
    let mut handle = File::create(&file).unwrap();
    handle.write_all(b"content").unwrap();
    let before_close = SystemTime::now();
    drop(handle);
    let ready = watcher.expect_ready(&file);
    let after = time_of(&ready) - epoch_seconds(before_close);
    assert!(
        after + TIME_ROUNDING >= 0.7,
        "ready {after}s after the close"
    );
    watcher.stop();
}

#[test]
fn a_file_written_again_within_the_settle_time_is_ready_once() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    // Long enough that the second write surely comes within it; checked below.
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_READY", "--settle", "2s", s(dir.path())]);
    let file = dir.path().join("twice");
    std::fs::write(&file, b"first").unwrap();
    let after_first_close = Instant::now();
    let mut again = File::options().append(true).open(&file).unwrap();
    again.write_all(b" and second").unwrap();
    let before_second_close = SystemTime::now();
    drop(again);
    assert!(
        after_first_close.elapsed() < Duration::from_secs(2),
        "the machine stalled for longer than the settle time: no verdict possible"
    );
    let ready = watcher.expect_ready(&file);
    assert!(time_of(&ready) + TIME_ROUNDING >= epoch_seconds(before_second_close) + 2.0);
    watcher.barrier(dir.path());
    watcher.assert_one_ready(&file);
    watcher.stop();
}

// ----- masks without IN_READY, and with others ---------------------------------------------------

#[test]
fn a_mask_without_ready_gets_no_ready_events_and_nothing_else_it_did_not_ask_for() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let mut watcher = Watcher::spawn(["-e", "IN_CREATE", s(dir.path())]);
    watcher.wait_ready();
    let file = dir.path().join("f.txt");
    let mut handle = File::create(&file).unwrap();
    for _ in 0..10 {
        handle.write_all(b"chunk").unwrap();
    }
    drop(handle);
    watcher.expect_mask("IN_CREATE", &file);
    // The marker's creation comes after every event of f.txt; past the settle time too, for a
    // ready event that would wrongly come at all.
    std::thread::sleep(Duration::from_millis(300));
    let marker = dir.path().join("marker");
    std::fs::write(&marker, b"").unwrap();
    watcher.expect_mask("IN_CREATE", &marker);
    watcher.signal(libc::SIGTERM);
    assert_eq!(watcher.finish().code(), Some(0));
    let masks: Vec<String> = watcher
        .events()
        .iter()
        .map(|e| maskname(e).to_string())
        .collect();
    assert_eq!(masks, ["IN_CREATE", "IN_CREATE"], "{:?}", watcher.lines);
}

#[test]
fn ready_with_other_events_reports_exactly_those_asked_for() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let mut watcher = ReadyWatcher::spawn(&["-e", "IN_CREATE|IN_READY", s(dir.path())]);
    let file = dir.path().join("f.txt");
    let mut handle = File::create(&file).unwrap();
    for _ in 0..10 {
        handle.write_all(b"chunk").unwrap();
    }
    drop(handle);
    let ready = watcher.expect_ready(&file);
    watcher.barrier(dir.path());
    let watcher = watcher.stop();
    let events = watcher.events();
    let of_file: Vec<&str> = events
        .iter()
        .filter(|e| pathname(e) == s(&file))
        .map(maskname)
        .collect();
    // No IN_MODIFY or IN_CLOSE_WRITE, which the watcher only received to find the ready event.
    assert_eq!(of_file, ["IN_CREATE", "IN_READY"], "{:?}", watcher.lines);
    assert!(
        events
            .iter()
            .all(|e| ["IN_CREATE", "IN_READY"].contains(&maskname(e))),
        "{:?}",
        watcher.lines
    );
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(ready["cookie"], 0);
}
