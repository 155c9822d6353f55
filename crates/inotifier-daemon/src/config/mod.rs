//! The daemon's configuration, whatever it was written in (a TOML file for the binary, the
//! Django settings for the app). Paths here are absolute: readers resolve relative ones.

pub mod file;
pub mod paths;

pub use file::{ConfigError, Problem, ProblemKind, ValidateProcessor, load, load_pid_file, parse};
pub use paths::{PathProblem, check_watch_path};

use std::path::{Path, PathBuf};
use std::time::Duration;

use inotifier_core::ready::ReadyOptions;
use inotifier_core::{Filters, Mask};
use inotifier_sinks::RetryPolicy;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file the configuration was read from, when there is one.
    pub source: Option<PathBuf>,
    pub daemon: DaemonSettings,
    pub watches: Vec<WatchConfig>,
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
    pub path: PathBuf,
    /// What the processor is sent; may include [`Mask::IN_READY`].
    pub events: Mask,
    pub processor: ProcessorConfig,
    pub recursive: bool,
    pub auto_add: bool,
    pub filters: Filters,
    pub ready: ReadyOptions,
    pub retry: RetryPolicy,
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
