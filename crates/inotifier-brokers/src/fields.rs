//! Event fields by name, as JSON: what a Celery task's arguments and a stream entry's fields
//! are made of.

use std::os::unix::ffi::OsStrExt;

use inotifier_core::Event;
use inotifier_core::json::{event_json, json_string, time_json};

/// A field of an event, or the whole event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The whole event as one JSON object (the format of `jsonl` and `webhook`).
    Event,
    Id,
    Pathname,
    Path,
    Name,
    Mask,
    Maskname,
    Dir,
    Cookie,
    SrcPathname,
    Origin,
    Time,
    /// The sending host's `source` name.
    Source,
}

pub const NAMES: &[(&str, Field)] = &[
    ("event", Field::Event),
    ("id", Field::Id),
    ("pathname", Field::Pathname),
    ("path", Field::Path),
    ("name", Field::Name),
    ("mask", Field::Mask),
    ("maskname", Field::Maskname),
    ("dir", Field::Dir),
    ("cookie", Field::Cookie),
    ("src_pathname", Field::SrcPathname),
    ("origin", Field::Origin),
    ("time", Field::Time),
    ("source", Field::Source),
];

impl Field {
    /// The field called `name`; the error lists the valid names.
    pub fn parse(name: &str) -> Result<Field, String> {
        NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, field)| field)
            .ok_or_else(|| {
                format!(
                    "unknown event field {name:?}: expected one of {}",
                    NAMES
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Writes the field's JSON value. Names that are not UTF-8 carry `\udcXX` escapes, as in
    /// [`inotifier_core::json`].
    pub fn write_json(self, out: &mut Vec<u8>, event: &Event, source: &str) {
        match self {
            Field::Event => event_json(out, event),
            Field::Id => out.extend_from_slice(event.id.to_string().as_bytes()),
            Field::Pathname => json_string(out, event.pathname().as_os_str().as_bytes()),
            Field::Path => json_string(out, event.path.as_os_str().as_bytes()),
            Field::Name => json_string(out, event.name.as_bytes()),
            Field::Mask => out.extend_from_slice(event.mask.bits().to_string().as_bytes()),
            Field::Maskname => json_string(out, event.maskname().as_bytes()),
            Field::Dir => out.extend_from_slice(if event.dir() { b"true" } else { b"false" }),
            Field::Cookie => out.extend_from_slice(event.cookie.to_string().as_bytes()),
            Field::SrcPathname => match &event.src_pathname {
                Some(src) => json_string(out, src.as_os_str().as_bytes()),
                None => out.extend_from_slice(b"null"),
            },
            Field::Origin => json_string(out, event.origin.as_str().as_bytes()),
            Field::Time => time_json(out, event.time_ns),
            Field::Source => json_string(out, source.as_bytes()),
        }
    }

    /// The field as text, for a stream entry's field value: strings without their quotes,
    /// names byte for byte, the whole event as its JSON.
    pub fn write_text(self, out: &mut Vec<u8>, event: &Event, source: &str) {
        match self {
            Field::Pathname => out.extend_from_slice(event.pathname().as_os_str().as_bytes()),
            Field::Path => out.extend_from_slice(event.path.as_os_str().as_bytes()),
            Field::Name => out.extend_from_slice(event.name.as_bytes()),
            Field::Maskname => out.extend_from_slice(event.maskname().as_bytes()),
            Field::SrcPathname => {
                if let Some(src) = &event.src_pathname {
                    out.extend_from_slice(src.as_os_str().as_bytes());
                }
            }
            Field::Origin => out.extend_from_slice(event.origin.as_str().as_bytes()),
            Field::Source => out.extend_from_slice(source.as_bytes()),
            other => other.write_json(out, event, source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inotifier_core::{Mask, Origin, WatchId};
    use std::ffi::OsStr;
    use std::path::Path;
    use std::sync::Arc;

    pub(crate) fn event() -> Event {
        Event {
            id: 7,
            mask: Mask::IN_CLOSE_WRITE,
            cookie: 0,
            wd: 1,
            path: Arc::from(Path::new("/srv/in")),
            name: OsStr::from_bytes(b"caf\xe9 \"1\".txt").to_os_string(),
            src_pathname: None,
            origin: Origin::Kernel,
            time_ns: 1_764_077_825_123_456_789,
            watches: Arc::from([WatchId(0)]),
        }
    }

    fn json(field: &str) -> String {
        let mut out = Vec::new();
        Field::parse(field)
            .unwrap()
            .write_json(&mut out, &event(), "web-1");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_json_values() {
        assert_eq!(json("id"), "7");
        assert_eq!(json("pathname"), r#""/srv/in/caf\udce9 \"1\".txt""#);
        assert_eq!(json("maskname"), r#""IN_CLOSE_WRITE""#);
        assert_eq!(json("dir"), "false");
        assert_eq!(json("src_pathname"), "null");
        assert_eq!(json("time"), "1764077825.123456789");
        assert_eq!(json("source"), r#""web-1""#);
        assert!(json("event").starts_with(r#"{"id":7,"mask":8,"maskname":"IN_CLOSE_WRITE""#));
        let mut text = Vec::new();
        Field::Name.write_text(&mut text, &event(), "web-1");
        assert_eq!(text, b"caf\xe9 \"1\".txt");
        let error = Field::parse("file").unwrap_err();
        assert!(error.starts_with("unknown event field \"file\": expected one of event, id"));
    }
}
