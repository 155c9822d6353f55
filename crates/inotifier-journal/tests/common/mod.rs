//! Helpers shared by the journal's integration tests.
#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotifier_core::{Event, Mask, Origin};
use inotifier_journal::{Journal, JournalOptions, ProcessorId};

pub fn options(path: &Path) -> JournalOptions {
    JournalOptions {
        path: path.to_path_buf(),
        retain: 100_000,
        commit_interval: Duration::from_millis(5),
    }
}

pub fn open(path: &Path) -> Journal {
    Journal::open(&options(path)).expect("open journal")
}

/// An event as the engine would hand it over (no watches: the journal does not keep them).
pub fn event(id: u64, name: &[u8]) -> Event {
    Event {
        id,
        mask: Mask(0x8),
        cookie: 0,
        wd: 1,
        path: Arc::from(Path::new("/srv/in")),
        name: OsString::from_vec(name.to_vec()),
        src_pathname: None,
        origin: Origin::Kernel,
        time_ns: 1_764_000_000_000_000_000 + id as i64,
        watches: Arc::from([]),
    }
}

pub fn events(ids: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    ids.map(|id| event(id, format!("f{id}").as_bytes()))
        .collect()
}

pub fn append_to(journal: &Journal, events: &[Event], processors: &[ProcessorId]) {
    let batch: Vec<(&Event, &[ProcessorId])> = events.iter().map(|e| (e, processors)).collect();
    journal.append(&batch).expect("append");
}

pub fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id).collect()
}

/// Polls `condition` until it holds, failing the test after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A tmpfs mounted for one test, unmounted when dropped, even when the test panics.
pub struct Tmpfs {
    pub dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when not root, which mounting needs: `test` is then reported as skipped.
    pub fn mount(test: &str, options: &str) -> Option<Tmpfs> {
        if !inotifier_test_support::privileges::root_available(test, "mounts a tmpfs") {
            return None;
        }
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).expect("mkdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs -o {options} failed");
        Some(Tmpfs {
            dir,
            _parent: parent,
        })
    }

    pub fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {options} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a test panicked with a file open): detach it rather than leave it.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
