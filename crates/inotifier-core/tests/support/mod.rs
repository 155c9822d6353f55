//! A running engine with the events it has delivered so far, for tests.

#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use inotifier_core::{Batch, Engine, EngineOptions, Event, Mask, WatchId, WatchSpec};
use inotifier_test_support::MachineLock;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Watcher {
    pub engine: Option<Engine>,
    pub batches: Receiver<Batch>,
    pub seen: Vec<Event>,
    _lock: Option<MachineLock>,
}

impl Watcher {
    pub fn start() -> Watcher {
        Watcher::with_options(
            EngineOptions::default(),
            Some(inotifier_test_support::inotify_shared()),
        )
    }

    pub fn with_options(options: EngineOptions, lock: Option<MachineLock>) -> Watcher {
        let (engine, batches) = Engine::start(options).expect("engine starts");
        Watcher {
            engine: Some(engine),
            batches,
            seen: Vec::new(),
            _lock: lock,
        }
    }

    pub fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("running")
    }

    pub fn watch(&self, path: &Path, mask: Mask, recursive: bool) -> WatchId {
        self.engine()
            .add_watch(spec(path, mask, recursive))
            .expect("watch added")
    }

    /// Receives events until `done` holds for everything seen so far; false at the deadline.
    pub fn wait_for(&mut self, mut done: impl FnMut(&[Event]) -> bool) -> bool {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if done(&self.seen) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.batches.recv_timeout(left) {
                Ok(batch) => self.seen.extend(batch),
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => return done(&self.seen),
            }
        }
    }

    /// Waits for an event matching `matches` and returns it.
    pub fn expect(&mut self, what: &str, mut matches: impl FnMut(&Event) -> bool) -> Event {
        let found = self.wait_for(|seen| seen.iter().any(&mut matches));
        assert!(found, "no event {what}; seen:\n{}", self.dump());
        self.seen.iter().find(|e| matches(e)).cloned().unwrap()
    }

    /// Creates a marker file in `dir` and waits for its `IN_CREATE`: every event caused before
    /// it has been delivered by then (the kernel queue is ordered), so absences can be asserted.
    pub fn barrier(&mut self, dir: &Path) {
        let marker = dir.join(format!("barrier-{}", self.seen.len()));
        std::fs::write(&marker, b"").unwrap();
        self.expect("for the barrier file", |e| {
            e.pathname() == marker && e.mask.contains(Mask::IN_CREATE)
        });
    }

    pub fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|e| {
                format!(
                    "  {} {} {:?} src={:?}",
                    e.maskname(),
                    e.pathname().display(),
                    e.origin,
                    e.src_pathname
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn pathnames_with(&self, mask: Mask) -> Vec<PathBuf> {
        self.seen
            .iter()
            .filter(|e| e.mask.contains(mask))
            .map(|e| e.pathname())
            .collect()
    }

    pub fn stop(&mut self) {
        if let Some(engine) = self.engine.take() {
            // Keep receiving so a reader blocked on a full channel can finish.
            let drain = std::thread::scope(|scope| {
                let stopper = engine.stopper();
                scope.spawn(move || stopper.stop());
                let mut rest = Vec::new();
                while let Ok(batch) = self.batches.recv_timeout(DEADLINE) {
                    rest.extend(batch);
                }
                rest
            });
            self.seen.extend(drain);
            engine.stop();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn distinct(paths: impl IntoIterator<Item = PathBuf>) -> HashSet<PathBuf> {
    paths.into_iter().collect()
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inotifier-test")
        .tempdir()
        .unwrap()
}

/// The spec of a watch of these tests. With `INOTIFIER_TEST_BACKEND=poll` (a second pass of
/// `scripts/test.sh`), every watch also polls, every 20 ms: the same suite then shows that polls
/// add nothing to what inotify reports on a local filesystem (no duplicate, no loss).
pub fn spec(path: &Path, mask: Mask, recursive: bool) -> WatchSpec {
    let mut spec = WatchSpec::new(path, mask).recursive(recursive);
    if let Ok(name) = std::env::var("INOTIFIER_TEST_BACKEND") {
        spec.backend = inotifier_core::Backend::from_name(&name)
            .unwrap_or_else(|| panic!("INOTIFIER_TEST_BACKEND={name}: not a backend"));
        spec.poll_interval = Duration::from_millis(20);
    }
    spec
}
