//! The daemon's configuration, whatever it was written in (a TOML file for the binary, the
//! Django settings for the app). Paths here are absolute: readers resolve relative ones.

pub mod file;
pub mod paths;

pub use file::{
    ConfigError, Problem, ProblemKind, ValidateProcessor, load, load_journal_settings,
    load_pid_file, load_unchecked, parse,
};
pub use paths::{PathProblem, check_watch_path};

use std::path::{Path, PathBuf};
use std::time::Duration;

use inotifier_core::ready::ReadyOptions;
use inotifier_core::{Backend, Filters, Mask, WatchSpec};
use inotifier_sinks::RetryPolicy;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file the configuration was read from, when there is one.
    pub source: Option<PathBuf>,
    pub daemon: DaemonSettings,
    pub journal: JournalSettings,
    pub metrics: MetricsSettings,
    pub watches: Vec<WatchConfig>,
}

/// The Prometheus endpoint (`[metrics]`): off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics` is served, such as `127.0.0.1:9464`; port 0 lets the kernel choose
    /// (the status file says which).
    pub listen: Option<std::net::SocketAddr>,
}

/// The durable journal: at-least-once delivery across restarts and catch-up after downtime.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalSettings {
    /// The SQLite file; `None` runs without a journal (events of a run that ends before they
    /// are delivered are lost, and changes made while the daemon is down are not reported).
    pub path: Option<PathBuf>,
    /// Acknowledged events kept for `inotifier journal replay`.
    pub retain: usize,
    /// On start, report what changed on disk while the daemon was down.
    pub catch_up: bool,
    /// What the first start of a watch (no snapshot of it yet) reports.
    pub first_start: FirstStart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstStart {
    /// Records the snapshot, reports nothing: what exists was there before the watch.
    Silent,
    /// Reports every existing entry as created.
    Report,
}

impl JournalSettings {
    /// The journal next to the pid file (`inotifier.journal` beside `inotifier.pid`), catch-up
    /// on, the first start silent, the newest 100,000 acknowledged events kept.
    pub fn defaults(pid_file: &Path) -> JournalSettings {
        JournalSettings {
            path: Some(pid_file.with_extension("journal")),
            retain: 100_000,
            catch_up: true,
            first_start: FirstStart::Silent,
        }
    }

    /// No journal at all.
    pub fn disabled() -> JournalSettings {
        JournalSettings {
            path: None,
            ..JournalSettings::defaults(Path::new("/"))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    pub pid_file: PathBuf,
    /// Where a daemonized process sends its stdout and stderr; `None` is /dev/null.
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    /// A `tracing` level: error, warn, info, debug or trace.
    pub log_level: tracing::Level,
    /// How long a stopping daemon keeps delivering what it has already read.
    pub drain_timeout: Duration,
    /// Router threads: events of different files are processed concurrently by this many.
    pub workers: usize,
    /// Events waiting per router thread before reading stops (backpressure).
    pub queue_capacity: usize,
}

impl DaemonSettings {
    /// The settings of a config that sets none, for a config in `config_dir`: the pid file
    /// `inotifier.pid` there, output to /dev/null, level info, 10 s to drain, two workers per
    /// CPU (at least two), 1024 events queued per worker.
    pub fn defaults(config_dir: &Path) -> DaemonSettings {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        DaemonSettings {
            pid_file: config_dir.join("inotifier.pid"),
            stdout: None,
            stderr: None,
            log_level: tracing::Level::INFO,
            drain_timeout: Duration::from_secs(10),
            workers: (2 * cpus).max(2),
            queue_capacity: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Names the watch's delivery cursor and snapshot in the journal; see [`WatchConfig::key`].
    pub name: Option<String>,
    pub path: PathBuf,
    /// What the processor is sent; may include [`Mask::IN_READY`].
    pub events: Mask,
    pub processor: ProcessorConfig,
    pub recursive: bool,
    pub auto_add: bool,
    pub filters: Filters,
    pub backend: Backend,
    pub poll_interval: Duration,
    pub ready: ReadyOptions,
    pub retry: RetryPolicy,
}

impl WatchConfig {
    /// What the engine is given for this watch.
    pub fn spec(&self) -> WatchSpec {
        WatchSpec {
            path: self.path.clone(),
            mask: self.events,
            recursive: self.recursive,
            auto_add: self.auto_add,
            filters: self.filters.clone(),
            backend: self.backend,
            poll_interval: self.poll_interval,
        }
    }

    /// What the journal knows this watch by: its `name`, else `PROCESSOR@PATH`. Stable across
    /// restarts, so that what was pending before is redelivered to the same processor; a
    /// config with two watches of one path and processor must name them.
    pub fn key(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("{}@{}", self.processor.kind, self.path.display()),
        }
    }
}

/// Which processor handles a watch's events, and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// `log`, `jsonl`, `exec`, `webhook`, or a name a host application (the Django app)
    /// resolves itself, such as a dotted Python path.
    pub kind: String,
    /// The processor's own options, checked by the processor when it is built.
    pub options: serde_json::Map<String, serde_json::Value>,
}
