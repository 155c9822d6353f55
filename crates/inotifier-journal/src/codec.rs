//! Events to rows and back. Names and paths are stored as their raw bytes: they need not be
//! UTF-8.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotifier_core::{Event, Mask, Origin};
use rusqlite::Row;

/// The columns [`event_from_row`] reads, in its order, for `events` aliased `e`.
pub(crate) const EVENT_COLUMNS: &str =
    "e.id, e.mask, e.cookie, e.wd, e.path, e.name, e.src, e.origin, e.time_ns";

pub(crate) fn origin_from_str(text: &str) -> Origin {
    match text {
        "kernel" => Origin::Kernel,
        "scan" => Origin::Scan,
        "rescan" => Origin::Rescan,
        "catchup" => Origin::CatchUp,
        // A variant added after this journal was written: it was synthesized, and a rescan is
        // the closest synthesized origin we know.
        _ => Origin::Rescan,
    }
}

pub(crate) fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// Rows of one query often share their directory: one `Arc<Path>` per run of equal paths, as
/// the engine shares them.
#[derive(Default)]
pub(crate) struct Decoder {
    last_path: Option<Arc<Path>>,
    no_watches: Option<Arc<[inotifier_core::WatchId]>>,
}

impl Decoder {
    /// Reads [`EVENT_COLUMNS`] starting at column `at`.
    pub(crate) fn event(&mut self, row: &Row<'_>, at: usize) -> rusqlite::Result<Event> {
        let id: i64 = row.get(at)?;
        let mask: u32 = row.get(at + 1)?;
        let cookie: u32 = row.get(at + 2)?;
        let wd: i32 = row.get(at + 3)?;
        let path: &[u8] = row.get_ref(at + 4)?.as_blob()?;
        let path = match &self.last_path {
            Some(last) if bytes(last) == path => Arc::clone(last),
            _ => {
                let fresh: Arc<Path> = Arc::from(Path::new(OsStr::from_bytes(path)));
                self.last_path = Some(Arc::clone(&fresh));
                fresh
            }
        };
        let name = OsStr::from_bytes(row.get_ref(at + 5)?.as_blob()?).to_os_string();
        let src = row
            .get_ref(at + 6)?
            .as_blob_or_null()?
            .map(|b| PathBuf::from(OsStr::from_bytes(b)));
        let origin = origin_from_str(row.get_ref(at + 7)?.as_str()?);
        let time_ns: i64 = row.get(at + 8)?;
        let watches = Arc::clone(self.no_watches.get_or_insert_with(|| Arc::from([])));
        Ok(Event {
            id: id as u64,
            mask: Mask(mask),
            cookie,
            wd,
            path,
            name,
            src_pathname: src,
            origin,
            time_ns,
            watches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_read_back_and_unknown_ones_count_as_synthesized() {
        for origin in [
            Origin::Kernel,
            Origin::Scan,
            Origin::Rescan,
            Origin::CatchUp,
        ] {
            assert_eq!(origin_from_str(origin.as_str()), origin);
        }
        assert_eq!(origin_from_str("from-the-future"), Origin::Rescan);
    }
}
