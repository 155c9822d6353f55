//! The ready event on real inotify and real files: the engine delivers to a watch asking for
//! `IN_READY` what the detector needs, and a `ReadyStage` in front of the consumer turns it into
//! ready events, as the daemon and `inotifier watch` run it.
//!
//! Absences ("no ready event for the `.part` file", "only one") are asserted after a barrier:
//! the ready event of a marker file closed after everything else. The kernel queue is ordered
//! and a watch's timers run out in the order they were armed (one settle time per watch), so
//! every ready event caused before the marker's has been delivered by then.

mod support;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use inotifier_core::ready::{READY_INPUTS, ReadyOptions, ReadyStage};
use inotifier_core::{EngineOptions, Event, Glob, Mask, Origin, WatchId};
use inotifier_test_support::workloads::{
    files_in_new_directories, write_one_descriptor, write_reopening,
};
use inotifier_test_support::{Sysctl, inotify_exclusive};
use support::{DEADLINE, Watcher, temp_dir};

/// An event as the stage delivered it, and when.
#[derive(Clone)]
struct Delivered {
    at: Instant,
    event: Event,
}

/// An engine with a [`ReadyStage`] between it and the test, pumped by the test thread: batches
/// are processed as they come, and the stage is polled when its next timer runs out.
struct Pipeline {
    watcher: Watcher,
    stage: ReadyStage,
    delivered: Vec<Delivered>,
    barriers: usize,
}

impl Pipeline {
    fn start() -> Pipeline {
        Pipeline::on(Watcher::start())
    }

    fn on(watcher: Watcher) -> Pipeline {
        Pipeline {
            watcher,
            stage: ReadyStage::new(),
            delivered: Vec::new(),
            barriers: 0,
        }
    }

    /// Adds a watch and registers it with the stage before any of its events is pumped.
    fn watch(
        &mut self,
        path: &Path,
        mask: Mask,
        recursive: bool,
        ready: Option<ReadyOptions>,
    ) -> WatchId {
        let id = self
            .watcher
            .engine()
            .add_watch(support::spec(path, mask, recursive))
            .expect("watch added");
        self.stage.set_watch(id, mask, ready);
        id
    }

    /// Pumps until `done` holds for everything delivered; false after `timeout`.
    fn pump_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Delivered]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.delivered) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let wake = self
                .stage
                .next_deadline()
                .map_or(deadline, |timer| timer.min(deadline));
            let events = match self
                .watcher
                .batches
                .recv_timeout(wake.saturating_duration_since(now))
            {
                Ok(batch) => self.stage.process(batch, Instant::now()),
                Err(RecvTimeoutError::Timeout) => self.stage.poll(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => return done(&self.delivered),
            };
            let at = Instant::now();
            self.delivered
                .extend(events.into_iter().map(|event| Delivered { at, event }));
        }
    }

    /// Pumps until the stage has a timer armed.
    fn pump_until_armed(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while self.stage.next_deadline().is_none() {
            assert!(
                Instant::now() < deadline,
                "no timer armed within {DEADLINE:?}"
            );
            self.pump_until(Duration::from_millis(5), |_| false);
        }
    }

    fn expect(&mut self, what: &str, mut matches: impl FnMut(&Event) -> bool) -> Delivered {
        let found = self.pump_until(DEADLINE, |seen| seen.iter().any(|d| matches(&d.event)));
        assert!(found, "no event {what}; delivered:\n{}", self.dump());
        self.delivered
            .iter()
            .find(|d| matches(&d.event))
            .cloned()
            .unwrap()
    }

    fn expect_ready(&mut self, pathname: &Path) -> Delivered {
        self.expect(&format!("IN_READY {}", pathname.display()), |e| {
            e.mask == Mask::IN_READY && e.pathname() == pathname
        })
    }

    /// Closes a marker file in `dir` and waits for its ready event (see the module docs).
    fn barrier(&mut self, dir: &Path) {
        self.barriers += 1;
        let marker = dir.join(format!("barrier-{}", self.barriers));
        std::fs::write(&marker, b"").unwrap();
        self.expect_ready(&marker);
    }

    fn readies(&self, pathname: &Path) -> Vec<&Delivered> {
        self.delivered
            .iter()
            .filter(|d| d.event.mask == Mask::IN_READY && d.event.pathname() == pathname)
            .collect()
    }

    fn ready_pathnames(&self) -> Vec<PathBuf> {
        self.delivered
            .iter()
            .filter(|d| d.event.mask == Mask::IN_READY)
            .map(|d| d.event.pathname())
            .collect()
    }

    fn assert_one_ready(&self, pathname: &Path) -> Delivered {
        let readies = self.readies(pathname);
        assert_eq!(
            readies.len(),
            1,
            "ready events for {}; delivered:\n{}",
            pathname.display(),
            self.dump()
        );
        readies[0].clone()
    }

    fn dump(&self) -> String {
        self.delivered
            .iter()
            .map(|d| {
                format!(
                    "  {} {} {:?} src={:?} watches={:?}",
                    d.event.maskname(),
                    d.event.pathname().display(),
                    d.event.origin,
                    d.event.src_pathname,
                    d.event.watches
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn settle(ms: u64) -> Option<ReadyOptions> {
    Some(ReadyOptions {
        settle: Duration::from_millis(ms),
        ..ReadyOptions::default()
    })
}

// ----- the engine delivers what the detector needs -----------------------------------------------

/// The kernel mask of the watch on `dir`, from `/proc/self/fdinfo` (found by the directory's
/// inode, which no other test's watch has).
fn kernel_mask_of(dir: &Path) -> Option<u32> {
    let ino = format!("ino:{:x} ", std::fs::metadata(dir).unwrap().ino());
    for fd in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let Ok(info) = std::fs::read_to_string(fd.path()) else {
            continue;
        };
        for line in info.lines().filter(|l| l.starts_with("inotify wd:")) {
            if line.contains(&ino) {
                let mask = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("mask:"))?;
                return u32::from_str_radix(mask, 16).ok();
            }
        }
    }
    None
}

#[test]
fn a_ready_watch_is_delivered_the_detectors_inputs_and_the_kernel_never_sees_our_bit() {
    let dir = temp_dir();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::IN_READY, false);
    let mask = kernel_mask_of(dir.path()).expect("the watch is in fdinfo");
    assert_eq!(mask & Mask::IN_READY.bits(), 0, "kernel mask {mask:#x}");
    assert_eq!(
        mask & READY_INPUTS.bits(),
        READY_INPUTS.bits(),
        "kernel mask {mask:#x}"
    );

    // Without a stage, the consumer sees the inputs themselves.
    let file = dir.path().join("a");
    std::fs::write(&file, b"x").unwrap();
    for input in [Mask::IN_CREATE, Mask::IN_MODIFY, Mask::IN_CLOSE_WRITE] {
        watcher.expect(&format!("{input} delivered to the ready watch"), |e| {
            e.pathname() == file && e.mask == input
        });
    }
    // What neither the mask nor the detector needs is not delivered.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&file).unwrap();
    watcher.expect("the deletion", |e| {
        e.pathname() == file && e.mask == Mask::IN_DELETE
    });
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.mask.contains(Mask::IN_ATTRIB)),
        "{}",
        watcher.dump()
    );
}

// ----- chunks ----------------------------------------------------------------------------------

#[test]
fn a_file_written_in_100_reopened_chunks_is_ready_once_after_the_last() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    // Each reopen closes the file, so a pause between chunks longer than the settle time would
    // rightly make it ready in the middle. The chunks are 10 ms apart; 500 ms leaves room for a
    // loaded machine, and the writer checks that its pauses stayed below it.
    let settle_time = Duration::from_millis(500);
    pipeline.watch(dir.path(), Mask::IN_READY, false, settle(500));
    let file = dir.path().join("upload.bin");
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_reopening(&file, 100, Duration::from_millis(10)));
        // Pumps in real time while the writer works, so an early ready event would show.
        pipeline.pump_until(DEADLINE, |_| writer.is_finished());
        writer.join().unwrap()
    });
    assert!(
        written.longest_pause < settle_time,
        "the machine stalled the writer for {:?}: no verdict possible",
        written.longest_pause
    );
    let ready = pipeline.expect_ready(&file);
    assert!(
        ready.at >= written.before_last_close + settle_time,
        "ready {:?} after the last close, settle {settle_time:?}",
        ready
            .at
            .saturating_duration_since(written.before_last_close)
    );
    pipeline.barrier(dir.path());
    pipeline.assert_one_ready(&file);
    assert_eq!(std::fs::read(&file).unwrap().len(), 100 * 10);
}

#[test]
fn a_file_written_in_100_chunks_through_one_descriptor_is_ready_once() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_READY, false, None);
    let file = dir.path().join("stream.log");
    let before_close = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_one_descriptor(&file, 100, Duration::from_millis(10)).0);
        pipeline.pump_until(DEADLINE, |_| writer.is_finished());
        writer.join().unwrap()
    });
    let ready = pipeline.expect_ready(&file);
    assert!(ready.at >= before_close + Duration::from_millis(200));
    pipeline.barrier(dir.path());
    pipeline.assert_one_ready(&file);
}

#[test]
fn a_closed_file_reopened_for_writing_is_not_ready_while_it_is_written() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    let settle_time = Duration::from_millis(400);
    pipeline.watch(dir.path(), Mask::IN_READY, false, settle(400));
    let file = dir.path().join("resumed.bin");
    std::fs::write(&file, b"first part\n").unwrap();
    pipeline.pump_until_armed();
    let armed_until = pipeline.stage.next_deadline().unwrap();
    // Reopened at once and written for twice the settle time through one descriptor: the
    // writes disarm the first close's timer, and only the final close counts.
    let (first_write, before_close) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut handle = File::options().append(true).open(&file).unwrap();
            handle.write_all(b"resumed\n").unwrap();
            let first_write = Instant::now();
            for _ in 0..40 {
                std::thread::sleep(Duration::from_millis(20));
                handle.write_all(b"more\n").unwrap();
            }
            let before_close = Instant::now();
            drop(handle);
            (first_write, before_close)
        });
        pipeline.pump_until(DEADLINE, |_| writer.is_finished());
        writer.join().unwrap()
    });
    assert!(
        first_write + Duration::from_millis(300) < armed_until,
        "the machine stalled the writer: no verdict possible"
    );
    let ready = pipeline.expect_ready(&file);
    assert!(
        ready.at >= before_close + settle_time,
        "ready {:?} before the final close",
        before_close.saturating_duration_since(ready.at)
    );
    pipeline.barrier(dir.path());
    pipeline.assert_one_ready(&file);
}

// ----- renamed into place ------------------------------------------------------------------------

#[test]
fn temporary_files_renamed_into_place_are_ready_at_once_under_their_final_name() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_READY, false, None);
    let cases = [
        ("report.csv.part", "report.csv"),
        ("movie.mkv.crdownload", "movie.mkv"),
        (".notes.txt.swp", "notes.txt"),
        ("data.json.tmp", "data.json"),
    ];
    for (temporary, final_name) in cases {
        let temporary = dir.path().join(temporary);
        let final_path = dir.path().join(final_name);
        std::fs::write(&temporary, b"complete content").unwrap();
        std::fs::rename(&temporary, &final_path).unwrap();
        let ready = pipeline.expect_ready(&final_path);
        assert_eq!(
            ready.event.src_pathname.as_deref(),
            Some(temporary.as_path())
        );
        assert_eq!(ready.event.origin, Origin::Kernel);
    }
    pipeline.barrier(dir.path());
    for (temporary, final_name) in cases {
        pipeline.assert_one_ready(&dir.path().join(final_name));
        assert!(
            pipeline.readies(&dir.path().join(temporary)).is_empty(),
            "a temporary file got a ready event:\n{}",
            pipeline.dump()
        );
    }
    // Only the files and the barrier.
    assert_eq!(pipeline.ready_pathnames().len(), cases.len() + 1);
}

#[test]
fn custom_temp_patterns_replace_the_defaults() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    let options = ReadyOptions {
        temp_patterns: vec![Glob::new("*.upload").unwrap(), Glob::new("~*").unwrap()],
        ..ReadyOptions::default()
    };
    pipeline.watch(dir.path(), Mask::IN_READY, false, Some(options));
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
    assert_eq!(
        pipeline.expect_ready(&photo).event.src_pathname,
        Some(uploading.clone())
    );
    assert_eq!(
        pipeline.expect_ready(&doc).event.src_pathname,
        Some(locked.clone())
    );
    // `.part` is not temporary with these patterns: it settles like any file.
    pipeline.expect_ready(&part);
    pipeline.barrier(dir.path());
    for path in [&photo, &doc, &part] {
        pipeline.assert_one_ready(path);
    }
    assert!(pipeline.readies(&uploading).is_empty());
    assert!(pipeline.readies(&locked).is_empty());
}

// ----- cp --------------------------------------------------------------------------------------

#[test]
fn a_file_copied_with_cp_is_ready_once() {
    let dir = temp_dir();
    let outside = temp_dir();
    let source = outside.path().join("source.bin");
    // Several megabytes: cp writes it in many pieces.
    let content: Vec<u8> = (0..4 * 1024 * 1024).map(|n| (n % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_READY, false, None);
    let copy = dir.path().join("copy.bin");
    let mut cp = Command::new("cp")
        .arg(&source)
        .arg(&copy)
        .spawn()
        .expect("cp runs");
    // Waited for by its PID, like every process a test starts.
    let status = cp.wait().unwrap();
    assert!(status.success(), "cp failed: {status}");
    let ready = pipeline.expect_ready(&copy);
    assert_eq!(ready.event.origin, Origin::Kernel);
    assert_eq!(std::fs::read(&copy).unwrap(), content);
    pipeline.barrier(dir.path());
    pipeline.assert_one_ready(&copy);
}

// ----- found by a scan ---------------------------------------------------------------------------

#[test]
fn files_of_a_directory_moved_into_a_recursive_watch_are_ready_once_each() {
    let dir = temp_dir();
    let outside = temp_dir();
    let staged = outside.path().join("batch");
    std::fs::create_dir_all(staged.join("nested")).unwrap();
    let names = ["a.csv", "b.csv", "nested/c.csv"];
    for name in names {
        std::fs::write(staged.join(name), name.as_bytes()).unwrap();
    }
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_READY, true, None);
    let moved_in = dir.path().join("batch");
    std::fs::rename(&staged, &moved_in).unwrap();
    for name in names {
        let ready = pipeline.expect_ready(&moved_in.join(name));
        // The kernel never saw these files written: only the scan of the new directory did.
        assert_eq!(ready.event.origin, Origin::Scan);
    }
    pipeline.barrier(dir.path());
    for name in names {
        pipeline.assert_one_ready(&moved_in.join(name));
    }
    assert!(
        pipeline.readies(&moved_in).is_empty()
            && pipeline.readies(&moved_in.join("nested")).is_empty(),
        "a directory is never ready"
    );
}

#[test]
fn files_created_in_a_new_directory_before_its_watch_lands_are_ready_once_each() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_READY, true, None);
    let files = files_in_new_directories(dir.path(), 20);
    for file in &files {
        pipeline.expect_ready(file);
    }
    pipeline.barrier(dir.path());
    for file in &files {
        pipeline.assert_one_ready(file);
    }
}

#[test]
fn files_found_by_an_overflow_rescan_are_ready_once_each() {
    if !inotifier_test_support::privileges::root_available(
        "files_found_by_an_overflow_rescan_are_ready_once_each",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let dir = temp_dir();
    let lock = inotify_exclusive();
    let options = EngineOptions {
        read_buffer_size: 4096,
        channel_batches: 1,
        ..EngineOptions::default()
    };
    let watcher = {
        // Fixed when the instance is created; the guard restores the sysctl right after.
        let _small_queue = Sysctl::set("max_queued_events", 16, &lock);
        Watcher::with_options(options, None)
    };
    let mut pipeline = Pipeline::on(watcher);
    // The rescan may report the first files modified once more (the engine prefers a spurious
    // report to a lost one): a settle time well above the rescan's duration keeps that within
    // one completed write.
    pipeline.watch(dir.path(), Mask::IN_READY, true, settle(1000));
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // Nobody pumps yet: the reader blocks on the full channel and the 16-event queue overflows.
    let files: Vec<PathBuf> = (0..300)
        .map(|n| {
            let parent = if n % 2 == 0 { "" } else { "sub" };
            dir.path().join(parent).join(format!("file{n:03}"))
        })
        .collect();
    for file in &files {
        std::fs::write(file, b"payload").unwrap();
    }
    let overflowed = pipeline.expect("the overflow", |e| e.mask == Mask::IN_Q_OVERFLOW);
    assert_eq!(overflowed.event.wd, -1);
    for file in &files {
        pipeline.expect_ready(file);
    }
    let rescanned = files
        .iter()
        .filter(|f| {
            pipeline
                .readies(f)
                .iter()
                .any(|d| d.event.origin == Origin::Rescan)
        })
        .count();
    assert!(rescanned > 0, "some files were found by the rescan only");
    pipeline.barrier(dir.path());
    for file in &files {
        pipeline.assert_one_ready(file);
    }
}

// ----- the settle time -------------------------------------------------------------------------

#[test]
fn the_settle_time_is_honoured_and_configurable() {
    let fast_dir = temp_dir();
    let slow_dir = temp_dir();
    let mut pipeline = Pipeline::start();
    pipeline.watch(fast_dir.path(), Mask::IN_READY, false, settle(100));
    pipeline.watch(slow_dir.path(), Mask::IN_READY, false, settle(700));
    let fast = fast_dir.path().join("fast");
    let slow = slow_dir.path().join("slow");
    let mut fast_file = File::create(&fast).unwrap();
    let mut slow_file = File::create(&slow).unwrap();
    fast_file.write_all(b"fast").unwrap();
    slow_file.write_all(b"slow").unwrap();
    let before_slow_close = Instant::now();
    drop(slow_file);
    let before_fast_close = Instant::now();
    drop(fast_file);
    let fast_ready = pipeline.expect_ready(&fast);
    let slow_ready = pipeline.expect_ready(&slow);
    assert!(
        fast_ready.at >= before_fast_close + Duration::from_millis(100),
        "fast ready after {:?}",
        fast_ready.at - before_fast_close
    );
    assert!(
        slow_ready.at >= before_slow_close + Duration::from_millis(700),
        "slow ready after {:?}",
        slow_ready.at - before_slow_close
    );
    // Closed first, ready last: each watch keeps its own settle time.
    assert!(fast_ready.at < slow_ready.at);
}

#[test]
fn the_default_settle_time_is_200_ms() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_READY, false, None);
    let file = dir.path().join("f");
    let mut handle = File::create(&file).unwrap();
    handle.write_all(b"x").unwrap();
    let before_close = Instant::now();
    drop(handle);
    let ready = pipeline.expect_ready(&file);
    assert!(ready.at >= before_close + Duration::from_millis(200));
}

#[test]
fn a_file_written_again_within_the_settle_time_is_ready_once() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    // Long enough that the second write surely comes within it; checked below.
    let settle_time = Duration::from_secs(2);
    pipeline.watch(dir.path(), Mask::IN_READY, false, settle(2000));
    let file = dir.path().join("twice");
    std::fs::write(&file, b"first").unwrap();
    let after_first_close = Instant::now();
    // The second write comes once the stage has seen the first close, so it re-arms a timer.
    pipeline.pump_until_armed();
    let mut again = File::options().append(true).open(&file).unwrap();
    again.write_all(b" and second").unwrap();
    let before_second_close = Instant::now();
    drop(again);
    assert!(
        before_second_close - after_first_close < settle_time,
        "the machine stalled for longer than the settle time: no verdict possible"
    );
    let ready = pipeline.expect_ready(&file);
    assert!(ready.at >= before_second_close + settle_time);
    pipeline.barrier(dir.path());
    pipeline.assert_one_ready(&file);
}

#[test]
fn a_file_deleted_before_it_settles_is_never_ready() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_READY, false, settle(500));
    let file = dir.path().join("short-lived");
    std::fs::write(&file, b"x").unwrap();
    std::fs::remove_file(&file).unwrap();
    pipeline.barrier(dir.path());
    assert!(pipeline.readies(&file).is_empty(), "{}", pipeline.dump());
}

// ----- watches without IN_READY ------------------------------------------------------------------

#[test]
fn a_watch_without_ready_gets_no_ready_events_and_nothing_it_did_not_ask_for() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    // Two watches on one directory: the engine delivers the detector's inputs for the first,
    // and the second must not see them.
    let ready_watch = pipeline.watch(dir.path(), Mask::IN_READY, false, None);
    let create_watch = pipeline.watch(dir.path(), Mask::IN_CREATE, false, None);
    let file = dir.path().join("f.txt");
    let mut handle = File::create(&file).unwrap();
    for _ in 0..10 {
        handle.write_all(b"chunk").unwrap();
    }
    drop(handle);
    pipeline.expect_ready(&file);
    pipeline.barrier(dir.path());
    for delivered in &pipeline.delivered {
        let event = &delivered.event;
        if event.mask == Mask::IN_READY {
            assert_eq!(&*event.watches, &[ready_watch], "{}", pipeline.dump());
        } else {
            assert_eq!(event.mask, Mask::IN_CREATE, "{}", pipeline.dump());
            assert_eq!(&*event.watches, &[create_watch], "{}", pipeline.dump());
        }
    }
    assert!(
        pipeline
            .delivered
            .iter()
            .any(|d| d.event.mask == Mask::IN_CREATE && d.event.pathname() == file)
    );
}

#[test]
fn without_a_ready_watch_the_stage_passes_batches_untouched() {
    let dir = temp_dir();
    let mut pipeline = Pipeline::start();
    pipeline.watch(dir.path(), Mask::IN_CREATE, false, None);
    assert!(!pipeline.stage.is_active());
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, b"x").unwrap();
    pipeline.expect("the marker's creation", |e| e.pathname() == marker);
    let masks: Vec<Mask> = pipeline.delivered.iter().map(|d| d.event.mask).collect();
    assert_eq!(masks, [Mask::IN_CREATE, Mask::IN_CREATE]);
    assert!(pipeline.delivered.iter().all(|d| d.event.id > 0));
}
