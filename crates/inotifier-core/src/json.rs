//! JSON strings for file names, which are bytes.
//!
//! The valid UTF-8 parts of a name are written as usual and every byte that is not part of
//! valid UTF-8 is written as a lone surrogate escape `\udcXX`, where XX is the byte (0x80 to
//! 0xff): the "surrogateescape" scheme of PEP 383. It is reversible: Python's
//! `os.fsencode(json.loads(line)["name"])` gives back the exact bytes, JavaScript keeps the lone
//! surrogates in its strings, and [`decode_string_literal`] reverses it in Rust.

use std::io::Write;

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
