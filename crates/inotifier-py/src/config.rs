//! The daemon's [`Config`] from the Django settings, as the Python side normalises them
//! (`inotifier.settings.daemon_config`) and hands them over as one JSON document.
//!
//! Every value here was checked by the system checks already; what is checked again is what
//! only Rust can say (glob syntax), so that a config that reaches the daemon is always valid.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use inotifier_core::ready::ReadyOptions;
use inotifier_core::{Backend, DEFAULT_POLL_INTERVAL, Filters, Glob, Mask};
use inotifier_daemon::{
    Config, DaemonSettings, FirstStart, JournalSettings, MetricsSettings, ProcessorConfig,
    WatchConfig,
};
use inotifier_sinks::RetryPolicy;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid daemon configuration document: {0}")]
    Document(#[from] serde_json::Error),
    #[error("watch {index} ({path}): {message}")]
    Watch {
        index: usize,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Daemon(String),
}

/// The document `inotifier.settings.daemon_config()` writes; durations in seconds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    pid_file: PathBuf,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
    log_level: String,
    drain_timeout: f64,
    workers: Option<usize>,
    queue_capacity: Option<usize>,
    /// Where relative paths in native processors' options start (the Django project's
    /// directory); the daemon itself has no config file to take it from.
    base_dir: PathBuf,
    /// Variables native processors read instead of the daemon's environment (the project's
    /// `settings.CELERY_BROKER_URL`): see `inotifier_sinks::environment`.
    #[serde(default)]
    environment: BTreeMap<String, String>,
    /// `INOTIFIER_JOURNAL`, normalised; absent: the defaults, next to the pid file.
    #[serde(default)]
    journal: Option<JournalDocument>,
    /// `INOTIFIER_METRICS`; absent: no metrics endpoint.
    #[serde(default)]
    metrics: Option<MetricsDocument>,
    watches: Vec<WatchDocument>,
}

/// `path` absolute, or None when the journal is disabled.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalDocument {
    path: Option<PathBuf>,
    retain: usize,
    catch_up: bool,
    first_start: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsDocument {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchDocument {
    #[serde(default)]
    name: Option<String>,
    path: PathBuf,
    mask: u32,
    processor: String,
    recursive: bool,
    auto_add: bool,
    exclude: Vec<String>,
    include: Vec<String>,
    settle: Option<f64>,
    temp_patterns: Option<Vec<String>>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    poll_interval: Option<f64>,
    retry: RetryDocument,
    options: Map<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RetryDocument {
    attempts: Option<u32>,
    initial: Option<f64>,
    max: Option<f64>,
    multiplier: Option<f64>,
}

/// What native processors are built with, besides their options.
pub struct NativeBuild {
    /// Where relative paths in their options start.
    pub base_dir: PathBuf,
    /// Read instead of the daemon's environment ([`inotifier_sinks::environment::with_given`]).
    pub environment: Vec<(String, String)>,
}

/// The daemon's configuration, and what its native processors are built with.
pub fn from_json(text: &str) -> Result<(Config, NativeBuild), SettingsError> {
    let document: Document = serde_json::from_str(text)?;
    let native = NativeBuild {
        base_dir: document.base_dir,
        environment: document.environment.into_iter().collect(),
    };
    let log_level = document.log_level.parse::<tracing::Level>().map_err(|_| {
        SettingsError::Daemon(format!(
            "log level {:?} is not one of error, warn, info, debug, trace",
            document.log_level
        ))
    })?;
    let pid_dir = document
        .pid_file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let defaults = DaemonSettings::defaults(&pid_dir);
    let daemon = DaemonSettings {
        pid_file: document.pid_file,
        stdout: document.stdout,
        stderr: document.stderr,
        log_level,
        drain_timeout: seconds(document.drain_timeout)
            .map_err(|message| SettingsError::Daemon(format!("drain timeout: {message}")))?,
        workers: document.workers.unwrap_or(defaults.workers).max(1),
        queue_capacity: document
            .queue_capacity
            .unwrap_or(defaults.queue_capacity)
            .max(1),
    };
    let journal = match document.journal {
        None => JournalSettings::defaults(&daemon.pid_file),
        Some(journal) => JournalSettings {
            path: journal.path,
            retain: journal.retain,
            catch_up: journal.catch_up,
            first_start: match journal.first_start.as_str() {
                "silent" => FirstStart::Silent,
                "report" => FirstStart::Report,
                other => {
                    return Err(SettingsError::Daemon(format!(
                        "journal first_start {other:?} is not \"silent\" nor \"report\""
                    )));
                }
            },
        },
    };
    let metrics = MetricsSettings {
        listen: match document.metrics.and_then(|metrics| metrics.listen) {
            Some(text) => Some(text.parse().map_err(|_| {
                SettingsError::Daemon(format!(
                    "INOTIFIER_METRICS listen {text:?} is not an address and port such as \
                     \"127.0.0.1:9464\""
                ))
            })?),
            None => None,
        },
    };
    let watches = document
        .watches
        .into_iter()
        .enumerate()
        .map(|(index, watch)| {
            let path = watch.path.display().to_string();
            watch_config(watch).map_err(|message| SettingsError::Watch {
                index,
                path,
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        Config {
            source: None,
            journal,
            daemon,
            metrics,
            watches,
        },
        native,
    ))
}

fn watch_config(watch: WatchDocument) -> Result<WatchConfig, String> {
    let mut ready = ReadyOptions::default();
    if let Some(settle) = watch.settle {
        ready.settle = seconds(settle).map_err(|message| format!("settle: {message}"))?;
    }
    if let Some(patterns) = watch.temp_patterns {
        ready.temp_patterns = globs(&patterns)?;
    }
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        attempts: watch.retry.attempts.unwrap_or(defaults.attempts).max(1),
        initial: optional_seconds(watch.retry.initial, defaults.initial)?,
        max: optional_seconds(watch.retry.max, defaults.max)?,
        multiplier: watch.retry.multiplier.unwrap_or(defaults.multiplier),
    };
    let backend = match watch.backend.as_deref() {
        None => Backend::default(),
        Some(name) => Backend::from_name(name).ok_or_else(|| {
            format!(
                "backend {name:?} is not one of {}",
                Backend::NAMES.join(", ")
            )
        })?,
    };
    Ok(WatchConfig {
        name: watch.name,
        path: watch.path,
        events: Mask(watch.mask),
        processor: ProcessorConfig {
            kind: watch.processor,
            options: watch.options,
        },
        recursive: watch.recursive,
        auto_add: watch.auto_add,
        filters: Filters {
            include: globs(&watch.include)?,
            exclude: globs(&watch.exclude)?,
        },
        backend,
        poll_interval: optional_seconds(watch.poll_interval, DEFAULT_POLL_INTERVAL)?,
        ready,
        retry,
    })
}

fn globs(patterns: &[String]) -> Result<Vec<Glob>, String> {
    patterns
        .iter()
        .map(|pattern| Glob::new(pattern).map_err(|error| error.to_string()))
        .collect()
}

fn seconds(value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{value} is not a number of seconds >= 0"))
}

fn optional_seconds(value: Option<f64>, default: Duration) -> Result<Duration, String> {
    value.map_or(Ok(default), seconds)
}
