//! Writing events as JSON lines (names escaped as [`inotifier_core::json`] says) or text.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use inotifier_core::Event;
use inotifier_core::json::json_string;

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
            format_time(&mut self.formatted_time, event.time_ns);
            self.last_time_ns = Some(event.time_ns);
        }
        write_json(
            &mut self.out,
            event,
            &self.escaped_path,
            &self.formatted_time,
        );
    }
}

/// Seconds since the epoch with nine decimals, a JSON number.
fn format_time(out: &mut Vec<u8>, time_ns: i64) {
    let mut numbers = itoa::Buffer::new();
    out.extend_from_slice(numbers.format(time_ns.div_euclid(1_000_000_000)).as_bytes());
    let digits = numbers.format(time_ns.rem_euclid(1_000_000_000));
    out.push(b'.');
    out.extend(std::iter::repeat_n(b'0', 9 - digits.len()));
    out.extend_from_slice(digits.as_bytes());
}

/// Hand-written rather than through `fmt`: this runs for every event, on the reader thread.
/// `escaped_path` is `event.path` as a JSON string, `time` the formatted `event.time_ns`.
fn write_json(out: &mut Vec<u8>, event: &Event, escaped_path: &[u8], time: &[u8]) {
    let path = event.path.as_os_str().as_bytes();
    let name = event.name.as_bytes();
    let mut numbers = itoa::Buffer::new();
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(numbers.format(event.id).as_bytes());
    out.extend_from_slice(b",\"mask\":");
    out.extend_from_slice(numbers.format(event.mask.bits()).as_bytes());
    out.extend_from_slice(b",\"maskname\":\"");
    match event.mask.static_name() {
        Some(maskname) => out.extend_from_slice(maskname.as_bytes()),
        None => out.extend_from_slice(event.mask.name().as_bytes()),
    }
    out.extend_from_slice(b"\",\"path\":");
    out.extend_from_slice(escaped_path);
    out.extend_from_slice(b",\"name\":");
    json_string(out, name);
    out.extend_from_slice(b",\"pathname\":");
    if name.is_empty() {
        out.extend_from_slice(escaped_path);
    } else {
        // Escaping the parts one by one equals escaping them joined: `/` cannot continue an
        // incomplete UTF-8 sequence. The quotes in the middle are dropped.
        out.extend_from_slice(&escaped_path[..escaped_path.len() - 1]);
        if !path.ends_with(b"/") {
            out.push(b'/');
        }
        let name_start = out.len();
        json_string(out, name);
        out.remove(name_start);
    }
    out.extend_from_slice(if event.dir() {
        b",\"dir\":true,\"wd\":"
    } else {
        b",\"dir\":false,\"wd\":"
    });
    out.extend_from_slice(numbers.format(event.wd).as_bytes());
    out.extend_from_slice(b",\"cookie\":");
    out.extend_from_slice(numbers.format(event.cookie).as_bytes());
    out.extend_from_slice(b",\"src_pathname\":");
    match &event.src_pathname {
        Some(src) => json_string(out, src.as_os_str().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if event.synthetic() {
        b",\"synthetic\":true,\"origin\":\""
    } else {
        b",\"synthetic\":false,\"origin\":\""
    });
    out.extend_from_slice(event.origin.as_str().as_bytes());
    out.extend_from_slice(b"\",\"time\":");
    out.extend_from_slice(time);
    out.extend_from_slice(b"}\n");
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
    text_bytes(
        out,
        &pathname_bytes(event.path.as_os_str().as_bytes(), event.name.as_bytes()),
    );
    if let Some(src) = &event.src_pathname {
        out.extend_from_slice(b" from ");
        text_bytes(out, src.as_os_str().as_bytes());
    }
    if event.synthetic() {
        let _ = write!(out, " ({})", event.origin.as_str());
    }
    out.push(b'\n');
}

/// Printable and one line: control characters and bytes that are not UTF-8 as `\xNN`, a
/// backslash as `\\`.
fn text_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                c if c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => {
                    let mut buffer = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
            }
        }
        for &byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
}
