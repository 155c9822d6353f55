//! The `[journal]` table: where the durable journal lives and what it keeps.

use std::path::Path;

use super::error::ProblemKind;
use super::table::{KeySpec, Report, TableReader};
use crate::config::paths::resolve;
use crate::config::{FirstStart, JournalSettings};

pub(super) const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "enabled",
        expects: "a boolean",
        example: "enabled = true",
    },
    KeySpec {
        name: "path",
        expects: "a path (a string)",
        example: r#"path = "inotifier.journal""#,
    },
    KeySpec {
        name: "retain",
        expects: "a whole number (0 or more)",
        example: "retain = 100000",
    },
    KeySpec {
        name: "catch_up",
        expects: "a boolean",
        example: "catch_up = true",
    },
    KeySpec {
        name: "first_start",
        expects: r#""silent" or "report" (a string)"#,
        example: r#"first_start = "silent""#,
    },
];

/// Reads `[journal]` (absent: every default, the journal next to `pid_file`), resolving its
/// path against `base_dir`. Every key is checked even when `enabled = false`, so that turning
/// the journal back on cannot reveal a mistake made meanwhile.
pub(super) fn read(
    table: Option<TableReader<'_, '_>>,
    pid_file: &Path,
    base_dir: &Path,
    report: &mut Report<'_>,
) -> JournalSettings {
    let mut settings = JournalSettings::defaults(pid_file);
    let Some(table) = table else {
        return settings;
    };
    if let Some((text, _)) =
        table.non_empty_string(report, "path", "give a file name, or leave the key out")
    {
        settings.path = Some(resolve(base_dir, Path::new(text)));
    }
    if let Some(retain) = table.integer(report, "retain", 0..=i64::MAX as u64, "0 or more") {
        settings.retain = usize::try_from(retain).unwrap_or(usize::MAX);
    }
    if let Some(catch_up) = table.bool(report, "catch_up") {
        settings.catch_up = catch_up;
    }
    if let Some((text, span)) = table.string(report, "first_start") {
        match text {
            "silent" => settings.first_start = FirstStart::Silent,
            "report" => settings.first_start = FirstStart::Report,
            _ => report.add(
                span.start,
                ProblemKind::FirstStart {
                    value: text.to_string(),
                },
            ),
        }
    }
    if table.bool(report, "enabled") == Some(false) {
        settings.path = None;
    }
    settings
}
