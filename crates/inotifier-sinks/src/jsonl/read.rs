//! Reading back the lines the `jsonl` processor (and `inotifier watch`) writes, for
//! `inotifier journal import`: events captured to a file can be handed to a processor later.
//!
//! Names are decoded from the JSON string literal as written, so that the `\udcXX` escapes of
//! bytes that are not UTF-8 give back the exact bytes (a JSON parser would refuse the lone
//! surrogates, or replace them).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotifier_core::json::decode_string_literal;
use inotifier_core::{Event, Mask, Origin};
use serde_json::value::RawValue;

/// The event of one line. `id` is taken as written (0 when absent): an importer numbers the
/// events itself. `mask`, `path` and `name` are required; `cookie`, `wd` default to 0,
/// `origin` to `kernel` and `time` to 0. `watches` is empty.
pub fn parse_line(line: &str) -> Result<Event, String> {
    let fields: HashMap<&str, &RawValue> =
        serde_json::from_str(line).map_err(|error| format!("not a JSON object: {error}"))?;
    let raw = |key: &str| fields.get(key).map(|value| value.get().trim());
    let required = |key: &str| raw(key).ok_or_else(|| format!("no `{key}`"));
    let bytes = |key: &str, text: &str| {
        decode_string_literal(text).ok_or_else(|| format!("`{key}` is not a string"))
    };
    let number = |key: &str, default: i64| -> Result<i64, String> {
        match raw(key) {
            None | Some("null") => Ok(default),
            Some(text) => text
                .parse::<i64>()
                .map_err(|_| format!("`{key}` is {text}, not an integer")),
        }
    };
    let mask = u32::try_from(number("mask", -1)?)
        .map_err(|_| "`mask` is missing or not a 32-bit mask".to_string())?;
    let path = bytes("path", required("path")?)?;
    let name = bytes("name", required("name")?)?;
    let src_pathname = match raw("src_pathname") {
        None | Some("null") => None,
        Some(text) => Some(PathBuf::from(OsString::from_vec(bytes(
            "src_pathname",
            text,
        )?))),
    };
    let origin = match raw("origin") {
        None | Some("null") | Some("\"kernel\"") => Origin::Kernel,
        Some("\"scan\"") => Origin::Scan,
        Some("\"rescan\"") => Origin::Rescan,
        Some("\"catchup\"") => Origin::CatchUp,
        Some(other) => {
            return Err(format!(
                "`origin` is {other}: kernel, scan, rescan or catchup"
            ));
        }
    };
    let time_ns = match raw("time") {
        None | Some("null") => 0,
        Some(text) => parse_seconds(text).ok_or_else(|| format!("`time` is {text}"))?,
    };
    Ok(Event {
        id: u64::try_from(number("id", 0)?).unwrap_or(0),
        mask: Mask(mask),
        cookie: u32::try_from(number("cookie", 0)?).map_err(|_| "`cookie` out of range")?,
        wd: i32::try_from(number("wd", 0)?).map_err(|_| "`wd` out of range")?,
        path: Arc::from(Path::new(&OsString::from_vec(path))),
        name: OsString::from_vec(name),
        src_pathname,
        origin,
        time_ns,
        watches: Arc::from([]),
    })
}

/// `1764077825.000000042` to nanoseconds, exactly (through f64 the last digits would be
/// lost). Any other JSON number goes through f64.
fn parse_seconds(text: &str) -> Option<i64> {
    if let Some((whole, fraction)) = text.split_once('.')
        && !whole.starts_with('-')
        && fraction.len() <= 9
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && let Ok(seconds) = whole.parse::<i64>()
    {
        let nanos: i64 = format!("{fraction:0<9}").parse().ok()?;
        return seconds.checked_mul(1_000_000_000)?.checked_add(nanos);
    }
    let seconds: f64 = text.parse().ok()?;
    seconds.is_finite().then(|| (seconds * 1e9).round() as i64)
}

/// Every event of a JSON-lines file, or why not: the file cannot be read, or `FILE:LINE: why`
/// for the first line that is not an event. Blank lines are skipped.
pub fn read_file(file: &Path) -> Result<Vec<Event>, String> {
    use std::io::BufRead;
    let opened =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut events = Vec::new();
    for (index, line) in std::io::BufReader::new(opened).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event =
            parse_line(&line).map_err(|why| format!("{}:{}: {why}", file.display(), index + 1))?;
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use inotifier_core::json::event_json;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn what_event_json_writes_reads_back_exactly() {
        let event = Event {
            id: 42,
            mask: Mask::IN_MOVED_TO,
            cookie: 7,
            wd: 3,
            path: Arc::from(Path::new("/srv/in \"q\"")),
            name: OsString::from_vec(b"caf\xe9\n.txt".to_vec()),
            src_pathname: Some(PathBuf::from("/srv/in/old.part")),
            origin: Origin::Rescan,
            time_ns: 1_764_077_825_000_000_042,
            watches: Arc::from([]),
        };
        let mut line = Vec::new();
        event_json(&mut line, &event);
        let parsed = parse_line(std::str::from_utf8(&line).unwrap()).unwrap();
        assert_eq!(parsed, event);
        assert_eq!(parsed.name.as_bytes(), b"caf\xe9\n.txt");
    }

    #[test]
    fn missing_and_bad_fields_are_named() {
        assert!(parse_line("[1]").unwrap_err().contains("not a JSON object"));
        assert!(
            parse_line(r#"{"path":"/a","name":"b"}"#)
                .unwrap_err()
                .contains("mask")
        );
        assert!(
            parse_line(r#"{"mask":2,"name":"b"}"#)
                .unwrap_err()
                .contains("`path`")
        );
        assert!(
            parse_line(r#"{"mask":2,"path":"/a","name":3}"#)
                .unwrap_err()
                .contains("`name` is not a string")
        );
        assert!(
            parse_line(r#"{"mask":2,"path":"/a","name":"b","origin":"x"}"#)
                .unwrap_err()
                .contains("origin")
        );
        let minimal = parse_line(r#"{"mask":2,"path":"/a","name":"b"}"#).unwrap();
        assert_eq!(
            (minimal.id, minimal.origin, minimal.time_ns),
            (0, Origin::Kernel, 0)
        );
        assert_eq!(parse_seconds("1.5"), Some(1_500_000_000));
        assert_eq!(parse_seconds("2"), Some(2_000_000_000));
    }
}
