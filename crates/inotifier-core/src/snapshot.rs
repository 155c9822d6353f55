//! What a journal persists of a watched tree, independent of how it stores it, so that the
//! engine can tell what changed while nobody watched.
//!
//! A journal takes a full [`Engine::snapshot`](crate::Engine::snapshot) once, then applies
//! [`Engine::snapshot_changes`](crate::Engine::snapshot_changes) as often as it likes (every
//! second, say): baseline plus the changes applied in order always equals what a full snapshot
//! would say at the time of the last export, for every change the engine had processed by then.
//! On the next start it hands the persisted entries back to
//! [`Engine::add_watch_with_baseline`](crate::Engine::add_watch_with_baseline), which reports
//! the difference with the disk as [`Origin::CatchUp`](crate::Origin::CatchUp) events (see
//! [`crate::Engine::add_watch_with_baseline`] for the rules).

use std::collections::BTreeMap;

/// The type of an entry, as `lstat` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// FIFOs, sockets, devices.
    Other,
}

impl EntryKind {
    /// A stable code for storage: 0 other, 1 file, 2 directory, 3 symlink (the codes the
    /// journal stores).
    pub fn as_u8(self) -> u8 {
        match self {
            EntryKind::Other => 0,
            EntryKind::File => 1,
            EntryKind::Dir => 2,
            EntryKind::Symlink => 3,
        }
    }

    /// The inverse of [`EntryKind::as_u8`]; `None` for a code it never gives.
    pub fn from_u8(code: u8) -> Option<EntryKind> {
        Some(match code {
            0 => EntryKind::Other,
            1 => EntryKind::File,
            2 => EntryKind::Dir,
            3 => EntryKind::Symlink,
            _ => return None,
        })
    }
}

impl From<EntryKind> for u8 {
    fn from(kind: EntryKind) -> u8 {
        kind.as_u8()
    }
}

impl TryFrom<u8> for EntryKind {
    type Error = u8;

    fn try_from(code: u8) -> Result<EntryKind, u8> {
        EntryKind::from_u8(code).ok_or(code)
    }
}

impl From<crate::sys::Kind> for EntryKind {
    fn from(kind: crate::sys::Kind) -> EntryKind {
        match kind {
            crate::sys::Kind::File => EntryKind::File,
            crate::sys::Kind::Dir => EntryKind::Dir,
            crate::sys::Kind::Symlink => EntryKind::Symlink,
            crate::sys::Kind::Other => EntryKind::Other,
        }
    }
}

/// One entry below a watch root. The root itself is never an entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotEntry {
    /// Relative to the watch root, components joined by `/`, raw bytes (names need not be
    /// UTF-8).
    pub path: Vec<u8>,
    pub inode: u64,
    /// From `lstat`; for a directory, whatever its file system reports (it changes with its
    /// entries, which catch-up compares one by one instead).
    pub size: u64,
    /// Nanoseconds since the epoch, from `lstat`.
    pub mtime_ns: i64,
    pub kind: EntryKind,
}

/// One change to a persisted snapshot, from [`crate::Engine::snapshot_changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotChange {
    /// Insert the entry, or replace the one with that path.
    Upsert(SnapshotEntry),
    /// Nothing is at this path any more. When a directory goes, every entry below it that the
    /// engine knew gets its own `Remove` too, so a journal may delete exactly that path (the
    /// engine never needs a removal of a whole subtree); deleting everything below it as well
    /// gives the same result, since the removals come before the upserts of a batch.
    Remove(Vec<u8>),
}

/// Applies changes to a snapshot kept as a map by path: the reference a journal's storage must
/// behave like.
pub fn apply_changes(
    snapshot: &mut BTreeMap<Vec<u8>, SnapshotEntry>,
    changes: impl IntoIterator<Item = SnapshotChange>,
) {
    for change in changes {
        match change {
            SnapshotChange::Upsert(entry) => {
                snapshot.insert(entry.path.clone(), entry);
            }
            SnapshotChange::Remove(path) => {
                snapshot.remove(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for kind in [
            EntryKind::File,
            EntryKind::Dir,
            EntryKind::Symlink,
            EntryKind::Other,
        ] {
            assert_eq!(EntryKind::try_from(u8::from(kind)), Ok(kind));
        }
        assert_eq!(EntryKind::from_u8(4), None);
        assert_eq!(EntryKind::Dir.as_u8(), 2);
    }
}
