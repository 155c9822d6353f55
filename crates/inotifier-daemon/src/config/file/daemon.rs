//! The `[daemon]` table: how the process runs, whatever it watches.

use std::path::{Path, PathBuf};

use super::error::ProblemKind;
use super::table::{KeySpec, Report, TableReader};
use crate::config::DaemonSettings;
use crate::config::paths::resolve;

pub(super) const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "pid_file",
        expects: "a path (a string)",
        example: r#"pid_file = "inotifier.pid""#,
    },
    KeySpec {
        name: "stdout",
        expects: "a path (a string)",
        example: r#"stdout = "log/out.log""#,
    },
    KeySpec {
        name: "stderr",
        expects: "a path (a string)",
        example: r#"stderr = "log/err.log""#,
    },
    KeySpec {
        name: "log_level",
        expects: "a level name (a string)",
        example: r#"log_level = "info""#,
    },
    KeySpec {
        name: "drain_timeout",
        expects: "a duration (a string)",
        example: r#"drain_timeout = "10s""#,
    },
    KeySpec {
        name: "workers",
        expects: "a positive integer",
        example: "workers = 4",
    },
    KeySpec {
        name: "queue_capacity",
        expects: "a positive integer",
        example: "queue_capacity = 1024",
    },
];

const PATH_HINT: &str = "give a file name, or leave the key out";

/// Reads `[daemon]` (absent: every default), resolving its paths against `base_dir`.
pub(super) fn read(
    table: Option<TableReader<'_, '_>>,
    base_dir: &Path,
    report: &mut Report<'_>,
) -> DaemonSettings {
    let mut settings = DaemonSettings::defaults(base_dir);
    let Some(table) = table else {
        return settings;
    };
    let path = |report: &mut Report<'_>, key| -> Option<PathBuf> {
        let (text, _) = table.non_empty_string(report, key, PATH_HINT)?;
        Some(resolve(base_dir, Path::new(text)))
    };
    if let Some(pid_file) = path(report, "pid_file") {
        settings.pid_file = pid_file;
    }
    settings.stdout = path(report, "stdout");
    settings.stderr = path(report, "stderr");
    if let Some((text, span)) = table.string(report, "log_level") {
        match parse_log_level(text) {
            Some(level) => settings.log_level = level,
            None => report.add(
                span.start,
                ProblemKind::LogLevel {
                    value: text.to_string(),
                },
            ),
        }
    }
    if let Some(timeout) = table.duration(report, "drain_timeout") {
        settings.drain_timeout = timeout;
    }
    let count = |report: &mut Report<'_>, key| {
        table
            .integer(report, key, 1..=u32::MAX.into(), "at least 1")
            .map(|n| n as usize)
    };
    if let Some(workers) = count(report, "workers") {
        settings.workers = workers;
    }
    if let Some(capacity) = count(report, "queue_capacity") {
        settings.queue_capacity = capacity;
    }
    settings
}

/// One of error, warn, info, debug, trace, in any case; tracing's own parser would also take
/// numbers, which a reader of the file could not guess the meaning of.
fn parse_log_level(text: &str) -> Option<tracing::Level> {
    match text.trim().to_ascii_lowercase().as_str() {
        "error" => Some(tracing::Level::ERROR),
        "warn" => Some(tracing::Level::WARN),
        "info" => Some(tracing::Level::INFO),
        "debug" => Some(tracing::Level::DEBUG),
        "trace" => Some(tracing::Level::TRACE),
        _ => None,
    }
}
