//! The watch tree: which directory each watch descriptor stands for, and an index of every entry
//! below the watched roots. It turns raw kernel events into complete events: it adds watches on
//! new directories and scans them, pairs moves, keeps paths right when directories move, and
//! recovers from a queue overflow by rescanning and diffing against the index.
//!
//! It lives on the reader thread alone, so it needs no locks.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::{Event, Origin, WatchId};
use crate::glob::Filters;
use crate::mask::Mask;
use crate::sys::{self, Inotify, Kind, Name, RawEvent};

mod catchup;
mod events;
mod gaps;
mod masks;
mod poll;
mod rescan;
mod scan;
mod snapshot;
mod swaps;

pub use gaps::Gaps;
pub use poll::{Backend, BackendChoice, DEFAULT_POLL_INTERVAL, PolledMount};

/// Names come from whoever writes in the watched directories, so the hash is seeded (foldhash
/// resists simple flooding) while staying much faster than SipHash on short keys.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What to watch and how; the engine's unit of configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub path: PathBuf,
    /// The events to report. Flags `IN_EXCL_UNLINK`, `IN_ONLYDIR` and `IN_DONT_FOLLOW` apply to
    /// the root; `IN_ONESHOT` is honoured on non-recursive watches only. With
    /// [`Mask::IN_READY`], the watch is also delivered the events the ready detector needs
    /// ([`crate::ready::READY_INPUTS`]): a [`crate::ready::ReadyStage`] derives the ready
    /// events from them and drops those the mask did not ask for.
    pub mask: Mask,
    /// Watch every directory below `path` too.
    pub recursive: bool,
    /// Watch (and scan) directories created or moved in later; only meaningful with `recursive`.
    pub auto_add: bool,
    pub filters: Filters,
    /// Where the events come from: inotify, and polling where inotify cannot hear everything.
    pub backend: Backend,
    /// How often polled directories are listed again.
    pub poll_interval: Duration,
}

impl WatchSpec {
    pub fn new(path: impl Into<PathBuf>, mask: Mask) -> WatchSpec {
        WatchSpec {
            path: path.into(),
            mask,
            recursive: false,
            auto_add: false,
            filters: Filters::default(),
            backend: Backend::Auto,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    pub fn recursive(mut self, recursive: bool) -> WatchSpec {
        self.recursive = recursive;
        self.auto_add = recursive;
        self
    }
}

/// Events the tree needs from the kernel whatever the watches ask for, to keep its index and
/// paths right.
const TRACKING: Mask = Mask(
    Mask::IN_CREATE.0
        | Mask::IN_DELETE.0
        | Mask::IN_MOVED_FROM.0
        | Mask::IN_MOVED_TO.0
        | Mask::IN_DELETE_SELF.0
        | Mask::IN_MOVE_SELF.0,
);
const CONTENT_CHANGES: Mask = Mask(Mask::IN_MODIFY.0 | Mask::IN_CLOSE_WRITE.0 | Mask::IN_ATTRIB.0);
/// Events that reading a directory causes. The engine's own listings must not flood the queue
/// with them (a rescan of a large tree would overflow it again, forever), so while it lists,
/// the watches involved leave them out.
const READ_EVENTS: Mask = Mask(Mask::IN_OPEN.0 | Mask::IN_ACCESS.0 | Mask::IN_CLOSE_NOWRITE.0);
/// Below this many watches to restore, a second thread costs more than it saves.
const PARALLEL_RESTORE_MIN: usize = 2048;
const ROOT_FLAGS: Mask = Mask(Mask::IN_EXCL_UNLINK.0 | Mask::IN_ONLYDIR.0 | Mask::IN_DONT_FOLLOW.0);

/// The part of a stat the rescan compares, and snapshots export.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// From `lstat`, which may differ from the listing's `d_ino` (overlayfs).
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl From<sys::Stat> for Seen {
    fn from(stat: sys::Stat) -> Seen {
        Seen {
            ino: stat.ino,
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            ctime_ns: stat.ctime_ns,
        }
    }
}

/// One file or directory inside a watched directory.
struct Entry {
    kind: Kind,
    /// 0 when known from an event only.
    ino: u64,
    /// What the last stat said; `None` when an event has changed it since. Boxed: only a
    /// rescan sets it, and the entry stays small (with its name, one cache line).
    stat: Option<Box<Seen>>,
    /// Coarse realtime of the last time the index was known to be right about this entry: a
    /// later mtime or ctime means a change the index has not seen.
    since_ns: i64,
    /// Found by a scan after its directory was watched, so the kernel may still report its
    /// creation: that duplicate is dropped.
    from_scan: bool,
    /// The kernel reported this file created or written and not closed yet. Should an overflow
    /// drop its `IN_CLOSE_WRITE`, its times cannot tell the rescan (they predate the event that
    /// last set `since_ns`), so the rescan synthesizes the close from this.
    unclosed_write: bool,
    /// The node of a watched subdirectory.
    child: Child,
}

/// A node key or none, in 4 bytes where `Option<usize>` takes 16.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Child(u32);

impl Child {
    const NONE: Child = Child(u32::MAX);

    fn of(key: usize) -> Child {
        Child(
            u32::try_from(key)
                .ok()
                .filter(|&k| k != u32::MAX)
                .expect("fewer than 2^32 directories"),
        )
    }

    fn get(self) -> Option<usize> {
        (self != Child::NONE).then_some(self.0 as usize)
    }
}

struct Node {
    wd: i32,
    path: Arc<Path>,
    parent: Option<usize>,
    /// The watches covering this directory, shared with the events that match all of them.
    owners: Arc<[WatchId]>,
    entries: HashMap<Name, Entry>,
    is_dir: bool,
    /// Listed again every poll interval of a watch that polls it (see [`poll`]).
    polled: bool,
    /// The symbolic links among its entries, as listed and since (see [`swaps`]).
    symlinks: Vec<swaps::Symlink>,
}

struct Watch {
    spec: WatchSpec,
    /// The kernel events this watch is delivered: those its mask names, and for `IN_READY` the
    /// inputs of the ready detector (see [`crate::ready::delivered_events`]).
    delivered: Mask,
    root: Option<usize>,
    /// The root's path as bytes, to make paths relative for the filters.
    root_bytes: Box<[u8]>,
    /// Snapshots are exported for this watch: the kernel also reports content changes, which
    /// invalidate the stats the index keeps for the export.
    track_content: bool,
    /// Paths (relative to the root) whose snapshot entry may have changed since the last export;
    /// `None` until a snapshot or a baseline gives the export something to be relative to.
    dirty: Option<std::collections::HashSet<Vec<u8>, foldhash::fast::RandomState>>,
    /// `None` when nothing of the watch is polled.
    poll: Option<poll::PollPlan>,
    /// Its path goes through a symbolic link (see [`swaps`]).
    through_symlink: bool,
}

struct PendingMove {
    cookie: u32,
    from_pathname: PathBuf,
    entry: Entry,
    deadline: Instant,
}

pub(crate) struct Tree {
    inotify: Inotify,
    nodes: Vec<Option<Node>>,
    free_nodes: Vec<usize>,
    by_wd: HashMap<i32, usize>,
    watches: HashMap<WatchId, Watch>,
    next_watch: u32,
    pending_moves: VecDeque<PendingMove>,
    move_window: Duration,
    /// Told how long each overflow rescan took.
    on_rescan: crate::engine::RescanObserver,
    pub(crate) out: Vec<Event>,
    next_event_id: u64,
    /// The index baseline for changes seen in the current batch (see [`Tree::tick`]).
    coarse_now_ns: i64,
    /// The baseline of the last batch read while the kernel's queue had room.
    last_room_ns: i64,
    coarse_lag_ns: i64,
    event_time_ns: i64,
    warned_paths: std::collections::HashSet<PathBuf>,
    warned_watch_limit: bool,
    initial_walk_failure: Option<WatchFailure>,
    /// Directories without a kernel watch (see [`gaps`]).
    gaps: Vec<gaps::Gap>,
    last_gap_retry: Instant,
    /// Nodes whose kernel watch leaves out [`READ_EVENTS`] until the current listing is done.
    quieted: Vec<usize>,
    dirent_buffer: Vec<u8>,
    /// How many watches have a `dirty` set: with none, marking costs one comparison.
    tracked: usize,
    /// Cookies of the moves catch-up reports. Kernel cookies count up from 0 machine-wide, so
    /// these start far above where they will be for a long time, and a ready detector pairing
    /// both kinds never confuses them.
    next_cookie: u32,
    /// Mounts whose polling was logged already.
    announced_mounts: std::collections::HashSet<PathBuf>,
    /// During a poll: the files it found gone and new, to pair renames by inode.
    poll_moves: Option<poll::PollMoves>,
}

/// Why a directory could not be watched during a scan.
enum WatchFailure {
    /// It vanished or was replaced by a non-directory: nothing to do.
    Gone,
    /// The same inode is already watched (a bind mount or an overlapping root).
    AlreadyWatched,
    Denied,
    OutOfWatches,
    Other(io::Error),
}

impl Tree {
    pub(crate) fn new(
        inotify: Inotify,
        move_window: Duration,
        on_rescan: crate::engine::RescanObserver,
    ) -> Tree {
        Tree {
            on_rescan,
            inotify,
            nodes: Vec::new(),
            free_nodes: Vec::new(),
            by_wd: HashMap::default(),
            watches: HashMap::default(),
            next_watch: 1,
            pending_moves: VecDeque::new(),
            move_window,
            out: Vec::new(),
            next_event_id: 1,
            coarse_now_ns: 0,
            last_room_ns: 0,
            coarse_lag_ns: sys::coarse_lag_ns(),
            event_time_ns: 0,
            warned_paths: Default::default(),
            warned_watch_limit: false,
            initial_walk_failure: None,
            gaps: Vec::new(),
            last_gap_retry: Instant::now(),
            quieted: Vec::new(),
            dirent_buffer: Vec::new(),
            tracked: 0,
            next_cookie: 0xC000_0000,
            announced_mounts: Default::default(),
            poll_moves: None,
        }
    }

    pub(crate) fn inotify(&self) -> &Inotify {
        &self.inotify
    }

    pub(crate) fn watch_count(&self) -> usize {
        self.by_wd.len()
    }

    /// Stamps the events and index changes that follow; call once per batch read. One clock
    /// read per batch: the index baseline is derived from it, set back by twice the coarse
    /// clock's lag so that a later change's mtime is never below it.
    pub(crate) fn tick(&mut self) {
        self.event_time_ns = sys::realtime_ns();
        self.coarse_now_ns = self.event_time_ns - 2 * self.coarse_lag_ns;
    }

    /// [`Tree::tick`] for a batch read from the kernel. `queue_had_room`: the kernel's queue
    /// held fewer events than its limit when the batch was read, so it had not overflowed
    /// yet and every change after this moment still has its events queued, or is dropped
    /// later, with a later mtime. When the queue may have been full, a change made after it
    /// filled (dropped) can be older than this read: the batch's baseline is then the last
    /// read that found room, so that the overflow rescan sees such a change as new.
    pub(crate) fn tick_read(&mut self, queue_had_room: bool) {
        self.tick();
        if queue_had_room {
            self.last_room_ns = self.coarse_now_ns;
        } else {
            self.coarse_now_ns = self.last_room_ns;
        }
    }

    fn node(&self, key: usize) -> &Node {
        self.nodes[key].as_ref().expect("live node")
    }

    fn node_mut(&mut self, key: usize) -> &mut Node {
        self.nodes[key].as_mut().expect("live node")
    }

    // ----- adding and removing watches -------------------------------------------------------

    pub(crate) fn add_watch(
        &mut self,
        mut spec: WatchSpec,
        baseline: Option<Vec<crate::snapshot::SnapshotEntry>>,
    ) -> Result<WatchId> {
        self.tick();
        spec.path = normalize(&spec.path)?;
        let meta = std::fs::metadata(&spec.path).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                path: spec.path.clone(),
            },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                path: spec.path.clone(),
            },
            _ => Error::io(format!("cannot watch {}", spec.path.display()), error),
        })?;
        if !spec.recursive {
            spec.auto_add = false;
        }
        let id = WatchId(self.next_watch);
        self.next_watch += 1;
        let root_bytes: Box<[u8]> = spec.path.as_os_str().as_bytes().into();
        let path: Arc<Path> = Arc::from(spec.path.as_path());
        let is_dir = meta.is_dir();
        let through_symlink = std::fs::canonicalize(&spec.path).is_ok_and(|real| real != spec.path);
        let choice = poll::BackendChoice::of(&spec);
        let poll = choice.polls_anything().then(|| {
            self.announce_polling(&choice);
            poll::PollPlan {
                next: Instant::now() + choice.interval,
                choice,
            }
        });
        self.watches.insert(
            id,
            Watch {
                delivered: crate::ready::delivered_events(spec.mask),
                spec,
                root: None,
                root_bytes,
                track_content: baseline.is_some(),
                dirty: None,
                poll,
                through_symlink,
            },
        );
        let walked = self
            .watch_directory(path.clone(), None, Arc::new([id]), is_dir, None)
            .and_then(|key| match self.initial_walk_failure.take() {
                Some(failure) => Err(failure),
                None => Ok(key),
            });
        match walked {
            Ok(key) => {
                self.watches.get_mut(&id).expect("just added").root = Some(key);
                if let Some(baseline) = baseline {
                    self.catch_up(id, baseline);
                }
                Ok(id)
            }
            Err(failure) => {
                let watch = self.watches.remove(&id).expect("just added");
                self.forget_owner(id);
                Err(self.failure_error(failure, &watch.spec))
            }
        }
    }

    pub(crate) fn remove_watch(&mut self, id: WatchId) -> Result<()> {
        let Some(watch) = self.watches.remove(&id) else {
            return Err(Error::UnknownWatch(id));
        };
        if watch.dirty.is_some() {
            self.tracked -= 1;
        }
        self.forget_owner(id);
        Ok(())
    }

    /// Drops `id` from every node it owns; nodes nobody owns any more lose their kernel watch.
    fn forget_owner(&mut self, id: WatchId) {
        let owned: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(key, node)| {
                node.as_ref()
                    .filter(|n| n.owners.contains(&id))
                    .map(|_| key)
            })
            .collect();
        for key in owned {
            let Some(node) = self.nodes[key].as_mut() else {
                continue;
            };
            node.owners = node
                .owners
                .iter()
                .copied()
                .filter(|owner| *owner != id)
                .collect();
            if node.owners.is_empty() {
                let wd = node.wd;
                let _ = self.inotify.rm_watch(wd);
                self.release_node(key);
            } else {
                let _ = self.refresh_kernel_mask(key);
            }
        }
    }

    fn failure_error(&self, failure: WatchFailure, spec: &WatchSpec) -> Error {
        match failure {
            WatchFailure::Gone => Error::NotFound {
                path: spec.path.clone(),
            },
            WatchFailure::Denied => Error::PermissionDenied {
                path: spec.path.clone(),
            },
            WatchFailure::AlreadyWatched => Error::io(
                format!("cannot watch {}", spec.path.display()),
                io::Error::other("already watched"),
            ),
            WatchFailure::OutOfWatches => {
                let needed = count_directories(spec);
                let limit = sys::inotify_limit("max_user_watches");
                Error::TooManyWatches {
                    path: spec.path.clone(),
                    limit: limit.map_or_else(|| "unknown".into(), |l| l.to_string()),
                    needed,
                    suggested: (limit.unwrap_or(8192) + needed).next_power_of_two(),
                }
            }
            WatchFailure::Other(error) => {
                Error::io(format!("cannot watch {}", spec.path.display()), error)
            }
        }
    }

    /// Forgets a node and everything below it. With `unwatch`, also removes the kernel watches
    /// (for subtrees that left the watched area but still exist).
    fn drop_subtree(&mut self, top: usize, unwatch: bool) {
        // What was below is gone from the index: every path of it, under its old name.
        self.mark_subtree(top);
        let mut stack = vec![top];
        while let Some(key) = stack.pop() {
            let Some(node) = self.nodes[key].as_ref() else {
                continue;
            };
            stack.extend(node.entries.values().filter_map(|entry| entry.child.get()));
            if unwatch {
                let _ = self.inotify.rm_watch(node.wd);
            }
            self.release_node(key);
        }
    }

    fn release_node(&mut self, key: usize) {
        let Some(node) = self.nodes[key].take() else {
            return;
        };
        if self.by_wd.get(&node.wd) == Some(&key) {
            self.by_wd.remove(&node.wd);
        }
        if let Some(parent) = node.parent
            && let Some(parent_node) = self.nodes[parent].as_mut()
            && let Some(name) = node.path.file_name()
            && let Some(entry) = parent_node.entries.get_mut(name.as_bytes())
            && entry.child.get() == Some(key)
        {
            entry.child = Child::NONE;
        }
        let mut lost = Vec::new();
        for (id, watch) in self.watches.iter_mut() {
            if watch.root == Some(key) {
                watch.root = None;
                lost.push(*id);
            }
        }
        for id in lost {
            self.root_lost(id);
        }
        self.free_nodes.push(key);
    }

    // ----- delivery ----------------------------------------------------------------------------

    /// Appends the event to the batch if at least one owner of the node wants it.
    fn emit(
        &mut self,
        key: usize,
        mask: Mask,
        cookie: u32,
        name: &[u8],
        src_pathname: Option<PathBuf>,
        origin: Origin,
    ) {
        if let Some(watches) = self.interested(key, mask, name) {
            let node = self.node(key);
            let (wd, path) = (node.wd, node.path.clone());
            self.push_event(mask, cookie, wd, path, name, src_pathname, origin, watches);
        }
    }

    /// The owners of node `key` that want the event `mask` about `name`; `None` when none does.
    fn interested(&self, key: usize, mask: Mask, name: &[u8]) -> Option<Arc<[WatchId]>> {
        let node = self.node(key);
        let always = mask.intersects(Mask::SPECIAL_EVENTS);
        let is_dir = mask.contains(Mask::IN_ISDIR);
        let mut watches = Vec::new();
        for id in node.owners.iter() {
            let watch = &self.watches[id];
            if !always
                && !watch
                    .delivered
                    .intersects(mask.intersection(Mask::ALL_EVENTS))
            {
                continue;
            }
            let filters = &watch.spec.filters;
            let about_root = name.is_empty() && watch.root == Some(key);
            let unfiltered = filters.include.is_empty() && filters.exclude.is_empty();
            if !about_root
                && !unfiltered
                && !filters.reports(&relative(&watch.root_bytes, &node.path, name), is_dir)
            {
                continue;
            }
            watches.push(*id);
        }
        if watches.is_empty() {
            return None;
        }
        Some(if watches.len() == node.owners.len() {
            node.owners.clone()
        } else {
            watches.into()
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn push_event(
        &mut self,
        mask: Mask,
        cookie: u32,
        wd: i32,
        path: Arc<Path>,
        name: &[u8],
        src_pathname: Option<PathBuf>,
        origin: Origin,
        watches: Arc<[WatchId]>,
    ) {
        let id = self.next_event_id;
        self.next_event_id += 1;
        self.out.push(Event {
            id,
            mask,
            cookie,
            wd,
            path,
            name: Event::name_from(name),
            src_pathname,
            origin,
            time_ns: self.event_time_ns,
            watches,
        });
    }
}

/// `name` inside `dir`, relative to the watch root (bytes, no leading `/`).
fn relative(root: &[u8], dir: &Path, name: &[u8]) -> Vec<u8> {
    let dir = dir.as_os_str().as_bytes();
    let below = dir.strip_prefix(root).unwrap_or(dir);
    let below = below.strip_prefix(b"/").unwrap_or(below);
    let mut out = Vec::with_capacity(below.len() + 1 + name.len());
    out.extend_from_slice(below);
    if !out.is_empty() && !name.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Absolute, without `.` components or a trailing `/`; symlinks are kept as given.
fn normalize(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::NotFound {
            path: path.to_path_buf(),
        });
    }
    std::path::absolute(path)
        .map(|absolute| absolute.components().collect())
        .map_err(|error| Error::io(format!("cannot resolve {}", path.display()), error))
}

/// How many directories a watch would need, for the out-of-watches message.
fn count_directories(spec: &WatchSpec) -> u64 {
    if !spec.recursive {
        return 1;
    }
    let root = spec.path.as_os_str().as_bytes().to_vec();
    let mut count = 0;
    let mut stack = vec![spec.path.clone()];
    let mut buffer = Vec::new();
    while let Some(dir) = stack.pop() {
        count += 1;
        let Ok(listing) = sys::read_dir(&dir, count == 1, &mut buffer) else {
            continue;
        };
        for entry in listing.into_iter().filter(|e| e.kind == Kind::Dir) {
            if !spec
                .filters
                .is_excluded(&relative(&root, &dir, &entry.name))
            {
                stack.push(dir.join(OsStr::from_bytes(&entry.name)));
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index entry and its name share one cache line: the index of a directory with 100,000
    /// files is probed for every event, so its size is the cost of a miss.
    #[test]
    fn an_index_entry_with_its_name_fits_a_cache_line() {
        assert!(std::mem::size_of::<Entry>() + std::mem::size_of::<Name>() <= 64);
    }

    #[test]
    fn child_keys_round_trip() {
        assert_eq!(Child::NONE.get(), None);
        assert_eq!(Child::of(0).get(), Some(0));
        assert_eq!(Child::of(123_456).get(), Some(123_456));
    }
}
