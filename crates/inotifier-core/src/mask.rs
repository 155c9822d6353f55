//! Event masks with the kernel's values from `<sys/inotify.h>`, so masks written for pyinotify or
//! computed in C keep their meaning. One bit is ours: [`Mask::IN_READY`] (`0x00100000`), the
//! "file is ready" event derived by [`crate::ready`], a bit the kernel does not use for inotify.

use std::fmt;
use std::str::FromStr;

/// A set of inotify event bits and flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mask(pub u32);

impl Mask {
    pub const IN_ACCESS: Mask = Mask(0x0000_0001);
    pub const IN_MODIFY: Mask = Mask(0x0000_0002);
    pub const IN_ATTRIB: Mask = Mask(0x0000_0004);
    pub const IN_CLOSE_WRITE: Mask = Mask(0x0000_0008);
    pub const IN_CLOSE_NOWRITE: Mask = Mask(0x0000_0010);
    pub const IN_OPEN: Mask = Mask(0x0000_0020);
    pub const IN_MOVED_FROM: Mask = Mask(0x0000_0040);
    pub const IN_MOVED_TO: Mask = Mask(0x0000_0080);
    pub const IN_CREATE: Mask = Mask(0x0000_0100);
    pub const IN_DELETE: Mask = Mask(0x0000_0200);
    pub const IN_DELETE_SELF: Mask = Mask(0x0000_0400);
    pub const IN_MOVE_SELF: Mask = Mask(0x0000_0800);
    pub const IN_UNMOUNT: Mask = Mask(0x0000_2000);
    pub const IN_Q_OVERFLOW: Mask = Mask(0x0000_4000);
    pub const IN_IGNORED: Mask = Mask(0x0000_8000);
    /// Ours, not the kernel's: a regular file is ready (written completely). Derived from the
    /// kernel's events by [`crate::ready`]; a bit inotify does not use, so it is never passed
    /// to `inotify_add_watch` and never clashes with a kernel event.
    pub const IN_READY: Mask = Mask(0x0010_0000);

    pub const IN_ONLYDIR: Mask = Mask(0x0100_0000);
    pub const IN_DONT_FOLLOW: Mask = Mask(0x0200_0000);
    pub const IN_EXCL_UNLINK: Mask = Mask(0x0400_0000);
    pub const IN_MASK_CREATE: Mask = Mask(0x1000_0000);
    pub const IN_MASK_ADD: Mask = Mask(0x2000_0000);
    pub const IN_ISDIR: Mask = Mask(0x4000_0000);
    pub const IN_ONESHOT: Mask = Mask(0x8000_0000);

    pub const IN_CLOSE: Mask = Mask(Self::IN_CLOSE_WRITE.0 | Self::IN_CLOSE_NOWRITE.0);
    pub const IN_MOVE: Mask = Mask(Self::IN_MOVED_FROM.0 | Self::IN_MOVED_TO.0);
    /// Every event a watch can ask for, as pyinotify and `<sys/inotify.h>` define it.
    pub const ALL_EVENTS: Mask = Mask(0x0000_0fff);

    pub const fn empty() -> Mask {
        Mask(0)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn contains(self, other: Mask) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Mask) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn union(self, other: Mask) -> Mask {
        Mask(self.0 | other.0)
    }

    pub const fn intersection(self, other: Mask) -> Mask {
        Mask(self.0 & other.0)
    }

    pub const fn without(self, other: Mask) -> Mask {
        Mask(self.0 & !other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The event bits only, ours included, without flags such as `IN_ISDIR`.
    pub const fn events(self) -> Mask {
        Mask(self.0 & (Self::ALL_EVENTS.0 | Self::SPECIAL_EVENTS.0 | Self::DERIVED_EVENTS.0))
    }

    /// The events inotifier derives from the kernel's: selectable like the kernel's, but not
    /// part of [`Mask::ALL_EVENTS`], which keeps the kernel's (and pyinotify's) value.
    pub const DERIVED_EVENTS: Mask = Self::IN_READY;

    /// Events the kernel sends whatever a watch asked for.
    pub const SPECIAL_EVENTS: Mask =
        Mask(Self::IN_UNMOUNT.0 | Self::IN_Q_OVERFLOW.0 | Self::IN_IGNORED.0);

    /// The name of a mask with one event bit, with or without `IN_ISDIR`, as events have:
    /// without allocating.
    pub fn static_name(self) -> Option<&'static str> {
        let is_dir = self.contains(Self::IN_ISDIR);
        let event = self.0 & !Self::IN_ISDIR.0;
        let index = EVENT_NAMES.iter().position(|(_, value)| *value == event)?;
        let (plain, with_dir) = EVENT_NAMES[index].0;
        Some(if is_dir { with_dir } else { plain })
    }

    /// The name pyinotify gives this mask: the event names joined by `|`, `IN_ISDIR` last
    /// (`IN_CREATE|IN_ISDIR`). Bits without a name are shown in hex.
    pub fn name(self) -> String {
        let mut out = String::new();
        let mut rest = self.0 & !Self::IN_ISDIR.0;
        for (name, value) in SINGLE_NAMES {
            if *value != Self::IN_ISDIR.0 && rest & value != 0 {
                push_part(&mut out, name);
                rest &= !value;
            }
        }
        if rest != 0 {
            push_part(&mut out, &format!("{rest:#x}"));
        }
        if self.contains(Self::IN_ISDIR) {
            push_part(&mut out, "IN_ISDIR");
        }
        out
    }
}

fn push_part(out: &mut String, part: &str) {
    if !out.is_empty() {
        out.push('|');
    }
    out.push_str(part);
}

/// Event names alone and with `|IN_ISDIR`, for [`Mask::static_name`].
const EVENT_NAMES: &[((&str, &str), u32)] = &[
    (("IN_ACCESS", "IN_ACCESS|IN_ISDIR"), Mask::IN_ACCESS.0),
    (("IN_MODIFY", "IN_MODIFY|IN_ISDIR"), Mask::IN_MODIFY.0),
    (("IN_ATTRIB", "IN_ATTRIB|IN_ISDIR"), Mask::IN_ATTRIB.0),
    (
        ("IN_CLOSE_WRITE", "IN_CLOSE_WRITE|IN_ISDIR"),
        Mask::IN_CLOSE_WRITE.0,
    ),
    (
        ("IN_CLOSE_NOWRITE", "IN_CLOSE_NOWRITE|IN_ISDIR"),
        Mask::IN_CLOSE_NOWRITE.0,
    ),
    (("IN_OPEN", "IN_OPEN|IN_ISDIR"), Mask::IN_OPEN.0),
    (
        ("IN_MOVED_FROM", "IN_MOVED_FROM|IN_ISDIR"),
        Mask::IN_MOVED_FROM.0,
    ),
    (("IN_MOVED_TO", "IN_MOVED_TO|IN_ISDIR"), Mask::IN_MOVED_TO.0),
    (("IN_CREATE", "IN_CREATE|IN_ISDIR"), Mask::IN_CREATE.0),
    (("IN_DELETE", "IN_DELETE|IN_ISDIR"), Mask::IN_DELETE.0),
    (
        ("IN_DELETE_SELF", "IN_DELETE_SELF|IN_ISDIR"),
        Mask::IN_DELETE_SELF.0,
    ),
    (
        ("IN_MOVE_SELF", "IN_MOVE_SELF|IN_ISDIR"),
        Mask::IN_MOVE_SELF.0,
    ),
    (("IN_UNMOUNT", "IN_UNMOUNT|IN_ISDIR"), Mask::IN_UNMOUNT.0),
    (
        ("IN_Q_OVERFLOW", "IN_Q_OVERFLOW|IN_ISDIR"),
        Mask::IN_Q_OVERFLOW.0,
    ),
    (("IN_IGNORED", "IN_IGNORED|IN_ISDIR"), Mask::IN_IGNORED.0),
    (("IN_READY", "IN_READY|IN_ISDIR"), Mask::IN_READY.0),
];

/// Every single bit with its name, in the order of their values; used both to format and to
/// parse.
const SINGLE_NAMES: &[(&str, u32)] = &[
    ("IN_ACCESS", Mask::IN_ACCESS.0),
    ("IN_MODIFY", Mask::IN_MODIFY.0),
    ("IN_ATTRIB", Mask::IN_ATTRIB.0),
    ("IN_CLOSE_WRITE", Mask::IN_CLOSE_WRITE.0),
    ("IN_CLOSE_NOWRITE", Mask::IN_CLOSE_NOWRITE.0),
    ("IN_OPEN", Mask::IN_OPEN.0),
    ("IN_MOVED_FROM", Mask::IN_MOVED_FROM.0),
    ("IN_MOVED_TO", Mask::IN_MOVED_TO.0),
    ("IN_CREATE", Mask::IN_CREATE.0),
    ("IN_DELETE", Mask::IN_DELETE.0),
    ("IN_DELETE_SELF", Mask::IN_DELETE_SELF.0),
    ("IN_MOVE_SELF", Mask::IN_MOVE_SELF.0),
    ("IN_UNMOUNT", Mask::IN_UNMOUNT.0),
    ("IN_Q_OVERFLOW", Mask::IN_Q_OVERFLOW.0),
    ("IN_IGNORED", Mask::IN_IGNORED.0),
    ("IN_READY", Mask::IN_READY.0),
    ("IN_ONLYDIR", Mask::IN_ONLYDIR.0),
    ("IN_DONT_FOLLOW", Mask::IN_DONT_FOLLOW.0),
    ("IN_EXCL_UNLINK", Mask::IN_EXCL_UNLINK.0),
    ("IN_MASK_CREATE", Mask::IN_MASK_CREATE.0),
    ("IN_MASK_ADD", Mask::IN_MASK_ADD.0),
    ("IN_ISDIR", Mask::IN_ISDIR.0),
    ("IN_ONESHOT", Mask::IN_ONESHOT.0),
];

const GROUP_NAMES: &[(&str, u32)] = &[
    ("IN_CLOSE", Mask::IN_CLOSE.0),
    ("IN_MOVE", Mask::IN_MOVE.0),
    ("ALL_EVENTS", Mask::ALL_EVENTS.0),
];

/// Every name [`Mask::from_str`] accepts, in the canonical `IN_` form.
pub fn valid_names() -> impl Iterator<Item = &'static str> {
    SINGLE_NAMES
        .iter()
        .chain(GROUP_NAMES)
        .map(|(name, _)| *name)
}

/// The value of one event, flag or group name; `create`, `IN_CREATE` and `In_Create` are the
/// same name.
pub fn value_of_name(name: &str) -> Option<Mask> {
    let upper = name.trim().to_ascii_uppercase();
    let canonical = if upper.starts_with("IN_") || upper == "ALL_EVENTS" {
        upper
    } else {
        format!("IN_{upper}")
    };
    SINGLE_NAMES
        .iter()
        .chain(GROUP_NAMES)
        .find(|(known, _)| *known == canonical)
        .map(|(_, value)| Mask(*value))
}

/// Why a mask could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskParseError {
    #[error("empty event mask: give event names such as IN_CREATE|IN_DELETE, or an integer")]
    Empty,
    #[error(
        "unknown event name {word:?} in {input:?}; valid names (case-insensitive, the IN_ prefix is optional): {}",
        valid_names().collect::<Vec<_>>().join(", ")
    )]
    UnknownName { word: String, input: String },
    #[error("event mask integer {word:?} does not fit in 32 bits")]
    OutOfRange { word: String },
}

impl FromStr for Mask {
    type Err = MaskParseError;

    /// Parses `IN_CREATE|IN_DELETE`, `create,delete`, `ALL_EVENTS`, `256` or `0x100`, and any
    /// mix of them joined by `|` or `,`.
    fn from_str(input: &str) -> Result<Mask, MaskParseError> {
        let mut mask = Mask::empty();
        let mut words = 0;
        for word in input.split(['|', ',']).map(str::trim) {
            if word.is_empty() {
                continue;
            }
            words += 1;
            mask = mask.union(parse_word(word, input)?);
        }
        if words == 0 {
            return Err(MaskParseError::Empty);
        }
        Ok(mask)
    }
}

fn parse_word(word: &str, input: &str) -> Result<Mask, MaskParseError> {
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        let parsed = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => word.parse::<u64>(),
        };
        return match parsed {
            Ok(value) => u32::try_from(value)
                .map(Mask)
                .map_err(|_| MaskParseError::OutOfRange { word: word.into() }),
            Err(_) => Err(MaskParseError::UnknownName {
                word: word.into(),
                input: input.into(),
            }),
        };
    }
    value_of_name(word).ok_or_else(|| MaskParseError::UnknownName {
        word: word.into(),
        input: input.into(),
    })
}

impl fmt::Debug for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mask({:#x} {})", self.0, self.name())
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::ops::BitOr for Mask {
    type Output = Mask;
    fn bitor(self, rhs: Mask) -> Mask {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for Mask {
    fn bitor_assign(&mut self, rhs: Mask) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for Mask {
    type Output = Mask;
    fn bitand(self, rhs: Mask) -> Mask {
        self.intersection(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_kernel_header() {
        assert_eq!(Mask::IN_ACCESS.0, libc::IN_ACCESS);
        assert_eq!(Mask::IN_MODIFY.0, libc::IN_MODIFY);
        assert_eq!(Mask::IN_ATTRIB.0, libc::IN_ATTRIB);
        assert_eq!(Mask::IN_CLOSE_WRITE.0, libc::IN_CLOSE_WRITE);
        assert_eq!(Mask::IN_CLOSE_NOWRITE.0, libc::IN_CLOSE_NOWRITE);
        assert_eq!(Mask::IN_OPEN.0, libc::IN_OPEN);
        assert_eq!(Mask::IN_MOVED_FROM.0, libc::IN_MOVED_FROM);
        assert_eq!(Mask::IN_MOVED_TO.0, libc::IN_MOVED_TO);
        assert_eq!(Mask::IN_CREATE.0, libc::IN_CREATE);
        assert_eq!(Mask::IN_DELETE.0, libc::IN_DELETE);
        assert_eq!(Mask::IN_DELETE_SELF.0, libc::IN_DELETE_SELF);
        assert_eq!(Mask::IN_MOVE_SELF.0, libc::IN_MOVE_SELF);
        assert_eq!(Mask::IN_UNMOUNT.0, libc::IN_UNMOUNT);
        assert_eq!(Mask::IN_Q_OVERFLOW.0, libc::IN_Q_OVERFLOW);
        assert_eq!(Mask::IN_IGNORED.0, libc::IN_IGNORED);
        assert_eq!(Mask::IN_ONLYDIR.0, libc::IN_ONLYDIR);
        assert_eq!(Mask::IN_DONT_FOLLOW.0, libc::IN_DONT_FOLLOW);
        assert_eq!(Mask::IN_EXCL_UNLINK.0, libc::IN_EXCL_UNLINK);
        assert_eq!(Mask::IN_MASK_CREATE.0, libc::IN_MASK_CREATE);
        assert_eq!(Mask::IN_MASK_ADD.0, libc::IN_MASK_ADD);
        assert_eq!(Mask::IN_ISDIR.0, libc::IN_ISDIR);
        assert_eq!(Mask::IN_ONESHOT.0, libc::IN_ONESHOT);
        assert_eq!(Mask::IN_CLOSE.0, libc::IN_CLOSE);
        assert_eq!(Mask::IN_MOVE.0, libc::IN_MOVE);
        assert_eq!(Mask::ALL_EVENTS.0, libc::IN_ALL_EVENTS);
    }

    #[test]
    fn the_ready_bit_is_ours_alone() {
        let kernel_bits = SINGLE_NAMES
            .iter()
            .filter(|(name, _)| *name != "IN_READY")
            .fold(0, |bits, (_, value)| bits | value);
        assert_eq!(Mask::IN_READY.0, 0x0010_0000);
        assert_eq!(Mask::IN_READY.0 & kernel_bits, 0);
        assert_eq!(Mask::IN_READY.0 & libc::IN_ALL_EVENTS, 0);
        assert!(!Mask::ALL_EVENTS.contains(Mask::IN_READY));
        assert_eq!(Mask::ALL_EVENTS.0, 0xfff);
        for spelling in ["IN_READY", "ready", "Ready", "in_ready"] {
            assert_eq!(spelling.parse::<Mask>(), Ok(Mask::IN_READY), "{spelling}");
        }
        assert_eq!("0x100000".parse::<Mask>(), Ok(Mask::IN_READY));
        assert_eq!(
            "IN_READY|IN_CREATE".parse::<Mask>(),
            Ok(Mask::IN_READY | Mask::IN_CREATE)
        );
        assert!(valid_names().any(|name| name == "IN_READY"));
        assert_eq!(Mask::IN_READY.name(), "IN_READY");
        assert_eq!(Mask::IN_READY.static_name(), Some("IN_READY"));
        assert_eq!(
            (Mask::IN_CLOSE_WRITE | Mask::IN_READY).name(),
            "IN_CLOSE_WRITE|IN_READY"
        );
        assert_eq!(
            (Mask::IN_READY | Mask::IN_ISDIR | Mask::IN_ONLYDIR).events(),
            Mask::IN_READY
        );
        let unknown = "IN_REDDY".parse::<Mask>().unwrap_err().to_string();
        assert!(unknown.contains("IN_READY"), "{unknown}");
    }

    #[test]
    fn parses_names_in_every_spelling() {
        let expected = Mask::IN_CREATE | Mask::IN_DELETE;
        for input in [
            "IN_CREATE|IN_DELETE",
            "create|delete",
            "Create , IN_delete",
            " in_create | DELETE ",
            "0x300",
            "768",
            "IN_CREATE|512",
        ] {
            assert_eq!(input.parse::<Mask>(), Ok(expected), "{input}");
        }
        assert_eq!("IN_CLOSE".parse::<Mask>(), Ok(Mask(0x18)));
        assert_eq!("move".parse::<Mask>(), Ok(Mask(0xc0)));
        assert_eq!("all_events".parse::<Mask>(), Ok(Mask(0xfff)));
        assert_eq!("isdir|onlydir".parse::<Mask>(), Ok(Mask(0x4100_0000)));
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let error = "IN_CREATE|IN_CRATE".parse::<Mask>().unwrap_err();
        assert_eq!(
            error,
            MaskParseError::UnknownName {
                word: "IN_CRATE".into(),
                input: "IN_CREATE|IN_CRATE".into()
            }
        );
        let message = error.to_string();
        assert!(message.contains("\"IN_CRATE\""), "{message}");
        for name in [
            "IN_ACCESS",
            "IN_CLOSE_WRITE",
            "IN_ONESHOT",
            "ALL_EVENTS",
            "IN_MOVE",
        ] {
            assert!(message.contains(name), "{message} lacks {name}");
        }
        assert_eq!("".parse::<Mask>(), Err(MaskParseError::Empty));
        assert_eq!(" | ".parse::<Mask>(), Err(MaskParseError::Empty));
        assert!(matches!(
            "0x1ffffffff".parse::<Mask>(),
            Err(MaskParseError::OutOfRange { .. })
        ));
        assert!(matches!(
            "12abc".parse::<Mask>(),
            Err(MaskParseError::UnknownName { .. })
        ));
    }

    #[test]
    fn names_are_formatted_as_pyinotify_does() {
        assert_eq!(Mask::IN_CREATE.name(), "IN_CREATE");
        assert_eq!(
            (Mask::IN_CREATE | Mask::IN_ISDIR).name(),
            "IN_CREATE|IN_ISDIR"
        );
        assert_eq!(
            (Mask::IN_ISDIR | Mask::IN_DELETE | Mask::IN_CREATE).name(),
            "IN_CREATE|IN_DELETE|IN_ISDIR"
        );
        assert_eq!(Mask::IN_Q_OVERFLOW.name(), "IN_Q_OVERFLOW");
        assert_eq!(Mask(0x0000_1000).name(), "0x1000");
        assert_eq!(Mask::empty().name(), "");
        for mask in [
            Mask::IN_CREATE,
            Mask::IN_CREATE | Mask::IN_ISDIR,
            Mask::IN_IGNORED,
            Mask::IN_MOVE_SELF | Mask::IN_ISDIR,
        ] {
            assert_eq!(mask.static_name(), Some(mask.name().as_str()));
        }
        assert_eq!((Mask::IN_CREATE | Mask::IN_DELETE).static_name(), None);
    }

    #[test]
    fn every_valid_name_parses_back_to_itself() {
        for name in valid_names() {
            let mask: Mask = name.parse().unwrap();
            assert!(!mask.is_empty(), "{name}");
            let short = name.trim_start_matches("IN_").to_ascii_lowercase();
            assert_eq!(short.parse::<Mask>(), Ok(mask), "{short}");
        }
    }
}
