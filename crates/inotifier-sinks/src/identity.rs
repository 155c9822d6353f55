//! Who sent an event, and the id a broker message carries for it.
//!
//! Event ids are numbered per journal, so two hosts both have an event 42, and so does a host
//! whose journal was made anew (reset, or recovered with nothing salvaged). A message's id
//! joins a hash of the sending host's `source` name and of the journal's instance id (drawn
//! at random when the journal was made) with the event id:
//! `hhhhhhhh-hhhh-hhhh-iiii-iiiiiiiiiiii`, where the first 16 hexadecimal digits are the hash
//! and the last 16 the event id. It reads as a UUID (Celery task ids usually are), is the same
//! every time the same event is delivered again (a retry, a restart's redelivery), and
//! differs between hosts and between journals.

/// The default `source`: this machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The message ids of one sender and journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageIds {
    hash: u64,
}

impl MessageIds {
    /// The ids `source` gives the events of the journal whose instance is `journal` (`None`
    /// for a daemon without a journal).
    pub fn new(source: &str, journal: Option<u64>) -> MessageIds {
        let mut hash = fnv1a(FNV_OFFSET, source.as_bytes());
        if let Some(instance) = journal {
            hash = fnv1a(fnv1a(hash, b"\0"), &instance.to_be_bytes());
        }
        MessageIds { hash }
    }

    /// The message id of event `event_id` (see the module docs).
    pub fn of(&self, event_id: u64) -> String {
        let hash = self.hash;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hash >> 32,
            (hash >> 16) & 0xffff,
            hash & 0xffff,
            event_id >> 48,
            event_id & 0xffff_ffff_ffff
        )
    }
}

/// The message id of event `event_id` sent by `source` without a journal.
pub fn message_id(source: &str, event_id: u64) -> String {
    MessageIds::new(source, None).of(event_id)
}

/// A journal's instance id as it appears in messages: 16 hexadecimal digits.
pub fn journal_id(instance: u64) -> String {
    format!("{instance:016x}")
}

/// A random version-4 UUID, for ids that must differ on every send (a Redis message's
/// delivery tag). Drawn from the random keys std takes from the operating system for hash
/// maps: no dependency for what needs no cryptographic strength.
pub fn random_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let draw = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let (high, low) = (draw(), draw());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        (low >> 48) & 0x3fff | 0x8000,
        low & 0xffff_ffff_ffff
    )
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a, continued from `hash`: stable across versions and machines, unlike std's
/// hashers.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_source_and_event_and_differ_between_sources() {
        assert_eq!(
            message_id("web-1", 42),
            "666fc22e-095c-221f-0000-00000000002a"
        );
        assert_eq!(message_id("web-1", 42), message_id("web-1", 42));
        assert_ne!(message_id("web-1", 42), message_id("web-2", 42));
        assert_eq!(
            message_id("web-1", u64::MAX),
            "666fc22e-095c-221f-ffff-ffffffffffff"
        );
        let (first, second) = (
            MessageIds::new("web-1", Some(1)),
            MessageIds::new("web-1", Some(2)),
        );
        assert_ne!(first.of(42), second.of(42), "a new journal's ids are new");
        assert_ne!(first.of(42), message_id("web-1", 42));
        assert_eq!(first.of(42), MessageIds::new("web-1", Some(1)).of(42));
        assert!(first.of(42).ends_with("-0000-00000000002a"));
        assert!(!host_name().is_empty());
        let (a, b) = (random_uuid(), random_uuid());
        assert_ne!(a, b);
        assert_eq!((a.len(), &a[14..15]), (36, "4"));
    }
}
