//! One `[[watch]]` table: what to watch, which events, and the processor that gets them.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotifier_core::ready::ReadyOptions;
use inotifier_core::{Backend, DEFAULT_POLL_INTERVAL, Filters, Glob, Mask, MaskParseError};
use inotifier_sinks::RetryPolicy;
use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::{DeInteger, DeTable, DeValue};

use super::ValidateProcessor;
use super::error::ProblemKind;
use super::json::table_to_json;
use super::table::{KeySpec, Located, Report, TableReader};
use crate::config::paths::resolve;
use crate::config::{ProcessorConfig, WatchConfig};

pub(super) const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "name",
        expects: "a name (a string)",
        example: r#"name = "uploads-thumbnails""#,
    },
    KeySpec {
        name: "path",
        expects: "a path (a string)",
        example: r#"path = "/srv/uploads""#,
    },
    KeySpec {
        name: "events",
        expects: "event names (a string or an array of strings) or an integer mask",
        example: r#"events = ["IN_CLOSE_WRITE", "IN_MOVED_TO"]"#,
    },
    KeySpec {
        name: "processor",
        expects: "a processor name (a string)",
        example: r#"processor = "log""#,
    },
    KeySpec {
        name: "recursive",
        expects: "a boolean",
        example: "recursive = true",
    },
    KeySpec {
        name: "auto_add",
        expects: "a boolean",
        example: "auto_add = true",
    },
    KeySpec {
        name: "backend",
        expects: r#""auto", "inotify" or "poll" (a string)"#,
        example: r#"backend = "poll""#,
    },
    KeySpec {
        name: "poll_interval",
        expects: "a duration (a string)",
        example: r#"poll_interval = "1s""#,
    },
    KeySpec {
        name: "exclude",
        expects: "an array of glob patterns (strings)",
        example: r#"exclude = ["*.tmp", ".git"]"#,
    },
    KeySpec {
        name: "include",
        expects: "an array of glob patterns (strings)",
        example: r#"include = ["*.jpg"]"#,
    },
    KeySpec {
        name: "options",
        expects: "a table of the processor's options",
        example: r#"[watch.options] (or options = { argv = ["true"] })"#,
    },
    KeySpec {
        name: "ready",
        expects: "a table",
        example: r#"[watch.ready] (or ready = { settle = "200ms" })"#,
    },
    KeySpec {
        name: "retry",
        expects: "a table",
        example: r#"[watch.retry] (or retry = { attempts = 5 })"#,
    },
];

pub(super) const READY_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "settle",
        expects: "a duration (a string)",
        example: r#"settle = "200ms""#,
    },
    KeySpec {
        name: "temp_patterns",
        expects: "an array of glob patterns (strings)",
        example: r#"temp_patterns = ["*.part", "*.tmp"]"#,
    },
];

pub(super) const RETRY_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "attempts",
        expects: "a positive integer",
        example: "attempts = 5",
    },
    KeySpec {
        name: "initial",
        expects: "a duration (a string)",
        example: r#"initial = "100ms""#,
    },
    KeySpec {
        name: "max",
        expects: "a duration (a string)",
        example: r#"max = "30s""#,
    },
    KeySpec {
        name: "multiplier",
        expects: "a number",
        example: "multiplier = 2.0",
    },
];

/// A watch read from the file, with where its path is written (for the path check).
pub(super) struct ReadWatch {
    /// `None` when a required key is missing or invalid.
    pub config: Option<WatchConfig>,
    /// The resolved path and where it is written, when it is a valid string: it is checked
    /// even if the rest of the table is not valid.
    pub path: Option<Located<PathBuf>>,
    /// 1-based position in the file, and where its table starts.
    pub number: usize,
    pub span: Range<usize>,
}

/// Reads the `number`th (1-based) `[[watch]]` table; every problem is in `report`.
pub(super) fn read(
    number: usize,
    span: Range<usize>,
    entries: &DeTable<'_>,
    base_dir: &Path,
    validate_processor: &ValidateProcessor<'_>,
    report: &mut Report<'_>,
) -> ReadWatch {
    let table = TableReader::new(
        format!("[[watch]] #{number}"),
        span.clone(),
        entries,
        KEYS,
        report,
    );

    let name = table
        .non_empty_string(
            report,
            "name",
            "give a name that tells this watch from the others, or leave the key out",
        )
        .map(|(text, _)| text.to_string());
    let path = read_path(&table, base_dir, report);
    let events = read_events(&table, report);
    let processor = table.required_string(
        report,
        "processor",
        "give the name of the processor that handles the events",
    );
    let options = read_options(&table, report);
    let recursive = table.bool(report, "recursive").unwrap_or(false);
    let auto_add = table.bool(report, "auto_add").unwrap_or(recursive);
    let filters = Filters {
        include: read_globs(&table, "include", report).unwrap_or_default(),
        exclude: read_globs(&table, "exclude", report).unwrap_or_default(),
    };
    let backend = read_backend(&table, report);
    let poll_interval = read_poll_interval(&table, report);
    let ready = read_ready(&table, number, report);
    let retry = read_retry(&table, number, report);

    let processor = processor
        .zip(options)
        .and_then(|((kind, kind_span), (options, written))| {
            match validate_processor(kind, &options, base_dir) {
                Ok(()) => Some(ProcessorConfig {
                    kind: kind.to_string(),
                    options,
                }),
                Err(message) => {
                    let at = written
                        .and_then(|written| mentioned_option(&message, written))
                        .unwrap_or(kind_span.start);
                    report.add(
                        at,
                        ProblemKind::Processor {
                            kind: kind.to_string(),
                            table: table.name.clone(),
                            message,
                        },
                    );
                    None
                }
            }
        });
    let config = match (&path, events, processor) {
        (Some((path, _)), Some(events), Some(processor)) => Some(WatchConfig {
            name,
            path: path.clone(),
            events,
            processor,
            recursive,
            auto_add,
            filters,
            backend,
            poll_interval,
            ready,
            retry,
        }),
        _ => None,
    };
    ReadWatch {
        config,
        path,
        number,
        span,
    }
}

fn read_backend(table: &TableReader<'_, '_>, report: &mut Report<'_>) -> Backend {
    let Some((text, span)) = table.string(report, "backend") else {
        return Backend::default();
    };
    Backend::from_name(text).unwrap_or_else(|| {
        report.add(
            span.start,
            ProblemKind::Backend {
                value: text.to_string(),
                table: table.name.clone(),
            },
        );
        Backend::default()
    })
}

/// Shorter would list a tree again and again without a pause worth the name.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

fn read_poll_interval(table: &TableReader<'_, '_>, report: &mut Report<'_>) -> Duration {
    match table.duration(report, "poll_interval") {
        Some(interval) if interval < MIN_POLL_INTERVAL => {
            let span = table
                .get("poll_interval")
                .map_or(0, |value| value.span().start);
            report.add(
                span,
                ProblemKind::PollInterval {
                    value: inotifier_core::duration::format_duration(interval),
                    table: table.name.clone(),
                },
            );
            DEFAULT_POLL_INTERVAL
        }
        Some(interval) => interval,
        None => DEFAULT_POLL_INTERVAL,
    }
}

fn read_path(
    table: &TableReader<'_, '_>,
    base_dir: &Path,
    report: &mut Report<'_>,
) -> Option<Located<PathBuf>> {
    let (text, span) =
        table.required_string(report, "path", "give the directory or file to watch")?;
    Some((resolve(base_dir, Path::new(text)), span))
}

/// `events`: `"IN_CREATE|IN_DELETE"`, `["IN_CREATE", "IN_DELETE"]`, `768` or `"0x300"`, in any
/// of the spellings [`Mask`]'s parser takes.
fn read_events(table: &TableReader<'_, '_>, report: &mut Report<'_>) -> Option<Mask> {
    let value = table.required(report, "events")?;
    let mask = match value.get_ref() {
        DeValue::String(text) => mask_from_string(table, text, value.span(), report)?,
        DeValue::Integer(integer) => mask_from_integer(table, integer, value.span(), report)?,
        DeValue::Array(items) => {
            let mut mask = Some(Mask::empty());
            for item in items.iter() {
                let part = match item.get_ref() {
                    DeValue::String(text) => mask_from_string(table, text, item.span(), report),
                    DeValue::Integer(integer) => {
                        mask_from_integer(table, integer, item.span(), report)
                    }
                    _ => {
                        table.wrong_type(report, "events", item);
                        None
                    }
                };
                mask = mask.zip(part).map(|(mask, part)| mask | part);
            }
            mask?
        }
        _ => {
            table.wrong_type(report, "events", value);
            return None;
        }
    };
    if mask.is_empty() {
        report.add(
            value.span().start,
            ProblemKind::EmptyMask {
                key: "events".into(),
                table: table.name.clone(),
            },
        );
        return None;
    }
    Some(mask)
}

fn mask_from_string(
    table: &TableReader<'_, '_>,
    text: &str,
    span: Range<usize>,
    report: &mut Report<'_>,
) -> Option<Mask> {
    match text.parse::<Mask>() {
        Ok(mask) => Some(mask),
        Err(error) => {
            // Point at the bad word itself when it can be found in the written string.
            let at = match &error {
                MaskParseError::UnknownName { word, .. } | MaskParseError::OutOfRange { word } => {
                    report
                        .source(span.clone())
                        .find(word.as_str())
                        .map_or(span.start, |index| span.start + index)
                }
                MaskParseError::Empty => span.start,
            };
            report.add(
                at,
                ProblemKind::Mask {
                    key: "events".into(),
                    table: table.name.clone(),
                    error,
                },
            );
            None
        }
    }
}

fn mask_from_integer(
    table: &TableReader<'_, '_>,
    integer: &DeInteger<'_>,
    span: Range<usize>,
    report: &mut Report<'_>,
) -> Option<Mask> {
    let value = i128::from_str_radix(integer.as_str(), integer.radix()).ok();
    match value.and_then(|n| u32::try_from(n).ok()) {
        Some(bits) => Some(Mask(bits)),
        None => {
            report.add(
                span.start,
                ProblemKind::OutOfRange {
                    key: "events".into(),
                    table: table.name.clone(),
                    value: integer.to_string(),
                    valid: "a mask from 1 to 0xffffffff",
                },
            );
            None
        }
    }
}

/// The processor's options as a JSON map, and the table they were written in (absent: empty).
/// `None` when they are invalid.
fn read_options<'a, 'i>(
    table: &TableReader<'a, 'i>,
    report: &mut Report<'_>,
) -> Option<(Map<String, Value>, Option<&'a DeTable<'i>>)> {
    let Some(value) = table.get("options") else {
        return Some((Map::new(), None));
    };
    let DeValue::Table(options) = value.get_ref() else {
        table.wrong_type(report, "options", value);
        return None;
    };
    let mut problems = Vec::new();
    let map = table_to_json(options, &mut problems);
    for problem in &problems {
        report.add(
            problem.span.start,
            ProblemKind::NotJson {
                key: format!("options.{}", problem.path),
                table: table.name.clone(),
                reason: problem.reason,
            },
        );
    }
    problems.is_empty().then_some((map, Some(options)))
}

fn read_globs(
    table: &TableReader<'_, '_>,
    key: &str,
    report: &mut Report<'_>,
) -> Option<Vec<Glob>> {
    let patterns = table.strings(report, key)?;
    let mut globs = Vec::with_capacity(patterns.len());
    for (pattern, span) in patterns {
        match Glob::new(pattern) {
            Ok(glob) => globs.push(glob),
            Err(error) => report.add(
                span.start,
                ProblemKind::Glob {
                    key: key.to_string(),
                    table: table.name.clone(),
                    error,
                },
            ),
        }
    }
    Some(globs)
}

fn read_ready(table: &TableReader<'_, '_>, number: usize, report: &mut Report<'_>) -> ReadyOptions {
    let mut ready = ReadyOptions::default();
    let name = format!("[watch.ready] of [[watch]] #{number}");
    let Some(table) = table.table(report, "ready", name, READY_KEYS) else {
        return ready;
    };
    if let Some(settle) = table.duration(report, "settle") {
        ready.settle = settle;
    }
    if let Some(patterns) = read_globs(&table, "temp_patterns", report) {
        ready.temp_patterns = patterns;
    }
    ready
}

fn read_retry(table: &TableReader<'_, '_>, number: usize, report: &mut Report<'_>) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    let name = format!("[watch.retry] of [[watch]] #{number}");
    let Some(table) = table.table(report, "retry", name, RETRY_KEYS) else {
        return retry;
    };
    if let Some(attempts) = table.integer(report, "attempts", 1..=u32::MAX.into(), "at least 1") {
        retry.attempts = attempts as u32;
    }
    if let Some(initial) = table.duration(report, "initial") {
        retry.initial = initial;
    }
    if let Some(max) = table.duration(report, "max") {
        retry.max = max;
    }
    if let Some(multiplier) = table.number(report, "multiplier", 1.0, "a number of at least 1.0") {
        retry.multiplier = multiplier;
    }
    if retry.max < retry.initial {
        // Only one of them can have been written (or both): point at what was.
        let (key, value) = match table.key_span("max") {
            Some(_) => ("max", retry.max),
            None => ("initial", retry.initial),
        };
        let span = table.get(key).map_or(table.span.clone(), Spanned::span);
        report.add(
            span.start,
            ProblemKind::OutOfRange {
                key: key.into(),
                table: table.name.clone(),
                value: inotifier_core::duration::format_duration(value),
                valid: "at least `initial`",
            },
        );
    }
    retry
}

/// Where the option a processor's error message names is written: the earliest option key that
/// appears in `message` as a whole word.
fn mentioned_option(message: &str, options: &DeTable<'_>) -> Option<usize> {
    options
        .keys()
        .filter_map(|key| Some((find_word(message, key.get_ref())?, key.span().start)))
        .min_by_key(|(position, _)| *position)
        .map(|(_, at)| at)
}

/// The byte index of `word` in `text` where it is not part of a longer identifier.
fn find_word(text: &str, word: &str) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    let is_identifier = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word)
        .map(|(index, _)| index)
        .find(|&index| {
            let before = text[..index].chars().next_back();
            let after = text[index + word.len()..].chars().next();
            !before.is_some_and(is_identifier) && !after.is_some_and(is_identifier)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_found_whole() {
        assert_eq!(find_word("missing argv", "argv"), Some(8));
        assert_eq!(find_word("argv_extra is odd; `argv` too", "argv"), Some(20));
        assert_eq!(find_word("urls", "url"), None);
        assert_eq!(find_word("x", ""), None);
    }
}
