//! Python's `repr` of JSON values as Celery's `saferepr` writes it, for the `argsrepr` and
//! `kwargsrepr` headers that Celery shows in its logs and monitoring tools: `[{'id': 7}]`, as
//! Celery's own client would send.

use inotifier_core::json::decode_string_literal;

/// Celery cuts `argsrepr` at this many characters (its `argsrepr_maxsize`).
pub const MAX_CHARS: usize = 1024;

/// `repr()` of the Python object that `json.loads(json)` would make, cut at [`MAX_CHARS`]
/// characters as Celery's `saferepr` does. Works on the JSON text rather than a parsed value,
/// so that objects keep their key order (as a Python dict does) and names that are not
/// UTF-8 (`\udcXX` escapes) show as Python shows them. `json` is JSON that inotifier wrote.
pub fn repr(json: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = json;
    while let Some((&byte, after)) = rest.split_first() {
        match byte {
            b'"' => {
                let end = string_end(after);
                let literal = String::from_utf8_lossy(&after[..end]);
                match decode_string_literal(&format!("\"{literal}\"")) {
                    Some(bytes) => string(&mut out, &bytes),
                    None => out.push_str(&literal),
                }
                rest = after.get(end + 1..).unwrap_or_default();
                continue;
            }
            b',' => out.push_str(", "),
            b':' => out.push_str(": "),
            b'[' | b']' | b'{' | b'}' => out.push(byte as char),
            b't' if after.starts_with(b"rue") => {
                out.push_str("True");
                rest = &after[3..];
                continue;
            }
            b'f' if after.starts_with(b"alse") => {
                out.push_str("False");
                rest = &after[4..];
                continue;
            }
            b'n' if after.starts_with(b"ull") => {
                out.push_str("None");
                rest = &after[3..];
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let end = rest
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(rest.len());
                let number = String::from_utf8_lossy(&rest[..end]);
                let float = number.contains(['.', 'e', 'E']);
                match number.parse::<f64>() {
                    Ok(value) if float => out.push_str(&float_repr(value)),
                    _ => out.push_str(&number),
                }
                rest = &rest[end..];
                continue;
            }
            _ => {}
        }
        rest = after;
    }
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS - 3).collect();
        out.push_str("...");
    }
    out
}

/// Where the string literal starting at `text` (after its opening quote) ends.
fn string_end(text: &[u8]) -> usize {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    text.len()
}

/// Python's float repr: the shortest round-trip digits, always with a `.` or an exponent.
fn float_repr(float: f64) -> String {
    if float.is_nan() {
        return "nan".into();
    }
    if float.is_infinite() {
        return if float > 0.0 { "inf" } else { "-inf" }.into();
    }
    let magnitude = float.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        // Python: 1e+16, 1.5e-05.
        let text = format!("{float:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let text = format!("{float}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

/// A string as Celery's `saferepr` writes it: in single quotes, with `\'` for a quote and
/// nothing else escaped. Bytes that are not UTF-8 show as `\udcXX`, the text of the lone
/// surrogates Python's file system decoding gives them.
fn string(out: &mut String, bytes: &[u8]) {
    out.push('\'');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\'' {
                out.push('\\');
            }
            out.push(c);
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\udc{byte:02x}"));
        }
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(json: &str) -> String {
        repr(json.as_bytes())
    }

    #[test]
    fn reprs_read_as_python_would_print_them() {
        assert_eq!(
            py(r#"[{"id":7,"pathname":"/srv/a"}]"#),
            "[{'id': 7, 'pathname': '/srv/a'}]"
        );
        assert_eq!(py(r#"{"k":1}"#), "{'k': 1}");
        assert_eq!(
            py("[null,true,false,1.5,1764077825.123456789,1e16,0.00001,-3]"),
            "[None, True, False, 1.5, 1764077825.1234567, 1e+16, 1e-05, -3]"
        );
        assert_eq!(py(r#""it's""#), "'it\\'s'");
        assert_eq!(
            py(r#""a'b\"c\n\u0001é\udce9""#),
            "'a\\'b\"c\n\u{1}é\\udce9'"
        );
        let long = py(&format!("\"{}\"", "x".repeat(2000)));
        assert_eq!(long.chars().count(), MAX_CHARS);
        assert!(long.ends_with("..."));
    }
}
