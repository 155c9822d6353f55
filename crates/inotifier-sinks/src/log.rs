//! The `log` processor: one human-readable line per event on the daemon's standard output.
//!
//! ```text
//! 2026-11-25T13:37:05.123Z IN_CLOSE_WRITE /srv/in/report.pdf id=41
//! 2026-11-25T13:37:05.131Z IN_MOVED_TO /srv/in/b.txt (from /srv/in/a.txt) id=42
//! 2026-11-25T13:37:06.004Z IN_CREATE|IN_ISDIR /srv/in/new id=43 origin=scan
//! ```
//!
//! Each line is the time the event was read (RFC 3339, UTC, milliseconds), its maskname, its
//! pathname, `(from SRC)` for a move paired with its source, its id, and `origin=scan` or
//! `origin=rescan` for an event the engine synthesized. Control characters and bytes that are
//! not UTF-8 are written as `\xNN` and a backslash as `\\`, so every event is one printable
//! line (use `jsonl` for names that must come back byte for byte).
//!
//! A daemonized inotifier writes its standard output to the file of the `stdout` setting.
//!
//! # Options
//! None: `{}`. Any option is an error.
//!
//! # Failures
//! A failed write (a full disk under the stdout file) is a retryable failure.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use inotifier_core::Event;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::BuildError;
use crate::text::{escaped, pathname_bytes, rfc3339};
use crate::{ProcessError, Processor, options};

pub(crate) const NAME: &str = "log";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogOptions {}

/// Writes one line per event; see the [module docs](self).
pub struct LogProcessor {
    out: Mutex<Box<dyn Write + Send>>,
}

impl LogProcessor {
    pub(crate) fn build(options: &Map<String, Value>) -> Result<LogProcessor, BuildError> {
        options::parse::<LogOptions>(NAME, options)?;
        Ok(LogProcessor::with_writer(std::io::stdout()))
    }

    pub fn validate(options: &Map<String, Value>) -> Result<(), BuildError> {
        options::parse::<LogOptions>(NAME, options).map(drop)
    }

    /// A log processor writing to `out` instead of standard output (each line is one
    /// `write_all`, then a flush).
    pub fn with_writer(out: impl Write + Send + 'static) -> LogProcessor {
        LogProcessor {
            out: Mutex::new(Box::new(out)),
        }
    }
}

/// The line for `event`, newline included.
pub fn format_line(out: &mut Vec<u8>, event: &Event) {
    rfc3339(out, event.time_ns);
    out.push(b' ');
    match event.mask.static_name() {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => out.extend_from_slice(event.mask.name().as_bytes()),
    }
    out.push(b' ');
    let mut pathname = Vec::with_capacity(event.path.as_os_str().len() + event.name.len() + 1);
    pathname_bytes(event, &mut pathname);
    escaped(out, &pathname);
    if let Some(src) = &event.src_pathname {
        out.extend_from_slice(b" (from ");
        escaped(out, src.as_os_str().as_bytes());
        out.push(b')');
    }
    let _ = write!(out, " id={}", event.id);
    if event.synthetic() {
        let _ = write!(out, " origin={}", event.origin.as_str());
    }
    out.push(b'\n');
}

impl Processor for LogProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        let mut line = Vec::with_capacity(128);
        format_line(&mut line, event);
        // A worker that panicked while holding the lock left no partial state behind: a line
        // is written whole or not at all, so the writer is still usable.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        out.write_all(&line)
            .and_then(|()| out.flush())
            .map_err(|error| {
                ProcessError::retryable(format!("log: cannot write the event's line: {error}"))
            })
    }

    fn close(&self) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = out.flush();
    }
}
