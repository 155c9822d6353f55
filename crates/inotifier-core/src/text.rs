//! Names as one printable line, for logs and text output.

use std::io::Write;

/// Appends `bytes` printable and on one line: control characters and bytes that are not UTF-8
/// as `\xNN`, a backslash as `\\`. Not meant to be reversed (JSON output is lossless).
pub fn printable(out: &mut Vec<u8>, bytes: &[u8]) {
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
