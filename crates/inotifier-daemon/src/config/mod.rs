//! The daemon's configuration, whatever it was written in (a TOML file for the binary, the
//! Django settings for the app). Paths here are absolute: readers resolve relative ones.

use std::path::PathBuf;
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
