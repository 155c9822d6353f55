//! The TOML config file of the `inotifier` daemon: the same model as the Django setting
//! `INOTIFIER_WATCH_PATHS`.
//!
//! Unknown keys are errors, and every error names the file, the line and column, the key and
//! what would be valid, as `FILE:LINE:COLUMN: what is wrong: what is valid`. All the problems
//! of a file are reported at once. Relative paths are resolved against the directory of the
//! config file. `examples/inotifier.toml` is an annotated example with every key.
//!
//! # `[daemon]`: how the process runs (optional, as is each of its keys)
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `pid_file` | path | `inotifier.pid` next to the config file | the pid file, locked while the daemon runs |
//! | `stdout` | path | none (`/dev/null`) | where a daemonized process writes its standard output |
//! | `stderr` | path | none (`/dev/null`) | where a daemonized process writes its standard error |
//! | `log_level` | string | `"info"` | `error`, `warn`, `info`, `debug` or `trace` |
//! | `drain_timeout` | duration | `"10s"` | how long a stopping daemon keeps delivering the events it has read |
//! | `workers` | integer ≥ 1 | 2 × CPUs, at least 2 | threads processing events; events of one file stay in order |
//! | `queue_capacity` | integer ≥ 1 | `1024` | events waiting per worker before reading pauses |
//!
//! # `[journal]`: the durable journal (optional, as is each of its keys)
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `enabled` | boolean | `true` | `false`: no journal (events not yet delivered when the daemon stops are lost, changes made while it is down are not reported) |
//! | `path` | path | the pid file with extension `.journal` | the SQLite file; follows a custom `pid_file` unless given |
//! | `retain` | integer ≥ 0 | `100000` | acknowledged events kept for `inotifier journal replay` |
//! | `catch_up` | boolean | `true` | on start, report what changed while the daemon was down |
//! | `first_start` | string | `"silent"` | what the first start of a watch reports: `"silent"` (nothing) or `"report"` (every existing entry, as created) |
//!
//! # `[[watch]]`: one table per watch (at least one)
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `name` | string | `PROCESSOR@PATH` | the watch's key in the journal; required to tell apart two watches of one path and processor |
//! | `path` | path, required | | the directory or file to watch; it must exist and be readable |
//! | `events` | mask, required | | `"IN_CLOSE_WRITE\|IN_MOVED_TO"`, `["IN_CLOSE_WRITE", "IN_READY"]`, `256` or `"0x100"`; names as [`Mask`](inotifier_core::Mask) parses them (case-insensitive, `IN_` optional) |
//! | `processor` | string, required | | `log`, `jsonl`, `exec`, `webhook`, or a name the host application resolves |
//! | `recursive` | boolean | `false` | watch every directory below `path` too |
//! | `auto_add` | boolean | = `recursive` | watch directories created later |
//! | `backend` | string | `"auto"` | where events come from: `"inotify"`; `"poll"` (inotify for this machine's changes, and the tree listed again every `poll_interval` for other hosts'); `"auto"`: inotify, polling below each path on a filesystem where inotify misses other hosts' changes (NFS, SMB, FUSE, 9p, Ceph, ...) |
//! | `poll_interval` | duration | `"1s"` | how often a polled tree is listed again; at least `"10ms"` |
//! | `exclude` | array of globs | `[]` | entries never watched nor reported (`"*.tmp"`, `".git"`, `"build/**"`) |
//! | `include` | array of globs | `[]` (all) | when given, only files matching one are reported |
//! | `options` | table | `{}` | the processor's options, passed to it as a JSON object |
//! | `ready` | table | | when a file counts as ready (the `IN_READY` event) |
//! | `retry` | table | | how a failed event is retried |
//!
//! A glob without `/` matches a name at any depth; one with `/` matches the path below `path`.
//!
//! ## `[watch.ready]`
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `settle` | duration | `"200ms"` | how long a file closed after writing must stay untouched |
//! | `temp_patterns` | array of globs | `["*.part", "*.tmp", "*.crdownload", ".*.swp"]` | temporary names: never ready; renamed from one into place, ready at once |
//!
//! ## `[watch.retry]`
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `attempts` | integer ≥ 1 | `5` | attempts in all, the first included |
//! | `initial` | duration | `"100ms"` | delay before the first retry |
//! | `max` | duration | `"30s"` | longest delay; at least `initial` |
//! | `multiplier` | number ≥ 1.0 | `2.0` | growth of the delay between attempts |
//!
//! Durations are strings: a number and a unit, `ms`, `s`, `m` or `h` (`"200ms"`, `"1.5s"`).
//!
//! # Processors
//!
//! Which processor names and options are valid is not decided here: [`load`] and [`parse`]
//! take a [`ValidateProcessor`] callback, called once per watch whose keys are otherwise valid.

mod daemon;
mod error;
mod journal;
mod json;
mod metrics;
mod table;
mod watch;

use std::path::Path;

use serde_json::{Map, Value};
use toml::de::{DeTable, DeValue};

pub use error::{ConfigError, Problem, ProblemKind};

use super::Config;
use super::paths::check_watch_path;
use error::Locator;
use table::{KeySpec, Report, TableReader};

/// Checks a processor's name and options: `(kind, options, config_dir)`, where `config_dir`
/// is the config file's directory (for options holding relative paths). The error says what is
/// wrong and what is valid. It is reported at the option it names (as a whole word) when there
/// is one, else at `processor`.
pub type ValidateProcessor<'a> =
    dyn Fn(&str, &Map<String, Value>, &Path) -> Result<(), String> + 'a;

const TOP_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "daemon",
        expects: "a table",
        example: "[daemon]",
    },
    KeySpec {
        name: "journal",
        expects: "a table",
        example: "[journal]",
    },
    KeySpec {
        name: "metrics",
        expects: "a table",
        example: "[metrics]",
    },
    KeySpec {
        name: "watch",
        expects: "an array of tables",
        example: "[[watch]] (with double brackets, once per watch)",
    },
];

/// Reads the config file at `path`, then checks that every watch path exists and can be read:
/// what the daemon needs before it starts. Relative paths in the file are resolved against the
/// file's directory.
pub fn load(
    path: &Path,
    validate_processor: &ValidateProcessor<'_>,
) -> Result<Config, ConfigError> {
    read_file(path, validate_processor, CheckPaths::Yes)
}

/// Reads the config file at `path` as [`load`] does, without checking the watch paths: for
/// `inotifier doctor`, which reports a missing path as one finding among others.
pub fn load_unchecked(
    path: &Path,
    validate_processor: &ValidateProcessor<'_>,
) -> Result<Config, ConfigError> {
    read_file(path, validate_processor, CheckPaths::No)
}

fn read_file(
    path: &Path,
    validate_processor: &ValidateProcessor<'_>,
    check_paths: CheckPaths,
) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default();
            let problem = Locator::new(path, valid).problem(valid.len(), ProblemKind::NotUtf8);
            return Err(ConfigError::Invalid(vec![problem]));
        }
    };
    read(text, path, validate_processor, check_paths)
}

/// Reads a config from `text`, as if it were the file `source_path` (which names the file in
/// errors, and whose directory relative paths are resolved against). Touches no file: watch
/// paths are not checked (see [`load`]).
pub fn parse(
    text: &str,
    source_path: &Path,
    validate_processor: &ValidateProcessor<'_>,
) -> Result<Config, ConfigError> {
    read(text, source_path, validate_processor, CheckPaths::No)
}

/// Only the pid file named by the config file at `path` (its default when the file names
/// none): what `stop` and `status` need, so they keep working when the rest of the file has
/// become invalid or a watched path is gone. Only a file that cannot be read or parsed at all
/// is an error.
pub fn load_pid_file(path: &Path) -> Result<std::path::PathBuf, ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let (pid_file, _problems_elsewhere) = read_document(&text, path, |top, base_dir, report| {
        let daemon_table = top.table(report, "daemon", "[daemon]".into(), daemon::KEYS);
        daemon::read(daemon_table, base_dir, report).pid_file
    })?;
    Ok(pid_file)
}

/// The pid file and the journal settings of the config file at `path`: what `inotifier
/// journal` needs. Like [`load_pid_file`], problems elsewhere in the file (a watch path gone)
/// are not errors; those of `[daemon]` and `[journal]` are, since a journal path guessed past
/// them could be the wrong file.
pub fn load_journal_settings(
    path: &Path,
) -> Result<(std::path::PathBuf, super::JournalSettings), ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let ((settings, problems), _problems_elsewhere) =
        read_document(&text, path, |top, base_dir, report| {
            let before = report.len();
            let daemon_table = top.table(report, "daemon", "[daemon]".into(), daemon::KEYS);
            let daemon = daemon::read(daemon_table, base_dir, report);
            let journal_table = top.table(report, "journal", "[journal]".into(), journal::KEYS);
            let journal = journal::read(journal_table, &daemon.pid_file, base_dir, report);
            ((daemon.pid_file, journal), report.since(before))
        })?;
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum CheckPaths {
    Yes,
    No,
}

/// Parses `text` (the file `file`) and hands its top level to `read_tables`, which reports
/// problems as it reads. A syntax error is the only error here: the rest of a document with
/// one would be guessed at.
fn read_document<T>(
    text: &str,
    file: &Path,
    read_tables: impl FnOnce(&TableReader<'_, '_>, &Path, &mut Report<'_>) -> T,
) -> Result<(T, Vec<Problem>), ConfigError> {
    let mut report = Report::new(Locator::new(file, text));
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            let mut message = error.message().trim_end().to_string();
            if message == "duplicate key" {
                // The parser does not say which key, nor what to do.
                message = format!(
                    "duplicate key `{}`: a key can be set only once in a table",
                    report.source(span.clone())
                );
            }
            report.add(span.start, ProblemKind::Syntax { message });
            return Err(ConfigError::Invalid(report.into_problems()));
        }
    };
    let base_dir = absolute(file)
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let top = TableReader::new(
        "the top level".into(),
        0..0,
        document.get_ref(),
        TOP_KEYS,
        &mut report,
    );
    let value = read_tables(&top, &base_dir, &mut report);
    Ok((value, report.into_problems()))
}

fn absolute(file: &Path) -> std::path::PathBuf {
    std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf())
}

fn read(
    text: &str,
    file: &Path,
    validate_processor: &ValidateProcessor<'_>,
    check_paths: CheckPaths,
) -> Result<Config, ConfigError> {
    let ((daemon, journal, metrics, watches), problems) =
        read_document(text, file, |top, base_dir, report| {
            let daemon_table = top.table(report, "daemon", "[daemon]".into(), daemon::KEYS);
            let daemon = daemon::read(daemon_table, base_dir, report);
            let journal_table = top.table(report, "journal", "[journal]".into(), journal::KEYS);
            let journal = journal::read(journal_table, &daemon.pid_file, base_dir, report);
            let metrics_table = top.table(report, "metrics", "[metrics]".into(), metrics::KEYS);
            let metrics = metrics::read(metrics_table, report);
            let watches = read_watches(top, base_dir, validate_processor, report);
            check_distinct_keys(&watches, report);
            if check_paths == CheckPaths::Yes {
                for (path, span) in watches.iter().filter_map(|watch| watch.path.as_ref()) {
                    if let Err(problem) = check_watch_path(path) {
                        report.add(
                            span.start,
                            ProblemKind::WatchPath {
                                path: path.clone(),
                                problem,
                            },
                        );
                    }
                }
            }
            (daemon, journal, metrics, watches)
        })?;
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Config {
        source: Some(absolute(file)),
        journal,
        daemon,
        metrics,
        watches: watches
            .into_iter()
            .filter_map(|watch| watch.config)
            .collect(),
    })
}

/// Each watch has its own cursor and snapshot in the journal, found by its key: two watches
/// with one key would share them, and each would miss what the other acknowledged. Reported
/// at the second one.
fn check_distinct_keys(watches: &[watch::ReadWatch], report: &mut Report<'_>) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for watch in watches {
        let Some(config) = &watch.config else {
            continue;
        };
        let key = config.key();
        match seen.get(&key) {
            Some(&first) => report.add(
                watch.span.start,
                ProblemKind::DuplicateWatch {
                    table: format!("[[watch]] #{}", watch.number),
                    key,
                    first,
                    suggestion: format!("{}-{}", config.processor.kind, watch.number),
                },
            ),
            None => {
                seen.insert(key, watch.number);
            }
        }
    }
}

fn read_watches(
    top: &TableReader<'_, '_>,
    base_dir: &Path,
    validate_processor: &ValidateProcessor<'_>,
    report: &mut Report<'_>,
) -> Vec<watch::ReadWatch> {
    let Some(value) = top.get("watch") else {
        report.add(0, ProblemKind::NoWatches);
        return Vec::new();
    };
    let DeValue::Array(entries) = value.get_ref() else {
        top.wrong_type(report, "watch", value);
        return Vec::new();
    };
    if entries.is_empty() {
        report.add(value.span().start, ProblemKind::NoWatches);
    }
    let mut watches = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let DeValue::Table(table) = entry.get_ref() else {
            top.wrong_type(report, "watch", entry);
            continue;
        };
        watches.push(watch::read(
            index + 1,
            entry.span(),
            table,
            base_dir,
            validate_processor,
            report,
        ));
    }
    watches
}

#[cfg(test)]
mod tests;
