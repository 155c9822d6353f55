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

/// Names come from whoever writes in the watched directories, so the hash is seeded (foldhash
/// resists simple flooding) while staying much faster than SipHash on short keys.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What to watch and how; the engine's unit of configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub path: PathBuf,
    /// The events to report. Flags `IN_EXCL_UNLINK`, `IN_ONLYDIR` and `IN_DONT_FOLLOW` apply to
    /// the root; `IN_ONESHOT` is honoured on non-recursive watches only.
    pub mask: Mask,
    /// Watch every directory below `path` too.
    pub recursive: bool,
    /// Watch (and scan) directories created or moved in later; only meaningful with `recursive`.
    pub auto_add: bool,
    pub filters: Filters,
}

impl WatchSpec {
    pub fn new(path: impl Into<PathBuf>, mask: Mask) -> WatchSpec {
        WatchSpec {
            path: path.into(),
            mask,
            recursive: false,
            auto_add: false,
            filters: Filters::default(),
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

/// The part of a stat the rescan compares.
#[derive(Clone, Copy)]
struct Seen {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

/// One file or directory inside a watched directory.
struct Entry {
    kind: Kind,
    /// 0 when known from an event only.
    ino: u64,
    /// What the last stat said; `None` when an event has changed it since.
    stat: Option<Seen>,
    /// Coarse realtime of the last time the index was known to be right about this entry: a
    /// later mtime or ctime means a change the index has not seen.
    since_ns: i64,
    /// Found by a scan after its directory was watched, so the kernel may still report its
    /// creation: that duplicate is dropped.
    from_scan: bool,
    /// The node of a watched subdirectory.
    child: Option<usize>,
}

struct Node {
    wd: i32,
    path: Arc<Path>,
    parent: Option<usize>,
    /// The watches covering this directory, shared with the events that match all of them.
    owners: Arc<[WatchId]>,
    entries: HashMap<Name, Entry>,
    is_dir: bool,
}

struct Watch {
    spec: WatchSpec,
    root: Option<usize>,
    /// The root's path as bytes, to make paths relative for the filters.
    root_bytes: Box<[u8]>,
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
    pub(crate) out: Vec<Event>,
    next_event_id: u64,
    /// The index baseline for changes seen in the current batch (see [`Tree::tick`]).
    coarse_now_ns: i64,
    coarse_lag_ns: i64,
    event_time_ns: i64,
    warned_paths: std::collections::HashSet<PathBuf>,
    warned_watch_limit: bool,
    initial_walk_failure: Option<WatchFailure>,
    /// Nodes whose kernel watch leaves out [`READ_EVENTS`] until the current listing is done.
    quieted: Vec<usize>,
    dirent_buffer: Vec<u8>,
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
    pub(crate) fn new(inotify: Inotify, move_window: Duration) -> Tree {
        Tree {
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
            coarse_lag_ns: sys::coarse_lag_ns(),
            event_time_ns: 0,
            warned_paths: Default::default(),
            warned_watch_limit: false,
            initial_walk_failure: None,
            quieted: Vec::new(),
            dirent_buffer: Vec::new(),
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

    fn node(&self, key: usize) -> &Node {
        self.nodes[key].as_ref().expect("live node")
    }

    fn node_mut(&mut self, key: usize) -> &mut Node {
        self.nodes[key].as_mut().expect("live node")
    }

    // ----- adding and removing watches -------------------------------------------------------

    pub(crate) fn add_watch(&mut self, mut spec: WatchSpec) -> Result<WatchId> {
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
        self.watches.insert(
            id,
            Watch {
                spec,
                root: None,
                root_bytes,
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
        if self.watches.remove(&id).is_none() {
            return Err(Error::UnknownWatch(id));
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

    /// The mask the kernel must report for a node: what its owners want plus what tracking needs.
    fn kernel_mask(&self, owners: &[WatchId], is_root: bool, is_dir: bool) -> Mask {
        let mut mask = TRACKING;
        for id in owners {
            let spec = &self.watches[id].spec;
            mask |= spec.mask.intersection(Mask::ALL_EVENTS);
            if is_root {
                mask |= spec.mask.intersection(ROOT_FLAGS);
                if !spec.recursive {
                    mask |= spec.mask.intersection(Mask::IN_ONESHOT);
                }
            }
        }
        if !is_root {
            mask |= Mask::IN_DONT_FOLLOW | Mask::IN_ONLYDIR;
        }
        if !is_dir {
            mask = mask.without(Mask::IN_ONLYDIR);
        }
        mask
    }

    fn refresh_kernel_mask(&mut self, key: usize) -> io::Result<()> {
        let node = self.node(key);
        let mask = self.kernel_mask(&node.owners, node.parent.is_none(), node.is_dir);
        self.set_kernel_mask(key, mask)
    }

    /// inotify changes a watch's mask by path only; if the path now leads elsewhere (the
    /// directory moved and the move is not processed yet), undo what that did.
    fn set_kernel_mask(&mut self, key: usize, mask: Mask) -> io::Result<()> {
        let node = self.node(key);
        let (path, wd) = (node.path.clone(), node.wd);
        let got = self.inotify.add_watch(&path, mask)?;
        if got != wd {
            match self.by_wd.get(&got) {
                Some(&other) => {
                    let other_node = self.node(other);
                    let mask = self.kernel_mask(
                        &other_node.owners,
                        other_node.parent.is_none(),
                        other_node.is_dir,
                    );
                    let _ = self.inotify.add_watch(&path, mask);
                }
                None => {
                    let _ = self.inotify.rm_watch(got);
                }
            }
        }
        Ok(())
    }

    /// Leaves [`READ_EVENTS`] out of every watch, before a listing of the whole tree.
    fn quiet_all(&mut self) {
        let keys: Vec<usize> = (0..self.nodes.len())
            .filter(|&key| self.nodes[key].is_some())
            .collect();
        for key in keys {
            let node = self.node(key);
            let mask = self.kernel_mask(&node.owners, node.parent.is_none(), node.is_dir);
            if mask.intersects(READ_EVENTS) {
                let _ = self.set_kernel_mask(key, mask.without(READ_EVENTS));
                self.quieted.push(key);
            }
        }
    }

    /// Gives the quieted watches their full mask back, once a listing is done. A large tree's
    /// are restored by two threads: most of the cost is the kernel's path lookup, which runs in
    /// parallel.
    fn unquiet(&mut self) {
        let quieted = std::mem::take(&mut self.quieted);
        let restores: Vec<(Arc<Path>, Mask, i32, usize)> = quieted
            .into_iter()
            .filter_map(|key| {
                let node = self.nodes[key].as_ref()?;
                let mask = self.kernel_mask(&node.owners, node.parent.is_none(), node.is_dir);
                Some((node.path.clone(), mask, node.wd, key))
            })
            .collect();
        let inotify = &self.inotify;
        // The watch descriptor the kernel answered for each, to catch paths that moved.
        let restore = |part: &[(Arc<Path>, Mask, i32, usize)]| -> Vec<usize> {
            part.iter()
                .filter(|(path, mask, wd, _)| {
                    inotify.add_watch(path, *mask).is_ok_and(|got| got != *wd)
                })
                .map(|(.., key)| *key)
                .collect()
        };
        let moved: Vec<usize> = if restores.len() >= PARALLEL_RESTORE_MIN {
            let (first, second) = restores.split_at(restores.len() / 2);
            std::thread::scope(|scope| {
                let helper = scope.spawn(|| restore(second));
                let mut moved = restore(first);
                moved.extend(helper.join().unwrap_or_default());
                moved
            })
        } else {
            restore(&restores)
        };
        // A directory that moved before its move was processed: its path reached another
        // inode. Redo those the careful way, which undoes the stray watch.
        for key in moved {
            if self.nodes[key].is_some() {
                let _ = self.refresh_kernel_mask(key);
            }
        }
    }

    /// Watches the directory at `path` and, when `recursive`, everything below it. With
    /// `synthesize`, every entry found gets an `IN_CREATE` (and regular files an
    /// `IN_CLOSE_WRITE`), as the kernel would have reported had the watch been there.
    fn watch_directory(
        &mut self,
        path: Arc<Path>,
        parent: Option<usize>,
        owners: Arc<[WatchId]>,
        is_dir: bool,
        synthesize: Option<Origin>,
    ) -> std::result::Result<usize, WatchFailure> {
        let top = self.add_node(path, parent, owners, is_dir)?;
        // An explicit stack: trees can be deeper than the thread's stack allows recursion.
        let mut pending = vec![top];
        while let Some(key) = pending.pop() {
            if self.initial_walk_failure.is_some() {
                break;
            }
            self.scan_node(key, synthesize, &mut pending);
        }
        self.unquiet();
        Ok(top)
    }

    fn add_node(
        &mut self,
        path: Arc<Path>,
        parent: Option<usize>,
        owners: Arc<[WatchId]>,
        is_dir: bool,
    ) -> std::result::Result<usize, WatchFailure> {
        let full_mask = self.kernel_mask(&owners, parent.is_none(), is_dir);
        let quiet = is_dir && full_mask.intersects(READ_EVENTS);
        let mask = if quiet {
            full_mask.without(READ_EVENTS)
        } else {
            full_mask
        };
        let wd = match self.inotify.add_watch(&path, mask) {
            Ok(wd) => wd,
            Err(error) => {
                return Err(match error.raw_os_error() {
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) => {
                        WatchFailure::Gone
                    }
                    Some(libc::EACCES) | Some(libc::EPERM) => WatchFailure::Denied,
                    Some(libc::ENOSPC) => WatchFailure::OutOfWatches,
                    _ => WatchFailure::Other(error),
                });
            }
        };
        if let Some(&existing) = self.by_wd.get(&wd) {
            let node = self.node_mut(existing);
            if parent.is_none() && *node.path == *path {
                // A second watch on a directory another watch already covers: share the node.
                let mut all = node.owners.to_vec();
                all.extend(owners.iter().filter(|owner| !node.owners.contains(owner)));
                node.owners = all.into();
                let _ = self.refresh_kernel_mask(existing);
                return Ok(existing);
            }
            // The kernel replaced the mask of the existing watch; give it back its own.
            let _ = self.refresh_kernel_mask(existing);
            return Err(WatchFailure::AlreadyWatched);
        }
        let node = Node {
            wd,
            path,
            parent,
            owners,
            entries: HashMap::default(),
            is_dir,
        };
        let key = match self.free_nodes.pop() {
            Some(key) => {
                self.nodes[key] = Some(node);
                key
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.by_wd.insert(wd, key);
        if quiet {
            self.quieted.push(key);
        }
        Ok(key)
    }

    /// Lists one watched directory into the index, watches its subdirectories (pushing them on
    /// `pending` to be scanned in turn) and synthesizes events for what it finds.
    fn scan_node(&mut self, key: usize, synthesize: Option<Origin>, pending: &mut Vec<usize>) {
        let node = self.node(key);
        if !node.is_dir {
            return;
        }
        let path = node.path.clone();
        // Taken before listing: anything changed after this shows a later mtime or ctime.
        let since_ns = sys::coarse_realtime_ns();
        let listing = match sys::read_dir(&path, node.parent.is_none(), &mut self.dirent_buffer) {
            Ok(listing) => listing,
            Err(error) => {
                self.warn_unreadable(&path, &error);
                return;
            }
        };
        for found in listing {
            self.add_entry(
                key, found.name, found.kind, found.ino, since_ns, synthesize, pending,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_entry(
        &mut self,
        key: usize,
        name: Name,
        kind: Kind,
        ino: u64,
        since_ns: i64,
        synthesize: Option<Origin>,
        pending: &mut Vec<usize>,
    ) {
        let is_dir = kind == Kind::Dir;
        let child_owners = if is_dir {
            self.child_owners(key, &name, synthesize.is_some())
        } else {
            Arc::new([])
        };
        if is_dir && child_owners.is_empty() && self.excluded_everywhere(key, &name) {
            return;
        }
        if let Some(origin) = synthesize {
            let isdir = if is_dir {
                Mask::IN_ISDIR
            } else {
                Mask::empty()
            };
            self.emit(key, Mask::IN_CREATE | isdir, 0, &name, None, origin);
            if kind == Kind::File {
                self.emit(key, Mask::IN_CLOSE_WRITE, 0, &name, None, origin);
            }
        }
        let mut entry = Entry {
            kind,
            ino,
            stat: None,
            since_ns,
            from_scan: synthesize.is_some(),
            child: None,
        };
        if is_dir && !child_owners.is_empty() {
            let child_path: Arc<Path> =
                Arc::from(self.node(key).path.join(OsStr::from_bytes(&name)));
            match self.add_node(child_path.clone(), Some(key), child_owners, true) {
                Ok(child) => {
                    entry.child = Some(child);
                    pending.push(child);
                }
                Err(WatchFailure::OutOfWatches) if synthesize.is_none() => {
                    // The initial walk of a watch fails as a whole, with the count it needs.
                    self.initial_walk_failure = Some(WatchFailure::OutOfWatches);
                }
                Err(failure) => self.warn_watch_failure(&child_path, failure),
            }
        }
        self.node_mut(key).entries.insert(name, entry);
    }

    /// The watches that should also watch subdirectory `name` of node `key`.
    /// Shares the parent's list when it is the same, as it nearly always is: one allocation
    /// fewer per directory.
    fn child_owners(&self, key: usize, name: &[u8], later: bool) -> Arc<[WatchId]> {
        let node = self.node(key);
        let owners: Vec<WatchId> = node
            .owners
            .iter()
            .copied()
            .filter(|id| {
                let watch = &self.watches[id];
                watch.spec.recursive
                    && (!later || watch.spec.auto_add)
                    && !watch.spec.filters.is_excluded(&relative(
                        &watch.root_bytes,
                        &node.path,
                        name,
                    ))
            })
            .collect();
        if *owners == *node.owners {
            node.owners.clone()
        } else {
            owners.into()
        }
    }

    fn excluded_everywhere(&self, key: usize, name: &[u8]) -> bool {
        let node = self.node(key);
        node.owners.iter().all(|id| {
            let watch = &self.watches[id];
            watch
                .spec
                .filters
                .is_excluded(&relative(&watch.root_bytes, &node.path, name))
        })
    }

    fn warn_unreadable(&mut self, path: &Path, error: &io::Error) {
        match error.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) => {}
            _ => {
                if self.warned_paths.insert(path.to_path_buf()) {
                    tracing::warn!(
                        "cannot read {}: {error}; its contents are not watched",
                        path.display()
                    );
                }
            }
        }
    }

    fn warn_watch_failure(&mut self, path: &Path, failure: WatchFailure) {
        match failure {
            WatchFailure::Gone => {}
            WatchFailure::AlreadyWatched => {
                if self.warned_paths.insert(path.to_path_buf()) {
                    tracing::warn!(
                        "{} is already watched through another path (a bind mount or a loop); not watching it twice",
                        path.display()
                    );
                }
            }
            WatchFailure::Denied => {
                if self.warned_paths.insert(path.to_path_buf()) {
                    tracing::warn!(
                        "permission denied on {}: skipping it and everything below it",
                        path.display()
                    );
                }
            }
            WatchFailure::OutOfWatches => {
                if !self.warned_watch_limit {
                    self.warned_watch_limit = true;
                    let limit = sys::inotify_limit("max_user_watches")
                        .map_or_else(|| "unknown".into(), |l| l.to_string());
                    tracing::error!(
                        "out of inotify watches at {} (fs.inotify.max_user_watches is {limit}, {} in use by this watcher): \
                         new directories are not watched; raise it with `sysctl fs.inotify.max_user_watches=N`",
                        path.display(),
                        self.by_wd.len()
                    );
                }
            }
            WatchFailure::Other(error) => {
                if self.warned_paths.insert(path.to_path_buf()) {
                    tracing::warn!("cannot watch {}: {error}", path.display());
                }
            }
        }
    }

    /// Forgets a node and everything below it. With `unwatch`, also removes the kernel watches
    /// (for subtrees that left the watched area but still exist).
    fn drop_subtree(&mut self, top: usize, unwatch: bool) {
        let mut stack = vec![top];
        while let Some(key) = stack.pop() {
            let Some(node) = self.nodes[key].as_ref() else {
                continue;
            };
            stack.extend(node.entries.values().filter_map(|entry| entry.child));
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
            && entry.child == Some(key)
        {
            entry.child = None;
        }
        for watch in self.watches.values_mut() {
            if watch.root == Some(key) {
                watch.root = None;
            }
        }
        self.free_nodes.push(key);
    }

    // ----- turning kernel events into ours ---------------------------------------------------

    pub(crate) fn handle(&mut self, raw: RawEvent<'_>) {
        if raw.mask.contains(Mask::IN_Q_OVERFLOW) {
            self.overflow();
            return;
        }
        let Some(&key) = self.by_wd.get(&raw.wd) else {
            // A watch already removed (a moved-out subtree): its last events mean nothing now.
            return;
        };
        if raw.name.is_empty() {
            self.handle_self_event(key, raw.mask);
        } else {
            self.handle_child_event(key, raw.mask, raw.cookie, raw.name);
        }
    }

    fn handle_self_event(&mut self, key: usize, mask: Mask) {
        let is_root = self.node(key).parent.is_none();
        self.emit(key, mask, 0, b"", None, Origin::Kernel);
        if mask.contains(Mask::IN_IGNORED) {
            // The kernel dropped this watch (deleted, unmounted or one-shot).
            self.drop_subtree(key, false);
        } else if mask.contains(Mask::IN_MOVE_SELF) && is_root {
            // A root moved away: its new path is unknown, so stop watching it. The kernel
            // confirms with IN_IGNORED, which is delivered then.
            let children: Vec<usize> = self
                .node(key)
                .entries
                .values()
                .filter_map(|e| e.child)
                .collect();
            for child in children {
                self.drop_subtree(child, true);
            }
            let _ = self.inotify.rm_watch(self.node(key).wd);
        }
    }

    fn handle_child_event(&mut self, key: usize, mask: Mask, cookie: u32, name: &[u8]) {
        let is_dir = mask.contains(Mask::IN_ISDIR);
        if mask.contains(Mask::IN_CREATE) {
            let now = self.coarse_now_ns;
            // One probe of the index for the common case, a new file: `entry` allocates the key
            // that the insertion needs anyway.
            let reported = match self.node_mut(key).entries.entry(Name::from_slice(name)) {
                std::collections::hash_map::Entry::Occupied(mut known) => {
                    // Created between the watch and the scan of its directory: a scan after a
                    // new directory appeared has reported it already; the initial scan of a root
                    // has not.
                    let entry = known.get_mut();
                    entry.since_ns = now;
                    entry.stat = None;
                    Some(std::mem::take(&mut entry.from_scan))
                }
                std::collections::hash_map::Entry::Vacant(vacant) if !is_dir => {
                    vacant.insert(Entry {
                        kind: Kind::File,
                        ino: 0,
                        stat: None,
                        since_ns: now,
                        from_scan: false,
                        child: None,
                    });
                    Some(false)
                }
                std::collections::hash_map::Entry::Vacant(_) => None,
            };
            match reported {
                Some(true) => {}
                Some(false) => self.emit(key, mask, cookie, name, None, Origin::Kernel),
                None => {
                    self.emit(key, mask, cookie, name, None, Origin::Kernel);
                    self.entry_appeared(key, name, is_dir, Origin::Scan);
                }
            }
        } else if mask.contains(Mask::IN_DELETE) {
            let Some(entry) = self.node_mut(key).entries.remove(name) else {
                // A rescan has already reported this deletion.
                return;
            };
            self.emit(key, mask, cookie, name, None, Origin::Kernel);
            if let Some(child) = entry.child {
                // Its own IN_IGNORED may be lost in an overflow; forget it now.
                self.drop_subtree(child, false);
            }
        } else if mask.contains(Mask::IN_MOVED_FROM) {
            self.emit(key, mask, cookie, name, None, Origin::Kernel);
            if let Some(entry) = self.node_mut(key).entries.remove(name) {
                let from_pathname = self.node(key).path.join(OsStr::from_bytes(name));
                self.pending_moves.push_back(PendingMove {
                    cookie,
                    from_pathname,
                    entry,
                    deadline: Instant::now() + self.move_window,
                });
            }
        } else if mask.contains(Mask::IN_MOVED_TO) {
            self.moved_to(key, mask, cookie, name);
        } else {
            if mask.intersects(CONTENT_CHANGES) {
                let now = self.coarse_now_ns;
                match self.node_mut(key).entries.get_mut(name) {
                    Some(entry) => {
                        entry.stat = None;
                        entry.since_ns = now;
                    }
                    None => self.entry_appeared(key, name, is_dir, Origin::Scan),
                }
            }
            self.emit(key, mask, cookie, name, None, Origin::Kernel);
        }
    }

    fn moved_to(&mut self, key: usize, mask: Mask, cookie: u32, name: &[u8]) {
        let paired = self
            .pending_moves
            .iter()
            .position(|pending| pending.cookie == cookie && cookie != 0)
            .and_then(|index| self.pending_moves.remove(index));
        let Some(pending) = paired else {
            // Moved in from outside the watched area: like a creation, scanned if a directory.
            self.emit(key, mask, cookie, name, None, Origin::Kernel);
            self.entry_appeared(key, name, mask.contains(Mask::IN_ISDIR), Origin::Scan);
            return;
        };
        self.emit(
            key,
            mask,
            cookie,
            name,
            Some(pending.from_pathname.clone()),
            Origin::Kernel,
        );
        let mut entry = pending.entry;
        entry.from_scan = false;
        entry.stat = None;
        entry.since_ns = self.coarse_now_ns;
        if let Some(child) = entry.child.take() {
            let wanted = self.child_owners(key, name, false);
            if !wanted.is_empty() && *wanted == *self.node(child).owners {
                self.reparent(child, key, name);
                entry.child = Some(child);
            } else {
                // It moved between watches with other settings: start it afresh.
                self.drop_subtree(child, true);
                self.entry_appeared(key, name, true, Origin::Scan);
                return;
            }
        }
        self.node_mut(key).entries.insert(name.into(), entry);
    }

    /// A directory moved inside the tree: same watches, new paths for it and all below it.
    fn reparent(&mut self, child: usize, new_parent: usize, name: &[u8]) {
        let parent_path = self.node(new_parent).path.clone();
        let node = self.node_mut(child);
        node.parent = Some(new_parent);
        node.path = Arc::from(parent_path.join(OsStr::from_bytes(name)));
        let mut stack = vec![child];
        while let Some(key) = stack.pop() {
            let base = self.node(key).path.clone();
            let children: Vec<(usize, Name)> = self
                .node(key)
                .entries
                .iter()
                .filter_map(|(name, entry)| entry.child.map(|c| (c, name.clone())))
                .collect();
            for (grandchild, name) in children {
                self.node_mut(grandchild).path = Arc::from(base.join(OsStr::from_bytes(&name)));
                stack.push(grandchild);
            }
        }
    }

    /// Records an entry the kernel told us about (created or moved in); a directory is watched
    /// and scanned so that what was created in it before its watch landed is reported.
    fn entry_appeared(&mut self, key: usize, name: &[u8], is_dir: bool, origin: Origin) {
        let mut entry = Entry {
            kind: if is_dir { Kind::Dir } else { Kind::File },
            ino: 0,
            stat: None,
            since_ns: self.coarse_now_ns,
            from_scan: false,
            child: None,
        };
        if is_dir {
            let owners = self.child_owners(key, name, true);
            if !owners.is_empty() {
                let path: Arc<Path> = Arc::from(self.node(key).path.join(OsStr::from_bytes(name)));
                // Listing the new directory would also show on its parent's watch.
                let parent = self.node(key);
                let parent_mask = self.kernel_mask(&parent.owners, parent.parent.is_none(), true);
                if parent_mask.intersects(READ_EVENTS) {
                    let _ = self.set_kernel_mask(key, parent_mask.without(READ_EVENTS));
                    self.quieted.push(key);
                }
                match self.watch_directory(path.clone(), Some(key), owners, true, Some(origin)) {
                    Ok(child) => entry.child = Some(child),
                    Err(failure) => self.warn_watch_failure(&path, failure),
                }
                self.unquiet();
            }
        }
        self.node_mut(key).entries.insert(name.into(), entry);
    }

    /// Settles moves whose other half did not come within the window: the entry left the
    /// watched area, so a directory's watches go.
    pub(crate) fn expire_moves(&mut self, all: bool) {
        if self.pending_moves.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(front) = self.pending_moves.front() {
            if !all && front.deadline > now {
                break;
            }
            let pending = self.pending_moves.pop_front().expect("front exists");
            if let Some(child) = pending.entry.child {
                self.drop_subtree(child, true);
            }
        }
    }

    pub(crate) fn next_move_deadline(&self) -> Option<Instant> {
        self.pending_moves.front().map(|pending| pending.deadline)
    }

    // ----- overflow recovery -----------------------------------------------------------------

    /// The kernel dropped events. Report that, then rescan every watched directory and diff it
    /// against the index, synthesizing exactly the changes the index has not seen.
    fn overflow(&mut self) {
        let everyone: Vec<WatchId> = self.watches.keys().copied().collect();
        self.push_event(
            Mask::IN_Q_OVERFLOW,
            0,
            -1,
            Arc::from(Path::new("")),
            b"",
            None,
            Origin::Kernel,
            everyone.into(),
        );
        tracing::warn!(
            "inotify queue overflowed; rescanning {} directories",
            self.by_wd.len()
        );
        // Moves whose second half was dropped: treat them as having left, the rescan will find
        // where they went.
        self.expire_moves(true);
        self.quiet_all();
        let mut roots: Vec<usize> = self.watches.values().filter_map(|w| w.root).collect();
        roots.sort_unstable();
        roots.dedup();
        let mut stack = roots;
        while let Some(key) = stack.pop() {
            if self.nodes[key].is_none() {
                continue;
            }
            let mut new_dirs = Vec::new();
            self.rescan_node(key, &mut new_dirs);
            // New directories were scanned as they were added; only known ones need a rescan.
            stack.extend(
                self.node(key)
                    .entries
                    .values()
                    .filter_map(|e| e.child)
                    .filter(|c| !new_dirs.contains(c)),
            );
            let mut pending = new_dirs;
            while let Some(added) = pending.pop() {
                self.scan_node(added, Some(Origin::Rescan), &mut pending);
            }
        }
        self.unquiet();
    }

    fn rescan_node(&mut self, key: usize, new_dirs: &mut Vec<usize>) {
        let node = self.node(key);
        if !node.is_dir {
            return;
        }
        let path = node.path.clone();
        let since_ns = sys::coarse_realtime_ns();
        let listing = match sys::read_dir(&path, node.parent.is_none(), &mut self.dirent_buffer) {
            Ok(listing) => listing,
            // Gone: its parent's rescan reports that.
            Err(error) => {
                self.warn_unreadable(&path, &error);
                return;
            }
        };
        let mut on_disk: HashMap<Name, (u64, Kind)> = listing
            .into_iter()
            .map(|e| (e.name, (e.ino, e.kind)))
            .collect();

        let known: Vec<Name> = self.node(key).entries.keys().cloned().collect();
        for name in known {
            let entry = &self.node(key).entries[&name];
            match on_disk.remove(&name) {
                None => self.synthesize_removal(key, &name),
                Some((ino, kind)) => {
                    let replaced = (entry.ino != 0 && entry.ino != ino)
                        || (entry.kind == Kind::Dir) != (kind == Kind::Dir);
                    if entry.kind == Kind::Dir && !replaced {
                        // A directory's own times change with its entries; those are diffed below.
                        continue;
                    }
                    if replaced {
                        // Gone, and a new entry of that name: reported as the new ones below.
                        self.synthesize_removal(key, &name);
                        on_disk.insert(name, (ino, kind));
                    } else {
                        self.compare_metadata(key, &name, &path, ino);
                    }
                }
            }
        }
        for (name, (ino, kind)) in on_disk {
            self.add_entry(
                key,
                name,
                kind,
                ino,
                since_ns,
                Some(Origin::Rescan),
                new_dirs,
            );
        }
    }

    /// Reports what changed in an entry the index knew, judged by its stat.
    fn compare_metadata(&mut self, key: usize, name: &[u8], dir: &Path, ino: u64) {
        let Ok(stat) = sys::lstat(&dir.join(OsStr::from_bytes(name))) else {
            return;
        };
        let entry = self
            .node_mut(key)
            .entries
            .get_mut(name)
            .expect("known entry");
        let (modified, attrib) = match entry.stat {
            Some(old) => (
                old.size != stat.size || old.mtime_ns != stat.mtime_ns,
                old.ctime_ns != stat.ctime_ns,
            ),
            // Same tick counts as changed: a spurious report beats a lost one.
            None => (
                stat.mtime_ns >= entry.since_ns,
                stat.ctime_ns >= entry.since_ns,
            ),
        };
        entry.stat = Some(Seen {
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            ctime_ns: stat.ctime_ns,
        });
        entry.ino = ino;
        let isdir = if stat.kind == Kind::Dir {
            Mask::IN_ISDIR
        } else {
            Mask::empty()
        };
        if modified && stat.kind != Kind::Dir {
            self.emit(key, Mask::IN_MODIFY, 0, name, None, Origin::Rescan);
            if stat.kind == Kind::File {
                self.emit(key, Mask::IN_CLOSE_WRITE, 0, name, None, Origin::Rescan);
            }
        } else if attrib {
            self.emit(key, Mask::IN_ATTRIB | isdir, 0, name, None, Origin::Rescan);
        }
    }

    /// An indexed entry is gone: report its deletion, and that of everything below it first.
    fn synthesize_removal(&mut self, key: usize, name: &[u8]) {
        let Some(entry) = self.node_mut(key).entries.remove(name) else {
            return;
        };
        if let Some(child) = entry.child {
            // Depth first, children before parents, as the kernel reports an `rm -r`.
            let mut order = Vec::new();
            let mut stack = vec![child];
            while let Some(node) = stack.pop() {
                order.push(node);
                stack.extend(self.node(node).entries.values().filter_map(|e| e.child));
            }
            for &node in order.iter().rev() {
                let names: Vec<(Name, bool)> = self
                    .node(node)
                    .entries
                    .iter()
                    .map(|(n, e)| (n.clone(), e.kind == Kind::Dir))
                    .collect();
                for (child_name, is_dir) in names {
                    let isdir = if is_dir {
                        Mask::IN_ISDIR
                    } else {
                        Mask::empty()
                    };
                    self.emit(
                        node,
                        Mask::IN_DELETE | isdir,
                        0,
                        &child_name,
                        None,
                        Origin::Rescan,
                    );
                }
            }
            self.drop_subtree(child, true);
        }
        let isdir = if entry.kind == Kind::Dir {
            Mask::IN_ISDIR
        } else {
            Mask::empty()
        };
        self.emit(key, Mask::IN_DELETE | isdir, 0, name, None, Origin::Rescan);
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
        let node = self.node(key);
        let always = mask.intersects(Mask::SPECIAL_EVENTS);
        let is_dir = mask.contains(Mask::IN_ISDIR);
        let mut watches = Vec::new();
        for id in node.owners.iter() {
            let watch = &self.watches[id];
            if !always
                && !watch
                    .spec
                    .mask
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
            return;
        }
        let watches = if watches.len() == node.owners.len() {
            node.owners.clone()
        } else {
            watches.into()
        };
        let (wd, path) = (node.wd, node.path.clone());
        self.push_event(mask, cookie, wd, path, name, src_pathname, origin, watches);
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
