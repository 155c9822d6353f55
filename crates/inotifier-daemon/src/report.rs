//! `inotifier status --json` (and `manage.py inotifier_status --json`): the status of a daemon
//! as one JSON object, in a format kept stable (documented in docs/metrics.md; `format` says
//! which version). The daemon's status file gives its counters per watch; the journal's
//! backlog is read here, on a read-only connection, as the metrics read it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use inotifier_journal::{Backlog, BacklogReader};
use inotifier_metrics::EventCounts;
use serde::Serialize;

use crate::control::StatusReport;

/// The version of the document's format; fields are only ever added within one version.
pub const FORMAT: u32 = 1;

#[derive(Debug, Serialize)]
pub struct StatusDocument {
    pub format: u32,
    pub running: bool,
    pub pid_file: PathBuf,
    /// The pid a stale pid file names (not running), else the daemon's.
    pub pid: Option<i32>,
    /// `starting`, `running`, `degraded`, `reloading` or `stopping`; null when not running.
    pub state: Option<String>,
    pub problems: Vec<String>,
    pub uptime_seconds: Option<f64>,
    pub config: Option<PathBuf>,
    pub journal: Option<PathBuf>,
    /// Where `/metrics` is served, when it is.
    pub metrics: Option<String>,
    pub kernel_watches: Option<usize>,
    pub kernel_watches_limit: Option<u64>,
    pub watches: Vec<WatchDocument>,
    /// Journal keys that no watch of the running configuration has (watches removed or
    /// renamed) and that are still owed events.
    pub other_journal_keys: Vec<BacklogDocument>,
    pub totals: Totals,
}

#[derive(Debug, Serialize)]
pub struct WatchDocument {
    pub key: String,
    pub path: PathBuf,
    pub processor: String,
    pub backend: String,
    pub events: EventCounts,
    pub delivered: u64,
    pub retried: u64,
    /// Given up without a journal to keep them.
    pub failed: u64,
    /// Given up and dead-lettered in the journal, since the daemon started.
    pub dead_lettered: u64,
    pub overflows: u64,
    pub rescans: u64,
    /// What the journal holds for it now (null without a journal).
    pub pending: Option<u64>,
    pub dead: Option<u64>,
    pub oldest_pending_age_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct BacklogDocument {
    pub key: String,
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_age_seconds: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub events_seen: u64,
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
    pub abandoned: u64,
    pub batches: u64,
    pub behind: u64,
    pub pending: Option<u64>,
    pub dead: Option<u64>,
    pub oldest_pending_age_seconds: Option<f64>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as i64)
}

fn age(backlog: &Backlog, now: i64) -> Option<f64> {
    backlog.oldest_pending_age(now).map(|age| age.as_secs_f64())
}

/// The document of `report`, the status of the daemon of `pid_file`. A journal that cannot be
/// read leaves its figures null.
pub fn document(pid_file: &Path, report: &StatusReport) -> StatusDocument {
    let mut document = StatusDocument {
        format: FORMAT,
        running: false,
        pid_file: pid_file.to_path_buf(),
        pid: None,
        state: None,
        problems: Vec::new(),
        uptime_seconds: None,
        config: None,
        journal: None,
        metrics: None,
        kernel_watches: None,
        kernel_watches_limit: crate::metrics::watch_limit(),
        watches: Vec::new(),
        other_journal_keys: Vec::new(),
        totals: Totals::default(),
    };
    let (pid, status, uptime) = match report {
        StatusReport::NotRunning { stale_pid, .. } => {
            document.pid = *stale_pid;
            return document;
        }
        StatusReport::Running {
            pid,
            status,
            uptime,
        } => (pid, status, uptime),
    };
    document.running = true;
    document.pid = Some(*pid);
    document.uptime_seconds = uptime.map(|uptime| uptime.as_secs_f64());
    let Some(status) = status else {
        return document;
    };
    document.state = Some(status.state.clone());
    document.problems = status.problems.clone();
    document.config = status.config.clone();
    document.journal = status.journal.clone();
    document.metrics = status.metrics.clone();
    document.kernel_watches = Some(status.kernel_watches);
    document.totals = Totals {
        events_seen: status.events_seen,
        delivered: status.delivered,
        failed: status.failed,
        retried: status.retried,
        abandoned: status.abandoned,
        batches: status.batches,
        behind: status.behind,
        ..Totals::default()
    };
    let backlog = status
        .journal
        .as_deref()
        .and_then(|journal| BacklogReader::open(journal).and_then(|r| r.read()).ok());
    let now = now_ns();
    let owed = |key: &str| backlog.as_ref()?.iter().find(|row| row.key == key);
    for watch in &status.watch_reports {
        let row = owed(&watch.key);
        let counters = watch.counters;
        document.watches.push(WatchDocument {
            key: watch.key.clone(),
            path: watch.path.clone(),
            processor: watch.processor.clone(),
            backend: watch.backend.clone(),
            events: counters.events,
            delivered: counters.delivered,
            retried: counters.retried,
            failed: counters.failed,
            dead_lettered: counters.dead,
            overflows: counters.overflows,
            rescans: counters.rescans,
            pending: backlog.as_ref().map(|_| row.map_or(0, |row| row.pending)),
            dead: backlog.as_ref().map(|_| row.map_or(0, |row| row.dead)),
            oldest_pending_age_seconds: row.and_then(|row| age(row, now)),
        });
    }
    if let Some(rows) = &backlog {
        for row in rows {
            let watched = status
                .watch_reports
                .iter()
                .any(|watch| watch.key == row.key);
            if !watched && (row.pending > 0 || row.dead > 0) {
                document.other_journal_keys.push(BacklogDocument {
                    key: row.key.clone(),
                    pending: row.pending,
                    dead: row.dead,
                    oldest_pending_age_seconds: age(row, now),
                });
            }
        }
        document.totals.pending = Some(rows.iter().map(|row| row.pending).sum());
        document.totals.dead = Some(rows.iter().map(|row| row.dead).sum());
        document.totals.oldest_pending_age_seconds = rows
            .iter()
            .filter_map(|row| age(row, now))
            .fold(None, |oldest: Option<f64>, age| {
                Some(oldest.map_or(age, |o| o.max(age)))
            });
    }
    document
}
