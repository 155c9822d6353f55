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

fn write_json(out: &mut Vec<u8>, event: &Event) {
    use std::os::unix::ffi::OsStrExt;
    let path = event.path.as_os_str().as_bytes();
    let name = event.name.as_bytes();
    let _ = write!(
        out,
        "{{\"id\":{},\"mask\":{},\"maskname\":\"{}\",\"path\":",
        event.id,
        event.mask.bits(),
        event.mask.name()
    );
    json_string(out, path);
    out.extend_from_slice(b",\"name\":");
    json_string(out, name);
    out.extend_from_slice(b",\"pathname\":");
    json_string(out, &pathname_bytes(path, name));
    let _ = write!(
        out,
        ",\"dir\":{},\"wd\":{},\"cookie\":{},\"src_pathname\":",
        event.dir(),
        event.wd,
        event.cookie
    );
    match &event.src_pathname {
        Some(src) => json_string(out, src.as_os_str().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    let _ = writeln!(
        out,
        ",\"synthetic\":{},\"origin\":\"{}\",\"time\":{}.{:09}}}",
        event.synthetic(),
        event.origin.as_str(),
        event.time_ns.div_euclid(1_000_000_000),
        event.time_ns.rem_euclid(1_000_000_000)
    );
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
