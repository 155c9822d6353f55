//! The "file is ready" event: a regular file whose write is complete.

use std::time::Duration;

use crate::glob::Glob;

/// When a file counts as ready, per watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyOptions {
    /// How long a file closed after writing must stay untouched.
    pub settle: Duration,
    /// Names of temporary files: they never get a ready event, and a file renamed from one of
    /// them into place is ready at once.
    pub temp_patterns: Vec<Glob>,
}

pub const DEFAULT_TEMP_PATTERNS: [&str; 4] = ["*.part", "*.tmp", "*.crdownload", ".*.swp"];

impl Default for ReadyOptions {
    fn default() -> ReadyOptions {
        ReadyOptions {
            settle: Duration::from_millis(200),
            temp_patterns: DEFAULT_TEMP_PATTERNS
                .iter()
                .map(|pattern| Glob::new(pattern).expect("valid default pattern"))
                .collect(),
        }
    }
}
