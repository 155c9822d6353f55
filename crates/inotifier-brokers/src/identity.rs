//! Who sent an event, and the id a broker message carries for it.
//!
//! Event ids are numbered per journal, so two hosts both have an event 42. A message's id
//! joins a hash of the sending host's `source` name with the event id:
//! `hhhhhhhh-hhhh-hhhh-iiii-iiiiiiiiiiii`, where the first 16 hexadecimal digits hash the
//! source and the last 16 are the event id. It reads as a UUID (Celery task ids usually are),
//! is the same every time the same event is delivered again (a retry, a restart's
//! redelivery), and differs between hosts.

/// The default `source`: this machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The message id of event `event_id` sent by `source` (see the module docs).
pub fn message_id(source: &str, event_id: u64) -> String {
    let hash = fnv1a(source.as_bytes());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hash >> 32,
        (hash >> 16) & 0xffff,
        hash & 0xffff,
        event_id >> 48,
        event_id & 0xffff_ffff_ffff
    )
}

/// 64-bit FNV-1a: stable across versions and machines, unlike std's hashers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
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
        assert!(!host_name().is_empty());
    }
}
