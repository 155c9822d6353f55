//! Writing events as JSON lines (names escaped as [`inotifier_core::json`] says) or text.

use std::io::Write;

use inotifier_core::Event;
use inotifier_core::json::json_string;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// One human-readable line per event.
    Text,
}

pub fn write_event(out: &mut Vec<u8>, event: &Event, format: Format) {
    match format {
        Format::Json => write_json(out, event),
        Format::Text => write_text(out, event),
    }
}

/// Hand-written rather than through `fmt`: this runs for every event, on the reader thread.
fn write_json(out: &mut Vec<u8>, event: &Event) {
    use std::os::unix::ffi::OsStrExt;
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
    json_string(out, path);
    out.extend_from_slice(b",\"name\":");
    json_string(out, name);
    out.extend_from_slice(b",\"pathname\":");
    if name.is_empty() {
        json_string(out, path);
    } else {
        // Escaping the parts one by one equals escaping them joined: `/` cannot continue an
        // incomplete UTF-8 sequence.
        json_string(out, path);
        out.pop();
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
    out.extend_from_slice(
        numbers
            .format(event.time_ns.div_euclid(1_000_000_000))
            .as_bytes(),
    );
    let nanos = event.time_ns.rem_euclid(1_000_000_000) as u32;
    let digits = numbers.format(nanos);
    out.push(b'.');
    out.extend(std::iter::repeat_n(b'0', 9 - digits.len()));
    out.extend_from_slice(digits.as_bytes());
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
    use std::os::unix::ffi::OsStrExt;
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
