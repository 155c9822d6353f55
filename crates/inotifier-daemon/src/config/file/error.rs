//! What can be wrong with a config file, each problem located at a line and column.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use inotifier_core::{GlobError, MaskParseError};

use crate::config::paths::PathProblem;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all (missing, a directory, no permission).
    #[error("{}: cannot read the config file: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// The file was read but is not a valid configuration. Holds every problem found, in the
    /// order they appear in the file; never empty.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The located problems; empty for [`ConfigError::Read`].
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }
}

/// One problem per line, as a compiler prints them.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One thing wrong in a config file, displayed as `FILE:LINE:COLUMN: what is wrong: what is
/// valid`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}:{column}: {kind}", file.display())]
pub struct Problem {
    /// The config file, as it was named to [`load`](super::load) or [`parse`](super::parse).
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters (not bytes) from the start of the line.
    pub column: usize,
    pub kind: ProblemKind,
}

/// What is wrong, with what would be valid. Keys are named as written in the file; `table`
/// names the table holding them, such as `[daemon]` or `[[watch]] #2`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemKind {
    #[error("the file is not UTF-8 text: save it as UTF-8")]
    NotUtf8,
    #[error("invalid TOML: {message}")]
    Syntax { message: String },
    #[error(
        "unknown key `{key}` in {table}{}: valid keys are {}",
        suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        valid.join(", ")
    )]
    UnknownKey {
        key: String,
        table: String,
        valid: Vec<&'static str>,
        suggestion: Option<&'static str>,
    },
    #[error("`{key}` in {table} must be {expected}, not {found}: for example {example}")]
    WrongType {
        key: String,
        table: String,
        expected: &'static str,
        found: &'static str,
        example: &'static str,
    },
    #[error("{table} lacks the required key `{key}`: add {example}")]
    MissingKey {
        key: &'static str,
        table: String,
        example: &'static str,
    },
    #[error("invalid `{key}` in {table}: {error}")]
    Mask {
        key: String,
        table: String,
        error: MaskParseError,
    },
    #[error(
        "`{key}` in {table} selects no event: give event names such as IN_CLOSE_WRITE, or a non-zero integer"
    )]
    EmptyMask { key: String, table: String },
    #[error(
        "invalid pattern in `{key}` of {table}: {error}: patterns use * and ** (any characters), ? (one), [abc] or [a-z] (a set) and \\ to escape"
    )]
    Glob {
        key: String,
        table: String,
        error: GlobError,
    },
    #[error("invalid `{key}` in {table}: {message}")]
    Duration {
        key: String,
        table: String,
        message: String,
    },
    #[error("unknown log_level {value:?}: use error, warn, info, debug or trace")]
    LogLevel { value: String },
    #[error(
        "unknown first_start {value:?} in [journal]: use \"silent\" (record what exists, report \
         nothing) or \"report\" (report every existing entry as created)"
    )]
    FirstStart { value: String },
    #[error(
        "backend {value:?} in {table} is not a backend: write \"auto\" (inotify, polling where \
         the filesystem hides other hosts' changes), \"inotify\" or \"poll\""
    )]
    Backend { value: String, table: String },
    #[error("poll_interval in {table} is {value}: give at least 10ms (\"1s\" is the default)")]
    PollInterval { value: String, table: String },
    #[error(
        "listen {value:?} in [metrics] is not an address and port: write it as \"127.0.0.1:9464\" \
         (IPv6: \"[::1]:9464\"; port 0 lets the kernel choose)"
    )]
    MetricsListen { value: String },
    #[error(
        "{table} has the same journal key `{key}` as [[watch]] #{first} (same processor and \
         path): give each of them a distinct `name`, such as name = \"{suggestion}\""
    )]
    DuplicateWatch {
        table: String,
        key: String,
        first: usize,
        suggestion: String,
    },
    #[error("`{key}` in {table} is {value}: it must be {valid}")]
    OutOfRange {
        key: String,
        table: String,
        value: String,
        valid: &'static str,
    },
    #[error("`{key}` in {table} is an empty string: {hint}")]
    EmptyString {
        key: String,
        table: String,
        hint: &'static str,
    },
    #[error(
        "no [[watch]] table: add at least one, with path, events and processor (see examples/inotifier.toml)"
    )]
    NoWatches,
    #[error("`{key}` in {table} cannot be stored in the processor's JSON options: {reason}")]
    NotJson {
        key: String,
        table: String,
        reason: &'static str,
    },
    #[error("watch path {} {problem}", path.display())]
    WatchPath { path: PathBuf, problem: PathProblem },
    #[error("processor `{kind}` of {table}: {message}")]
    Processor {
        kind: String,
        table: String,
        message: String,
    },
}

/// Turns byte offsets into the line and column people see in an editor.
pub(super) struct Locator<'t> {
    file: &'t Path,
    text: &'t str,
}

impl<'t> Locator<'t> {
    pub(super) fn new(file: &'t Path, text: &'t str) -> Locator<'t> {
        Locator { file, text }
    }

    pub(super) fn source(&self, span: std::ops::Range<usize>) -> &'t str {
        self.text.get(span).unwrap_or("")
    }

    pub(super) fn problem(&self, offset: usize, kind: ProblemKind) -> Problem {
        let (line, column) = line_and_column(self.text, offset);
        Problem {
            file: self.file.to_path_buf(),
            line,
            column,
            kind,
        }
    }
}

/// The 1-based line and character column of byte `offset` in `text`.
pub(super) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (1, 5));
        assert_eq!(line_and_column(text, 6), (2, 1));
        // "bé" is three bytes: the "=" after it is the fourth character.
        assert_eq!(line_and_column(text, 10), (2, 4));
        assert_eq!(line_and_column(text, text.len()), (3, 1));
        assert_eq!(line_and_column(text, 999), (3, 1));
    }
}
