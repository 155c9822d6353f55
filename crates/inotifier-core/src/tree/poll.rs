//! Polling, for filesystems where inotify hears only this machine (NFS, SMB, FUSE, 9p, ...):
//! each interval, the polled directories are listed again and diffed against the index by the
//! overflow rescan's own code, so a change made by another host is reported as a rescan finds
//! it.
//!
//! A polled directory keeps its kernel watch: changes made through this machine are still
//! reported at once, and the poll finds only the others. For that, the index holds a stat of
//! every file of a polled directory (taken when it is listed and after each kernel event that
//! settles it), and the poll compares stat with stat: a change the kernel reported is not
//! reported again, and one made since is never mistaken for it. A directory whose entries are
//! those the index knows costs a listing and a stat per file, relative to the open directory;
//! only one whose entries changed is diffed in full. A file gone under one name and new under
//! another with the same inode, in one poll, is reported as the rename it was.

use std::fmt;

use super::*;
use crate::filesystem::{self, Filesystem};

/// Which event source a watch uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// inotify, with polling below every path whose filesystem inotify cannot hear fully
    /// (statfs of the root and of every mount below it; [`crate::filesystem`]).
    #[default]
    Auto,
    /// inotify alone, wherever the watch is.
    Inotify,
    /// inotify and polling, wherever the watch is.
    Poll,
}

impl Backend {
    pub const NAMES: [&'static str; 3] = ["auto", "inotify", "poll"];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Inotify => "inotify",
            Backend::Poll => "poll",
        }
    }

    pub fn from_name(name: &str) -> Option<Backend> {
        match name {
            "auto" => Some(Backend::Auto),
            "inotify" => Some(Backend::Inotify),
            "poll" => Some(Backend::Poll),
            _ => None,
        }
    }
}

/// The default of [`WatchSpec::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What a watch's backend comes to: the paths at or below its root that are polled, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendChoice {
    pub backend: Backend,
    pub interval: Duration,
    /// The root and the mount points below it, each with whether it is polled and the
    /// filesystem found there (`None`: not in the table, or statfs failed). The longest one
    /// that contains a directory decides for it.
    pub mounts: Vec<PolledMount>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolledMount {
    pub path: PathBuf,
    pub polled: bool,
    pub filesystem: Option<&'static str>,
}

impl BackendChoice {
    /// Decides for a watch of `spec` (statfs of its root, and for a recursive watch of the
    /// mounts below it): the one rule, shared by the engine, `status` and the doctor.
    pub fn of(spec: &WatchSpec) -> BackendChoice {
        let probe = |path: &Path| {
            let found: Option<Filesystem> = filesystem::filesystem_of(path).ok().and_then(|f| f.0);
            let polled = match spec.backend {
                Backend::Inotify => false,
                Backend::Poll => true,
                Backend::Auto => found.is_some_and(|fs| fs.inotify_misses_changes()),
            };
            PolledMount {
                path: path.to_path_buf(),
                polled,
                filesystem: found.map(|fs| fs.name),
            }
        };
        let root = std::path::absolute(&spec.path).unwrap_or_else(|_| spec.path.clone());
        let mut mounts = vec![probe(&root)];
        if spec.recursive && spec.backend == Backend::Auto {
            mounts.extend(
                filesystem::mounts_below(&root)
                    .iter()
                    .map(|mount| probe(mount)),
            );
        }
        // Longest first: the first that contains a path decides.
        mounts.sort_by_key(|mount| std::cmp::Reverse(mount.path.as_os_str().len()));
        BackendChoice {
            backend: spec.backend,
            interval: spec.poll_interval,
            mounts,
        }
    }

    /// Whether the directory `path` (at or below the root) is polled.
    pub fn polls(&self, path: &Path) -> bool {
        self.mounts
            .iter()
            .find(|mount| path.starts_with(&mount.path))
            .is_some_and(|mount| mount.polled)
    }

    /// Whether anything of the watch is polled.
    pub fn polls_anything(&self) -> bool {
        self.mounts.iter().any(|mount| mount.polled)
    }

    /// `inotify`, `poll`, or `inotify+poll` when only some mounts are polled.
    pub fn summary(&self) -> &'static str {
        match (self.mounts.iter().all(|m| m.polled), self.polls_anything()) {
            (true, _) => "poll",
            (false, true) => "inotify+poll",
            (false, false) => "inotify",
        }
    }

    /// One line for each polled mount, saying why it is polled: what `inotifier watch` prints
    /// and the engine logs once per mount.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .mounts
            .iter()
            .filter(|mount| mount.polled)
            .map(|mount| {
                let every = crate::duration::format_duration(self.interval);
                match (self.backend, mount.filesystem) {
                    (Backend::Poll, _) => {
                        format!(
                            "polling {} every {every} (backend = poll)",
                            mount.path.display()
                        )
                    }
                    (_, filesystem) => format!(
                        "polling {} every {every}: it is on {}, where inotify misses changes \
                         made by other hosts",
                        mount.path.display(),
                        filesystem.unwrap_or("a network filesystem")
                    ),
                }
            })
            .collect();
        reasons.reverse();
        reasons
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.summary())
    }
}

/// A file a poll found gone (or new), with where its event went in the batch.
pub(super) struct Moved {
    pub(super) key: usize,
    pub(super) name: Name,
    pub(super) ino: u64,
    /// Size and mtime, when known: what tells a renamed file from a new one given a freed inode.
    pub(super) content: Option<(u64, i64)>,
    /// Where in the batch its event was (or would have been) put.
    pub(super) at: usize,
    /// Its `IN_DELETE` or `IN_CREATE`, when a watch wanted it.
    pub(super) event: Option<usize>,
    /// The `IN_CLOSE_WRITE` that followed a creation.
    pub(super) close: Option<usize>,
}

/// What one poll found gone and new.
#[derive(Default)]
pub(super) struct PollMoves {
    pub(super) gone: Vec<Moved>,
    pub(super) came: Vec<Moved>,
}

/// A watch's polling: its choice and when its next poll is due.
pub(super) struct PollPlan {
    pub(super) choice: BackendChoice,
    pub(super) next: Instant,
}

impl Tree {
    /// Whether node `key`, at `path`, is polled for one of `owners`.
    pub(super) fn polled_for(&self, owners: &[WatchId], path: &Path) -> bool {
        owners.iter().any(|id| {
            self.watches
                .get(id)
                .and_then(|watch| watch.poll.as_ref())
                .is_some_and(|plan| plan.choice.polls(path))
        })
    }

    /// Logs, once per mount, why it is polled.
    pub(super) fn announce_polling(&mut self, choice: &BackendChoice) {
        for (mount, reason) in choice
            .mounts
            .iter()
            .filter(|mount| mount.polled)
            .rev()
            .zip(choice.reasons())
        {
            if self.announced_mounts.insert(mount.path.clone()) {
                tracing::info!("{reason}");
            }
        }
    }

    /// When the next poll is due, if any watch polls.
    pub(crate) fn next_poll(&self) -> Option<Instant> {
        self.watches
            .values()
            .filter_map(|watch| watch.poll.as_ref().map(|plan| plan.next))
            .min()
    }

    /// Polls every watch whose poll is due at `now`: its polled directories are listed and
    /// diffed against the index. The next poll is an interval after this one ends, so a poll
    /// slower than its interval never runs back to back.
    pub(crate) fn poll_due(&mut self, now: Instant) {
        let due: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, watch)| watch.poll.as_ref().is_some_and(|plan| plan.next <= now))
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() {
            return;
        }
        self.tick();
        let first = self.out.len();
        self.poll_moves = Some(PollMoves::default());
        let mut polled = std::collections::HashSet::new();
        for id in &due {
            let Some(root) = self.watches.get(id).and_then(|watch| watch.root) else {
                continue;
            };
            // Listed first, rescanned after: a rescan adds and drops nodes.
            let mut nodes = Vec::new();
            let mut stack = vec![root];
            while let Some(key) = stack.pop() {
                let Some(node) = self.nodes[key].as_ref() else {
                    continue;
                };
                if node.polled && polled.insert(key) {
                    nodes.push(key);
                }
                stack.extend(node.entries.values().filter_map(|e| e.child.get()));
            }
            for key in nodes {
                self.poll_node(key);
            }
        }
        if let Some(moves) = self.poll_moves.take() {
            self.pair_moves(first, moves);
        }
        let next = Instant::now();
        for id in due {
            if let Some(plan) = self.watches.get_mut(&id).and_then(|w| w.poll.as_mut()) {
                plan.next = next + plan.choice.interval;
            }
        }
    }

    fn poll_node(&mut self, key: usize) {
        if self.nodes[key].is_none() {
            return;
        }
        // Listing a directory shows on its own watch and, as an event about a child, on its
        // parent's: both leave out the read events meanwhile.
        let parent = self.node(key).parent;
        for quiet in std::iter::once(key).chain(parent) {
            let node = self.node(quiet);
            let mask = self.kernel_mask(&node.owners, node.parent.is_none(), node.is_dir);
            if node.is_dir && mask.intersects(READ_EVENTS) {
                let _ = self.set_kernel_mask(quiet, mask.without(READ_EVENTS));
                self.quieted.push(quiet);
            }
        }
        if !self.poll_unchanged_listing(key) {
            let mut new_dirs = Vec::new();
            self.rescan_node(key, &mut new_dirs);
            while let Some(added) = new_dirs.pop() {
                self.scan_node(added, Some(Origin::Rescan), &mut new_dirs);
            }
        }
        self.unquiet();
    }

    /// The common case of a poll, cheaply: the directory holds exactly the entries the index
    /// knows, so only its files' stats (taken relative to the open directory, without a path
    /// lookup each) are compared, and those that changed reported. False when entries came,
    /// went or were replaced: the full rescan of the directory does the rest.
    fn poll_unchanged_listing(&mut self, key: usize) -> bool {
        let Some((_, listing)) = self.list_node(key) else {
            return true;
        };
        let path = self.node(key).path.clone();
        let Ok(handle) = sys::DirHandle::open(&path) else {
            return false;
        };
        let mut changed = Vec::new();
        let node = self.node(key);
        let mut matched = 0;
        for found in &listing {
            let Some(entry) = node.entries.get(&found.name) else {
                if found.kind == Kind::Dir && self.excluded_everywhere(key, &found.name) {
                    continue;
                }
                return false;
            };
            let was_dir = entry.kind == Kind::Dir;
            if was_dir != (found.kind == Kind::Dir) || (entry.ino != 0 && entry.ino != found.ino) {
                return false;
            }
            matched += 1;
            if was_dir {
                continue;
            }
            let Ok(stat) = handle.lstat(&found.name) else {
                return false;
            };
            let now = Seen::from(stat);
            if entry.stat.as_deref() != Some(&now) {
                changed.push((found.name.clone(), found.ino, stat));
            }
        }
        if matched != node.entries.len() {
            return false;
        }
        for (name, ino, stat) in changed {
            self.compare_with_stat(key, &name, &path, ino, stat);
        }
        true
    }

    /// Turns each file a poll found gone under one name and new under another, with the same
    /// inode, size and mtime, into the rename it was: `IN_MOVED_FROM` and `IN_MOVED_TO` (with
    /// `src_pathname`) side by side where the creation was, in place of the deletion, the
    /// creation and its close. A file renamed and rewritten within one interval stays a
    /// deletion and a creation. Ids are given again in the batch's new order.
    fn pair_moves(&mut self, first: usize, moves: PollMoves) {
        if moves.gone.is_empty() || moves.came.is_empty() {
            return;
        }
        let mut came_by_ino: HashMap<u64, Option<usize>> = HashMap::default();
        for (index, came) in moves.came.iter().enumerate() {
            came_by_ino
                .entry(came.ino)
                .and_modify(|seen| *seen = None)
                .or_insert(Some(index));
        }
        let mut dropped = std::collections::HashSet::new();
        let mut inserted: Vec<(usize, Vec<Event>)> = Vec::new();
        for gone in &moves.gone {
            let Some(Some(index)) = came_by_ino.remove(&gone.ino) else {
                continue;
            };
            let came = &moves.came[index];
            // An inode number freed by a deletion is soon given to a new file: only the same
            // size and mtime (which a rename keeps) make it the same file.
            if gone.ino == 0
                || gone.content.is_none()
                || gone.content != came.content
                || self.nodes[gone.key].is_none()
                || self.nodes[came.key].is_none()
            {
                continue;
            }
            let cookie = self.next_cookie;
            self.next_cookie = self.next_cookie.wrapping_add(1).max(0xC000_0000);
            let from = self.node(gone.key).path.join(OsStr::from_bytes(&gone.name));
            let mut pair = Vec::new();
            pair.extend(self.unnumbered(gone.key, Mask::IN_MOVED_FROM, cookie, &gone.name, None));
            pair.extend(self.unnumbered(
                came.key,
                Mask::IN_MOVED_TO,
                cookie,
                &came.name,
                Some(from),
            ));
            dropped.extend(gone.event);
            dropped.extend(came.event);
            dropped.extend(came.close);
            inserted.push((came.at, pair));
        }
        if inserted.is_empty() {
            return;
        }
        inserted.sort_by_key(|(at, _)| *at);
        let first_id = self
            .out
            .get(first)
            .map_or(self.next_event_id, |event| event.id);
        let tail: Vec<Event> = self.out.drain(first..).collect();
        let mut inserts = inserted.into_iter().peekable();
        for (offset, event) in tail.into_iter().enumerate() {
            while let Some((_, pair)) = inserts.next_if(|(at, _)| *at <= first + offset) {
                self.out.extend(pair);
            }
            if !dropped.contains(&(first + offset)) {
                self.out.push(event);
            }
        }
        for (_, pair) in inserts {
            self.out.extend(pair);
        }
        for (offset, event) in self.out[first..].iter_mut().enumerate() {
            event.id = first_id + offset as u64;
        }
        self.next_event_id = first_id + (self.out.len() - first) as u64;
    }

    /// The event `mask` about `name` in node `key`, for the watches that want it, without an id
    /// yet (see [`Tree::pair_moves`]); `None` when no watch wants it.
    fn unnumbered(
        &self,
        key: usize,
        mask: Mask,
        cookie: u32,
        name: &[u8],
        src_pathname: Option<PathBuf>,
    ) -> Option<Event> {
        let watches = self.interested(key, mask, name)?;
        let node = self.node(key);
        Some(Event {
            id: 0,
            mask,
            cookie,
            wd: node.wd,
            path: node.path.clone(),
            name: Event::name_from(name),
            src_pathname,
            origin: Origin::Rescan,
            time_ns: self.event_time_ns,
            watches,
        })
    }

    /// Records the stat of entry `name` of a polled node, so that the next poll compares with
    /// it; nothing for a node that is not polled.
    pub(super) fn baseline_if_polled(&mut self, key: usize, name: &[u8]) {
        let node = self.node(key);
        if !node.polled {
            return;
        }
        let Ok(stat) = sys::lstat(&node.path.join(OsStr::from_bytes(name))) else {
            return;
        };
        if let Some(entry) = self.node_mut(key).entries.get_mut(name)
            && entry.kind != Kind::Dir
        {
            entry.stat = Some(Box::new(Seen::from(stat)));
        }
    }
}
