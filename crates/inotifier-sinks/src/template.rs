//! Argument templates: text with `{placeholder}`s replaced by an event's fields, byte for
//! byte.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use inotifier_core::Event;

use crate::text::pathname_bytes;

/// An event field a template can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Pathname,
    Path,
    Name,
    Maskname,
    SrcPathname,
    Id,
    Mask,
    Origin,
}

/// Every placeholder, in the order the docs list them.
const PLACEHOLDERS: &[(&str, Field)] = &[
    ("pathname", Field::Pathname),
    ("path", Field::Path),
    ("name", Field::Name),
    ("maskname", Field::Maskname),
    ("src_pathname", Field::SrcPathname),
    ("id", Field::Id),
    ("mask", Field::Mask),
    ("origin", Field::Origin),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// One argument: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `{name}` placeholders; `{{` and `}}` stand for literal braces. The error says
    /// what is wrong and what is valid.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(format!(
                    "a lone `}}` in {text:?}: write `}}}}` for a literal brace"
                ));
            } else {
                let Some(end) = tail.find('}') else {
                    return Err(format!(
                        "an unclosed `{{` in {text:?}: write `{{{{` for a literal brace"
                    ));
                };
                let name = &tail[1..end];
                let Some(&(_, field)) = PLACEHOLDERS.iter().find(|(known, _)| *known == name)
                else {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}` in {text:?}: expected one of {}",
                        placeholder_list()
                    ));
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Field(field));
                rest = &tail[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The argument for `event`: the exact bytes of its fields, whatever they are.
    pub fn render(&self, event: &Event) -> OsString {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Field(field) => field_bytes(*field, event, &mut out),
            }
        }
        OsString::from_vec(out)
    }

    /// Like [`Template::render`], with each placeholder's bytes written by `escape` (literal
    /// text is kept as it is): for a destination where some bytes of a field are not allowed,
    /// such as a NATS subject.
    pub fn render_escaped(&self, event: &Event, escape: impl Fn(&[u8], &mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        let mut value = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Field(field) => {
                    value.clear();
                    field_bytes(*field, event, &mut value);
                    escape(&value, &mut out);
                }
            }
        }
        out
    }
}

/// `{pathname}, {path}, ...`
fn placeholder_list() -> String {
    PLACEHOLDERS
        .iter()
        .map(|(name, _)| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn field_bytes(field: Field, event: &Event, out: &mut Vec<u8>) {
    match field {
        Field::Pathname => pathname_bytes(event, out),
        Field::Path => out.extend_from_slice(event.path.as_os_str().as_bytes()),
        Field::Name => out.extend_from_slice(event.name.as_bytes()),
        Field::Maskname => match event.mask.static_name() {
            Some(name) => out.extend_from_slice(name.as_bytes()),
            None => out.extend_from_slice(event.mask.name().as_bytes()),
        },
        Field::SrcPathname => {
            if let Some(src) = &event.src_pathname {
                out.extend_from_slice(src.as_os_str().as_bytes());
            }
        }
        Field::Id => out.extend_from_slice(event.id.to_string().as_bytes()),
        Field::Mask => out.extend_from_slice(event.mask.bits().to_string().as_bytes()),
        Field::Origin => out.extend_from_slice(event.origin.as_str().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inotifier_core::{Mask, Origin, WatchId};
    use std::ffi::OsStr;
    use std::path::Path;
    use std::sync::Arc;

    fn event() -> Event {
        Event {
            id: 12,
            mask: Mask::IN_MOVED_TO,
            cookie: 5,
            wd: 1,
            path: Arc::from(Path::new("/srv/in")),
            name: OsStr::from_bytes(b"caf\xe9 {x}.txt").to_os_string(),
            src_pathname: Some("/srv/old name".into()),
            origin: Origin::Scan,
            time_ns: 0,
            watches: Arc::from([WatchId(0)]),
        }
    }

    fn render(text: &str) -> Vec<u8> {
        Template::parse(text).unwrap().render(&event()).into_vec()
    }

    #[test]
    fn placeholders_are_replaced_byte_for_byte() {
        assert_eq!(render("{pathname}"), b"/srv/in/caf\xe9 {x}.txt");
        assert_eq!(render("--file={name}!"), b"--file=caf\xe9 {x}.txt!");
        assert_eq!(render("{path}"), b"/srv/in");
        assert_eq!(render("{maskname}:{mask}:{id}"), b"IN_MOVED_TO:128:12");
        assert_eq!(render("{src_pathname}"), b"/srv/old name");
        assert_eq!(render("{origin}"), b"scan");
        assert_eq!(render("{{pathname}} {{}}"), b"{pathname} {}");
        assert_eq!(render(""), b"");
        let mut plain = event();
        plain.src_pathname = None;
        assert_eq!(
            Template::parse("<{src_pathname}>")
                .unwrap()
                .render(&plain)
                .as_bytes(),
            b"<>"
        );
    }

    #[test]
    fn escaped_rendering_escapes_the_fields_only() {
        let template = Template::parse("a.b {name}/{src_pathname}").unwrap();
        let upper = |value: &[u8], out: &mut Vec<u8>| {
            out.push(b'<');
            out.extend(value.to_ascii_uppercase());
            out.push(b'>');
        };
        assert_eq!(
            template.render_escaped(&event(), upper),
            b"a.b <CAF\xe9 {X}.TXT>/</SRV/OLD NAME>"
        );
    }

    #[test]
    fn bad_templates_say_what_is_valid() {
        let error = Template::parse("{pathnme}").unwrap_err();
        assert!(error.contains("unknown placeholder `{pathnme}`"), "{error}");
        assert!(error.contains("{pathname}, {path}, {name}"), "{error}");
        assert!(Template::parse("a { b").unwrap_err().contains("unclosed"));
        assert!(Template::parse("a } b").unwrap_err().contains("lone `}`"));
        assert!(
            Template::parse("{}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
    }
}
