//! Event fields as bytes and human-readable text: RFC 3339 times, pathnames, escaped names.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use inotifier_core::Event;

/// `path/name` as bytes, or `path` alone for an event about the watched object itself: the
/// exact bytes of [`Event::pathname`], without allocating a `PathBuf` first.
pub(crate) fn pathname_bytes(event: &Event, out: &mut Vec<u8>) {
    let path = event.path.as_os_str().as_bytes();
    let name = event.name.as_bytes();
    out.extend_from_slice(path);
    if !name.is_empty() {
        if !path.ends_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(name);
    }
}

/// `time_ns` (nanoseconds since the Unix epoch) as RFC 3339 in UTC with milliseconds:
/// `2026-11-25T13:37:05.123Z`.
pub(crate) fn rfc3339(out: &mut Vec<u8>, time_ns: i64) {
    let seconds = time_ns.div_euclid(1_000_000_000);
    let millis = time_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) use inotifier_core::text::printable as escaped;

#[cfg(test)]
mod tests {
    use super::*;

    fn time(ns: i64) -> String {
        let mut out = Vec::new();
        rfc3339(&mut out, ns);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_764_077_825_123_456_789), "2025-11-25T13:37:05.123Z");
        assert_eq!(time(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(time(4_107_542_399_000_000_000), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn escaping_keeps_one_printable_line() {
        let mut out = Vec::new();
        escaped(&mut out, b"a\nb\\c\xff d\x7f \xc3\xa9");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\x0ab\\\\c\\xff d\\x7f é"
        );
    }
}
