//! Writing events as JSON lines or text.
//!
//! File names are bytes. In JSON, the valid UTF-8 parts of a name are written as usual and every
//! byte that is not part of valid UTF-8 is written as a lone surrogate escape `\udcXX`, where XX
//! is the byte (0x80 to 0xff): the "surrogateescape" scheme of PEP 383. It is reversible:
//! Python's `os.fsencode(json.loads(line)["name"])` gives back the exact bytes, and so does
//! [`decode_surrogateescape`].

use std::io::Write;

use inotifier_core::Event;

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

/// A JSON string of `bytes`, with the bytes that are not UTF-8 as `\udcXX`.
pub fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &byte) in valid.iter().enumerate() {
            let escape: Option<&[u8]> = match byte {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                0x00..=0x1f => None,
                _ => continue,
            };
            out.extend_from_slice(&valid[start..i]);
            match escape {
                Some(escape) => out.extend_from_slice(escape),
                None => {
                    let _ = write!(out, "\\u{byte:04x}");
                }
            }
            start = i + 1;
        }
        out.extend_from_slice(&valid[start..]);
        for &byte in chunk.invalid() {
            let _ = write!(out, "\\udc{byte:02x}");
        }
    }
    out.push(b'"');
}

/// Reverses the surrogateescape of a decoded JSON string whose lone surrogates were kept as
/// `U+DC80..U+DCFF` code units (as Python and JavaScript keep them).
pub fn decode_surrogateescape(units: &[u16]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(units.len());
    for decoded in char::decode_utf16(units.iter().copied()) {
        match decoded {
            Ok(c) => {
                let mut buffer = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
            Err(error) => {
                let unit = error.unpaired_surrogate();
                bytes.push((unit & 0xff) as u8);
            }
        }
    }
    bytes
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

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        json_string(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_strings_escape_what_json_requires() {
        assert_eq!(encode(b"plain"), "\"plain\"");
        assert_eq!(encode(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(encode(b"tab\there\nnl\x01"), r#""tab\there\nnl\u0001""#);
        assert_eq!(encode("café ☕".as_bytes()), "\"café ☕\"");
    }

    #[test]
    fn invalid_utf8_round_trips_through_surrogate_escapes() {
        let original: &[u8] = b"caf\xe9-\xff\xfe-ok-\xc3";
        let encoded = encode(original);
        assert_eq!(encoded, r#""caf\udce9-\udcff\udcfe-ok-\udcc3""#);
        // Decode the JSON escapes to UTF-16 units, as Python's json module does.
        let inner = &encoded[1..encoded.len() - 1];
        let mut units = Vec::new();
        let mut rest = inner;
        while !rest.is_empty() {
            if let Some(hex) = rest.strip_prefix("\\u") {
                units.push(u16::from_str_radix(&hex[..4], 16).unwrap());
                rest = &hex[4..];
            } else {
                let c = rest.chars().next().unwrap();
                let mut buffer = [0; 2];
                units.extend_from_slice(c.encode_utf16(&mut buffer));
                rest = &rest[c.len_utf8()..];
            }
        }
        assert_eq!(decode_surrogateescape(&units), original);
    }
}
