//! JSON strings for file names, which are bytes.
//!
//! The valid UTF-8 parts of a name are written as usual and every byte that is not part of
//! valid UTF-8 is written as a lone surrogate escape `\udcXX`, where XX is the byte (0x80 to
//! 0xff): the "surrogateescape" scheme of PEP 383. It is reversible: Python's
//! `os.fsencode(json.loads(line)["name"])` gives back the exact bytes, JavaScript keeps the lone
//! surrogates in its strings, and [`decode_string_literal`] reverses it in Rust.
//!
//! [`event_json`] writes a whole [`Event`] as one JSON object, the format of the command's JSON
//! lines and of every processor that sends or stores events:
//!
//! ```text
//! {"id":7,"mask":256,"maskname":"IN_CREATE","path":"/srv/in","name":"a.txt",
//!  "pathname":"/srv/in/a.txt","dir":false,"wd":1,"cookie":0,"src_pathname":null,
//!  "synthetic":false,"origin":"kernel","time":1764077825.123456789}
//! ```
//!
//! `time` is the seconds since the Unix epoch with nine decimals; `origin` is `kernel`, `scan`,
//! `rescan` or `catchup`; `src_pathname` is the source of a paired move, else `null`.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use crate::event::Event;

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

/// Writes `event` as one JSON object (the keys in the order of the module docs), without a
/// trailing newline.
pub fn event_json(out: &mut Vec<u8>, event: &Event) {
    let mut escaped_path = Vec::with_capacity(event.path.as_os_str().len() + 2);
    json_string(&mut escaped_path, event.path.as_os_str().as_bytes());
    let mut time = Vec::with_capacity(24);
    time_json(&mut time, event.time_ns);
    event_json_parts(out, event, &escaped_path, &time);
}

/// [`event_json`] for a writer that keeps what consecutive events share: `escaped_path` is
/// `event.path` written by [`json_string`], `time` is `event.time_ns` written by [`time_json`].
///
/// Hand-written rather than through `fmt`: this runs for every event, on the reader thread.
pub fn event_json_parts(out: &mut Vec<u8>, event: &Event, escaped_path: &[u8], time: &[u8]) {
    let path = event.path.as_os_str().as_bytes();
    let name = event.name.as_bytes();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, event.id);
    out.extend_from_slice(b",\"mask\":");
    push_u64(out, event.mask.bits().into());
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
    push_i64(out, event.wd.into());
    out.extend_from_slice(b",\"cookie\":");
    push_u64(out, event.cookie.into());
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
    out.push(b'}');
}

/// Nanoseconds since the epoch as seconds with nine decimals, a JSON number.
pub fn time_json(out: &mut Vec<u8>, time_ns: i64) {
    push_i64(out, time_ns.div_euclid(1_000_000_000));
    let mut fraction = time_ns.rem_euclid(1_000_000_000);
    let mut digits = [b'0'; 9];
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    out.push(b'.');
    out.extend_from_slice(&digits);
}

fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut buffer = [0u8; 20];
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&buffer[at..]);
}

fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    push_u64(out, value.unsigned_abs());
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

/// Decodes one JSON string literal, quotes included, as written by [`json_string`] (or any
/// JSON encoder) back to bytes; `None` if it is not a valid string literal.
pub fn decode_string_literal(literal: &str) -> Option<Vec<u8>> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut units: Vec<u16> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buffer = [0; 2];
            units.extend_from_slice(c.encode_utf16(&mut buffer));
            continue;
        }
        let unit = match chars.next()? {
            '"' => b'"' as u16,
            '\\' => b'\\' as u16,
            '/' => b'/' as u16,
            'b' => 8,
            'f' => 12,
            'n' => b'\n' as u16,
            'r' => b'\r' as u16,
            't' => b'\t' as u16,
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                if hex.len() != 4 {
                    return None;
                }
                u16::from_str_radix(&hex, 16).ok()?
            }
            _ => return None,
        };
        units.push(unit);
    }
    Some(decode_surrogateescape(&units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Origin, WatchId};
    use crate::mask::Mask;
    use std::ffi::OsStr;
    use std::path::Path;
    use std::sync::Arc;

    fn event(path: &[u8], name: &[u8]) -> Event {
        Event {
            id: 7,
            mask: Mask::IN_CREATE,
            cookie: 0,
            wd: 1,
            path: Arc::from(Path::new(OsStr::from_bytes(path))),
            name: OsStr::from_bytes(name).to_os_string(),
            src_pathname: None,
            origin: Origin::Kernel,
            time_ns: 1_764_077_825_000_000_042,
            watches: Arc::from([WatchId(0)]),
        }
    }

    fn event_text(event: &Event) -> String {
        let mut out = Vec::new();
        event_json(&mut out, event);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_event_is_one_json_object_with_every_key() {
        assert_eq!(
            event_text(&event(b"/srv/in", b"a \"b\".txt")),
            r#"{"id":7,"mask":256,"maskname":"IN_CREATE","path":"/srv/in","name":"a \"b\".txt","pathname":"/srv/in/a \"b\".txt","dir":false,"wd":1,"cookie":0,"src_pathname":null,"synthetic":false,"origin":"kernel","time":1764077825.000000042}"#
        );
        let mut moved = event(b"/", b"caf\xe9");
        moved.mask = Mask::IN_MOVED_TO | Mask::IN_ISDIR;
        moved.cookie = 9;
        moved.wd = -1;
        moved.src_pathname = Some("/old \\ dir".into());
        moved.origin = Origin::Rescan;
        moved.time_ns = -1;
        moved.id = u64::MAX;
        assert_eq!(
            event_text(&moved),
            r#"{"id":18446744073709551615,"mask":1073741952,"maskname":"IN_MOVED_TO|IN_ISDIR","path":"/","name":"caf\udce9","pathname":"/caf\udce9","dir":true,"wd":-1,"cookie":9,"src_pathname":"/old \\ dir","synthetic":true,"origin":"rescan","time":-1.999999999}"#
        );
        assert_eq!(
            event_text(&event(b"/srv/in", b"")),
            r#"{"id":7,"mask":256,"maskname":"IN_CREATE","path":"/srv/in","name":"","pathname":"/srv/in","dir":false,"wd":1,"cookie":0,"src_pathname":null,"synthetic":false,"origin":"kernel","time":1764077825.000000042}"#
        );
    }

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
        let original: &[u8] = b"caf\xe9-\xff\xfe-ok-\xc3 \"q\" \\ \n";
        let encoded = encode(original);
        assert!(
            encoded.starts_with(r#""caf\udce9-\udcff\udcfe-ok-\udcc3"#),
            "{encoded}"
        );
        assert_eq!(decode_string_literal(&encoded).as_deref(), Some(original));
        assert_eq!(
            decode_string_literal(r#""caf\u00e9""#).as_deref(),
            Some("café".as_bytes())
        );
        assert_eq!(decode_string_literal("no quotes"), None);
        assert_eq!(decode_string_literal("\"bad \\q\""), None);
    }
}
