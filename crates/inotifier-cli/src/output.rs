//! Writing events as JSON lines (names escaped as [`inotifier_core::json`] says) or text.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use inotifier_core::Event;
use inotifier_core::json::{event_json_parts, json_string, time_json};
use inotifier_core::text::printable;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// One human-readable line per event.
    Text,
}

/// Formats batches of events, keeping what consecutive events share: the escaped directory
/// path (most events of a batch come from one directory) and the formatted time (one per batch).
pub struct EventWriter {
    format: Format,
    out: Vec<u8>,
    last_path: Option<Arc<Path>>,
    escaped_path: Vec<u8>,
    last_time_ns: Option<i64>,
    formatted_time: Vec<u8>,
}

impl EventWriter {
    pub fn new(format: Format) -> EventWriter {
        EventWriter {
            format,
            out: Vec::with_capacity(64 * 1024),
            last_path: None,
            escaped_path: Vec::new(),
            last_time_ns: None,
            formatted_time: Vec::new(),
        }
    }

    /// The lines for `batch`, ready to be written at once.
    pub fn write_batch(&mut self, batch: &[Event]) -> &[u8] {
        self.out.clear();
        for event in batch {
            match self.format {
                Format::Json => self.write_json(event),
                Format::Text => write_text(&mut self.out, event),
            }
        }
        &self.out
    }

    fn write_json(&mut self, event: &Event) {
        if self
            .last_path
            .as_ref()
            .is_none_or(|last| !Arc::ptr_eq(last, &event.path))
        {
            self.escaped_path.clear();
            json_string(&mut self.escaped_path, event.path.as_os_str().as_bytes());
            self.last_path = Some(event.path.clone());
        }
        if self.last_time_ns != Some(event.time_ns) {
            self.formatted_time.clear();
            time_json(&mut self.formatted_time, event.time_ns);
            self.last_time_ns = Some(event.time_ns);
        }
        event_json_parts(
            &mut self.out,
            event,
            &self.escaped_path,
            &self.formatted_time,
        );
        self.out.push(b'\n');
    }
}

fn pathname_bytes(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut joined = Vec::with_capacity(path.len() + 1 + name.len());
    joined.extend_from_slice(path);
    if !name.is_empty() {
        if !path.ends_with(b"/") {
            joined.push(b'/');
        }
        joined.extend_from_slice(name);
    }
    joined
}

fn write_text(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(event.mask.name().as_bytes());
    out.push(b' ');
    printable(
        out,
        &pathname_bytes(event.path.as_os_str().as_bytes(), event.name.as_bytes()),
    );
    if let Some(src) = &event.src_pathname {
        out.extend_from_slice(b" from ");
        printable(out, src.as_os_str().as_bytes());
    }
    if event.synthetic() {
        let _ = write!(out, " ({})", event.origin.as_str());
    }
    out.push(b'\n');
}
