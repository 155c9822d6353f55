//! The event handed to consumers, with pyinotify's fields and ours.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::mask::Mask;

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Read from the kernel's inotify queue.
    Kernel,
    /// Synthesized by the scan of a directory that appeared after its parent was watched.
    Scan,
    /// Synthesized by the rescan that follows a kernel queue overflow.
    Rescan,
    /// Synthesized when a watch is added with a baseline: what changed while nobody watched
    /// (see [`crate::Engine::add_watch_with_baseline`]).
    CatchUp,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Kernel => "kernel",
            Origin::Scan => "scan",
            Origin::Rescan => "rescan",
            Origin::CatchUp => "catchup",
        }
    }
}

/// Identifies one watch given to [`crate::Engine::add_watch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub u32);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Increases by one for every event of this engine, in delivery order. 0 for the events
    /// derived after the engine ([`Mask::IN_READY`]): the stage that delivers them numbers them.
    pub id: u64,
    pub mask: Mask,
    /// Pairs an `IN_MOVED_FROM` with its `IN_MOVED_TO`; 0 for other events.
    pub cookie: u32,
    /// The kernel's watch descriptor of `path`; -1 for `IN_Q_OVERFLOW`.
    pub wd: i32,
    /// The watched directory the event happened in (for `*_SELF` and `IN_IGNORED`, the watched
    /// object itself). Shared with the engine's tree, so cloning an event does not copy it.
    pub path: Arc<Path>,
    /// The entry's name inside `path`, empty for events about `path` itself.
    pub name: OsString,
    /// For an `IN_MOVED_TO` paired with its `IN_MOVED_FROM`: where the entry came from.
    pub src_pathname: Option<PathBuf>,
    pub origin: Origin,
    /// When the engine read (or synthesized) the event, in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The watches whose mask and filters this event matched.
    pub watches: Arc<[WatchId]>,
}

impl Event {
    /// `path/name`, or `path` alone for events about the watched object itself.
    pub fn pathname(&self) -> PathBuf {
        if self.name.is_empty() {
            self.path.to_path_buf()
        } else {
            self.path.join(&self.name)
        }
    }

    /// Whether the subject is a directory (`IN_ISDIR`).
    pub fn dir(&self) -> bool {
        self.mask.contains(Mask::IN_ISDIR)
    }

    pub fn synthetic(&self) -> bool {
        self.origin != Origin::Kernel
    }

    pub fn maskname(&self) -> String {
        self.mask.name()
    }

    pub fn name_bytes(&self) -> &[u8] {
        self.name.as_bytes()
    }

    pub(crate) fn name_from(bytes: &[u8]) -> OsString {
        OsStr::from_bytes(bytes).to_os_string()
    }
}
