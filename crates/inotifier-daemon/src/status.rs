//! The status file a running daemon keeps next to its pid file, for `inotifier status`.
//!
//! Rewritten (atomically: a new file renamed over the old) every second and at each change of
//! state, so a reader never sees half of it.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use inotifier_metrics::WatchCounters;

use crate::identity::ProcessIdentity;
use crate::stats::Snapshot;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: i32,
    /// `starting`, `running`, `reloading` or `stopping`.
    pub state: String,
    /// When the daemon started, in seconds since the Unix epoch.
    pub started: u64,
    pub config: Option<PathBuf>,
    /// Watches in the configuration.
    pub watches: usize,
    /// Directories and files the kernel watches for them.
    pub kernel_watches: usize,
    pub events_seen: u64,
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
    pub abandoned: u64,
    /// Processor calls (see [`Snapshot::batches`]); absent from an older daemon's file.
    #[serde(default)]
    pub batches: u64,
    /// Processors behind, catching up from the journal.
    #[serde(default)]
    pub behind: u64,
    /// Which process wrote this: `stop` and `status` check that the pid file's lock holder
    /// is it before calling it the daemon or signalling it.
    #[serde(default)]
    pub identity: Option<ProcessIdentity>,
    /// What makes the daemon degraded (see [`crate::health`]); its state is then `degraded`.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Each watch and its counters.
    #[serde(default)]
    pub watch_reports: Vec<WatchReport>,
    /// Where `/metrics` is served (`[metrics] listen`, with the port the kernel chose for 0).
    #[serde(default)]
    pub metrics: Option<String>,
    /// The journal's file, for `status --json` to read the backlog from.
    #[serde(default)]
    pub journal: Option<PathBuf>,
}

/// One watch of a running daemon, as the status file and `status --json` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReport {
    /// Its key in the journal (its `name`, else `PROCESSOR@PATH`): the metrics' `watch` label.
    pub key: String,
    pub path: PathBuf,
    pub processor: String,
    /// Where its events come from: `inotify` (polling and fanotify are to come).
    pub backend: String,
    pub counters: WatchCounters,
}

impl Status {
    pub fn set_counters(&mut self, counters: Snapshot) {
        self.events_seen = counters.seen;
        self.delivered = counters.delivered;
        self.failed = counters.failed;
        self.retried = counters.retried;
        self.abandoned = counters.abandoned;
        self.batches = counters.batches;
        self.behind = counters.behind;
    }
}

/// The status file that goes with a pid file.
pub fn status_path(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("status")
}

pub fn write(path: &Path, status: &Status) -> io::Result<()> {
    let mut text = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
    text.push(b'\n');
    match write_new(path, &text) {
        // On a full disk (the journal's, say, which is what the status must then report), the
        // old file's blocks are rewritten in place: a reader may catch it half-written, but it
        // says what is wrong.
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
            rewrite_in_place(path, &text).map_err(|_| error)
        }
        written => written,
    }
}

fn rewrite_in_place(path: &Path, text: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all_at(text, 0)?;
    file.set_len(text.len() as u64)
}

fn write_new(path: &Path, text: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension(format!("status.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)?;
    if let Err(error) = file.write_all(text) {
        drop(file);
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    drop(file);
    std::fs::rename(&temporary, path)
}

pub fn read(path: &Path) -> io::Result<Status> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(io::Error::other)
}
