//! What a restart's catch-up finds that the journal already holds.
//!
//! The snapshot that catch-up diffs against is saved once a second, and only with what it can
//! prove journaled; after a crash in a burst it lags the journal by the last seconds. Catch-up
//! then reports as changed files whose change is in the journal already (delivered, or pending
//! and redelivered anyway): duplicates. A finding is dropped when the journal holds an event
//! of the same kind for the same path, read after the file's last change (its ctime and mtime,
//! with a margin for the coarse clock file times come from): the disk has nothing newer to
//! tell. Anything else is reported, as before.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use inotifier_core::{Event, Mask, Origin};

/// The kinds of finding that describe a state of one path (not moves, which pair two).
const COMPARABLE: Mask = Mask(
    Mask::IN_CREATE.0
        | Mask::IN_DELETE.0
        | Mask::IN_MODIFY.0
        | Mask::IN_CLOSE_WRITE.0
        | Mask::IN_ATTRIB.0
        | Mask::IN_READY.0,
);

pub struct Journaled {
    /// When each (pathname, mask) was last read, of the events journaled for one watch.
    read_at: HashMap<(PathBuf, u32), i64>,
    /// File times come from the coarse clock, up to one of its ticks behind the precise time
    /// a read was stamped with: a change within that of a read may be newer than it.
    margin_ns: i64,
    dropped: usize,
}

impl Journaled {
    pub fn new(events: &[Event]) -> Journaled {
        let mut read_at: HashMap<(PathBuf, u32), i64> = HashMap::new();
        for event in events {
            let at = read_at.entry((event.pathname(), event.mask.0)).or_default();
            *at = (*at).max(event.time_ns);
        }
        Journaled {
            read_at,
            margin_ns: inotifier_core::coarse_clock_lag_ns(),
            dropped: 0,
        }
    }

    /// Whether `event`, a catch-up finding, is already in the journal (counted when it is).
    pub fn covers(&mut self, event: &Event) -> bool {
        if event.origin != Origin::CatchUp
            || !COMPARABLE.contains(event.mask.without(Mask::IN_ISDIR))
        {
            return false;
        }
        let pathname = event.pathname();
        let Some(&read_ns) = self.read_at.get(&(pathname.clone(), event.mask.0)) else {
            return false;
        };
        let covered = match std::fs::symlink_metadata(&pathname) {
            Ok(_) if event.mask.contains(Mask::IN_DELETE) => false,
            Ok(meta) => last_change_ns(&meta) < read_ns - self.margin_ns,
            Err(_) => event.mask.contains(Mask::IN_DELETE) && !exists(&pathname),
        };
        self.dropped += usize::from(covered);
        covered
    }

    /// How many findings were dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

fn last_change_ns(meta: &std::fs::Metadata) -> i64 {
    let ctime = meta.ctime() * 1_000_000_000 + meta.ctime_nsec();
    let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    ctime.max(mtime)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(path: &Path, mask: Mask, time_ns: i64, origin: Origin) -> Event {
        Event {
            id: 1,
            mask,
            cookie: 0,
            wd: 1,
            path: std::sync::Arc::from(path.parent().unwrap()),
            name: path.file_name().unwrap().to_os_string(),
            src_pathname: None,
            origin,
            time_ns,
            watches: std::sync::Arc::from([]),
        }
    }

    fn now_ns() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    }

    #[test]
    fn a_finding_is_covered_only_by_a_journaled_event_read_after_the_last_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let lag = inotifier_core::coarse_clock_lag_ns();
        std::thread::sleep(std::time::Duration::from_nanos(3 * lag as u64));
        let read = now_ns();
        let journaled = [finding(&file, Mask::IN_CLOSE_WRITE, read, Origin::Kernel)];
        let mut covered = Journaled::new(&journaled);
        let caught_up = finding(&file, Mask::IN_CLOSE_WRITE, 0, Origin::CatchUp);
        assert!(
            covered.covers(&caught_up),
            "unchanged since it was journaled"
        );
        assert!(!covered.covers(&finding(&file, Mask::IN_ATTRIB, 0, Origin::CatchUp)));
        assert!(!covered.covers(&finding(&file, Mask::IN_CLOSE_WRITE, 0, Origin::Rescan)));
        std::thread::sleep(std::time::Duration::from_nanos(2 * lag as u64));
        std::fs::write(&file, b"changed after").unwrap();
        assert!(
            !covered.covers(&caught_up),
            "changed after it was journaled"
        );
        assert_eq!(covered.dropped(), 1);
    }
}
