//! Exporting what the index knows of a watch as snapshot entries, in full or as the changes
//! since the previous export.
//!
//! Every change to the index marks the paths it touches (relative to each tracking watch's
//! root) dirty: an entry created, removed, written or moved, both the old and the new paths of
//! everything below a moved directory, and the directory an entry was created in or removed
//! from (its times changed). An export looks each dirty path up in the index as it is then: an
//! entry there is an upsert, none a removal. So whatever happened in between, the persisted
//! snapshot ends equal to the index at each path the export covers, and the paths it does not
//! cover did not change.

use std::collections::VecDeque;

use super::*;
use crate::snapshot::{SnapshotChange, SnapshotEntry};

/// Below this many entries to `lstat`, a second thread costs more than it saves.
const PARALLEL_STAT_MIN: usize = 4096;
/// Entries of one directory `lstat`ed through one handle, at most; a directory of 100,000
/// files is split, so that both threads share it.
const STAT_CHUNK: usize = 1024;

/// One entry of a watch's view of the index.
pub(super) struct Viewed {
    /// The node of the directory holding it.
    pub(super) key: usize,
    pub(super) name: Name,
    /// Relative to the watch root.
    pub(super) rel: Vec<u8>,
}

impl Tree {
    /// Marks `dir/name` and `dir` dirty for every tracking watch whose root they are below.
    pub(super) fn mark(&mut self, dir: &Path, name: &[u8]) {
        if self.tracked == 0 {
            return;
        }
        let dir = dir.as_os_str().as_bytes();
        for watch in self.watches.values_mut() {
            let Some(dirty) = watch.dirty.as_mut() else {
                continue;
            };
            let Some(below) = below_root(&watch.root_bytes, dir) else {
                continue;
            };
            if !below.is_empty() {
                if !dirty.contains(below) {
                    dirty.insert(below.to_vec());
                }
                if name.is_empty() {
                    continue;
                }
            } else if name.is_empty() {
                continue;
            }
            let mut rel = Vec::with_capacity(below.len() + 1 + name.len());
            rel.extend_from_slice(below);
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name);
            dirty.insert(rel);
        }
    }

    /// Marks a node's directory and everything below it dirty, under the paths the nodes have
    /// now.
    pub(super) fn mark_subtree(&mut self, top: usize) {
        if self.tracked == 0 {
            return;
        }
        let mut paths: Vec<(Arc<Path>, Name)> = Vec::new();
        let mut stack = vec![top];
        while let Some(key) = stack.pop() {
            let Some(node) = self.nodes[key].as_ref() else {
                continue;
            };
            paths.push((node.path.clone(), Name::new()));
            for (name, entry) in &node.entries {
                paths.push((node.path.clone(), name.clone()));
                stack.extend(entry.child.get());
            }
        }
        for (dir, name) in paths {
            self.mark(&dir, &name);
        }
    }

    /// Starts (or restarts) exporting changes for a watch: from now on, `dirty` collects them.
    pub(super) fn start_tracking(&mut self, id: WatchId) -> Result<()> {
        let watch = self.watches.get_mut(&id).ok_or(Error::UnknownWatch(id))?;
        let newly_content = !std::mem::replace(&mut watch.track_content, true);
        if watch.dirty.replace(Default::default()).is_none() {
            self.tracked += 1;
        }
        if newly_content {
            // Stats the index keeps are only as good as the events that invalidate them.
            let owned: Vec<usize> = (0..self.nodes.len())
                .filter(|&key| {
                    self.nodes[key]
                        .as_ref()
                        .is_some_and(|node| node.owners.contains(&id))
                })
                .collect();
            for key in owned {
                let _ = self.refresh_kernel_mask(key);
            }
        }
        Ok(())
    }

    /// Every entry of a watch's view of the index, parents before their children (breadth
    /// first): the root's entries, and with a recursive watch those of every directory below
    /// that the watch covers; excluded entries left out.
    pub(super) fn view(&self, id: WatchId) -> Vec<Viewed> {
        let Some(watch) = self.watches.get(&id) else {
            return Vec::new();
        };
        let Some(root) = watch.root else {
            return Vec::new();
        };
        let filters = &watch.spec.filters;
        let mut out = Vec::new();
        let mut queue = VecDeque::from([(root, Vec::new())]);
        while let Some((key, prefix)) = queue.pop_front() {
            let node = self.node(key);
            for (name, entry) in &node.entries {
                let mut rel = Vec::with_capacity(prefix.len() + 1 + name.len());
                rel.extend_from_slice(&prefix);
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(name);
                if !filters.exclude.is_empty() && filters.is_excluded(&rel) {
                    continue;
                }
                if watch.spec.recursive
                    && let Some(child) = entry.child.get()
                    && self.node(child).owners.contains(&id)
                {
                    queue.push_back((child, rel.clone()));
                }
                out.push(Viewed {
                    key,
                    name: name.clone(),
                    rel,
                });
            }
        }
        out
    }

    /// The node holding the entry at `rel` in a watch's view, if the view has that entry.
    pub(super) fn resolve(&self, id: WatchId, rel: &[u8]) -> Option<usize> {
        let watch = self.watches.get(&id)?;
        let mut key = watch.root?;
        let mut components = rel.split(|&b| b == b'/').peekable();
        while let Some(component) = components.next() {
            let entry = self.node(key).entries.get(component)?;
            if components.peek().is_none() {
                let filters = &watch.spec.filters;
                if !filters.exclude.is_empty() && filters.is_excluded(rel) {
                    return None;
                }
                return Some(key);
            }
            if !watch.spec.recursive {
                return None;
            }
            let child = entry.child.get()?;
            if !self.node(child).owners.contains(&id) {
                return None;
            }
            key = child;
        }
        None
    }

    /// Keeps a fresh stat of a file in the index, so the next export needs no system call. Not
    /// for directories (their times change with their entries, without an event on them), nor
    /// when the index and the disk disagree (an event is on its way), nor for a file changed
    /// within the last clock ticks (a change right after the stat could keep the same times).
    pub(super) fn keep_stat(&mut self, key: usize, name: &[u8], stat: &sys::Stat) {
        let settled_before = sys::coarse_realtime_ns() - 2 * self.coarse_lag_ns;
        let Some(entry) = self.node_mut(key).entries.get_mut(name) else {
            return;
        };
        if stat.kind == Kind::Dir
            || stat.kind != entry.kind
            || (entry.ino != 0 && entry.ino != stat.ino)
            || stat.ctime_ns >= settled_before
            || stat.mtime_ns >= settled_before
        {
            return;
        }
        entry.ino = stat.ino;
        entry.stat = Some(Box::new(Seen::from(*stat)));
    }

    /// `lstat` of each `(node, name)`, `None` for those that vanished. Most of an `lstat` by
    /// full path is the lookup of the path: entries of one directory are `lstat`ed relative to
    /// one handle on it, and a large batch is split between two threads (the kernel's part
    /// runs in parallel).
    pub(super) fn stat_entries(&self, items: &[(usize, &[u8])]) -> Vec<Option<sys::Stat>> {
        // Runs of one directory: (its path, first item, end).
        let mut groups: Vec<(Arc<Path>, usize, usize)> = Vec::new();
        for (index, (key, _)) in items.iter().enumerate() {
            match groups.last_mut() {
                Some(group) if items[group.1].0 == *key && group.2 - group.1 < STAT_CHUNK => {
                    group.2 = index + 1;
                }
                _ => groups.push((self.node(*key).path.clone(), index, index + 1)),
            }
        }
        let run = |groups: &[(Arc<Path>, usize, usize)], out: &mut [Option<sys::Stat>]| {
            let offset = groups.first().map_or(0, |group| group.1);
            for (dir, start, end) in groups {
                let handle = sys::DirHandle::open(dir).ok();
                for (index, (_, name)) in items.iter().enumerate().take(*end).skip(*start) {
                    out[index - offset] = match &handle {
                        Some(handle) => handle.lstat(name).ok(),
                        None => sys::lstat(&dir.join(OsStr::from_bytes(name))).ok(),
                    };
                }
            }
        };
        let mut out = vec![None; items.len()];
        if items.len() >= PARALLEL_STAT_MIN && groups.len() >= 2 {
            let half = groups.partition_point(|group| group.1 < items.len() / 2);
            let half = half.clamp(1, groups.len() - 1);
            let (first, second) = groups.split_at(half);
            let (first_out, second_out) = out.split_at_mut(second[0].1);
            std::thread::scope(|scope| {
                scope.spawn(|| run(second, second_out));
                run(first, first_out);
            });
        } else {
            run(&groups, &mut out);
        }
        out
    }

    /// Every entry of the watch, sorted by path; what follows is reported by
    /// [`Tree::snapshot_changes`] relative to it.
    pub(crate) fn snapshot(&mut self, id: WatchId) -> Result<Vec<SnapshotEntry>> {
        self.start_tracking(id)?;
        let viewed = self.view(id);
        // The entries whose stat the index does not hold, all `lstat`ed at once.
        let needed: Vec<(usize, &[u8])> = viewed
            .iter()
            .filter(|v| {
                let entry = &self.node(v.key).entries[&v.name];
                entry.kind == Kind::Dir || entry.stat.is_none()
            })
            .map(|v| (v.key, v.name.as_slice()))
            .collect();
        let stats = self.stat_entries(&needed);
        drop(needed);
        let mut stats = stats.into_iter();
        let mut out = Vec::with_capacity(viewed.len());
        for Viewed { key, name, rel } in viewed {
            let entry = &self.node(key).entries[&name];
            if entry.kind != Kind::Dir
                && let Some(seen) = entry.stat.as_deref()
            {
                out.push(SnapshotEntry {
                    path: rel,
                    inode: seen.ino,
                    size: seen.size,
                    mtime_ns: seen.mtime_ns,
                    kind: entry.kind.into(),
                });
                continue;
            }
            let Some(stat) = stats.next().flatten() else {
                continue;
            };
            self.keep_stat(key, &name, &stat);
            out.push(SnapshotEntry {
                path: rel,
                inode: stat.ino,
                size: stat.size,
                mtime_ns: stat.mtime_ns,
                kind: stat.kind.into(),
            });
        }
        out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// What changed since the last export: removals first, then upserts, parents before their
    /// children.
    ///
    /// Never ahead of the events: a change goes out only once the event that reports it has
    /// reached the sink (which, in the daemon, journals it), or a crash in between would make
    /// the next start's catch-up miss it. So an entry is exported only while the kernel's
    /// queue is empty, no move waits for its pair, and the disk agrees with the index and
    /// has not changed in the last clock ticks; the others stay marked for the next export.
    pub(crate) fn snapshot_changes(&mut self, id: WatchId) -> Result<Vec<SnapshotChange>> {
        let watch = self.watches.get(&id).ok_or(Error::UnknownWatch(id))?;
        if watch.dirty.is_none() {
            return Err(Error::NoSnapshot(id));
        }
        let queue_empty = self.inotify.queued_bytes().is_ok_and(|bytes| bytes == 0);
        if !queue_empty || !self.pending_moves.is_empty() {
            return Ok(Vec::new());
        }
        let settled_before = sys::coarse_realtime_ns() - 2 * self.coarse_lag_ns;
        let watch = self.watches.get_mut(&id).expect("looked up above");
        let dirty = watch.dirty.as_mut().expect("checked above");
        let mut paths: Vec<Vec<u8>> = std::mem::take(dirty).into_iter().collect();
        paths.sort_unstable();
        let mut removes = Vec::new();
        let mut upserts = Vec::new();
        let mut deferred = Vec::new();
        for rel in paths {
            let name = Name::from_slice(rel.rsplit(|&b| b == b'/').next().unwrap_or(&rel));
            let Some(key) = self
                .resolve(id, &rel)
                .filter(|key| self.node(*key).entries.contains_key(&*name))
            else {
                removes.push(SnapshotChange::Remove(rel));
                continue;
            };
            match self.export_settled(key, &name, rel.clone(), settled_before) {
                Some(entry) => upserts.push(SnapshotChange::Upsert(entry)),
                None => deferred.push(rel),
            }
        }
        if let Some(dirty) = self
            .watches
            .get_mut(&id)
            .and_then(|watch| watch.dirty.as_mut())
        {
            dirty.extend(deferred);
        }
        removes.extend(upserts);
        Ok(removes)
    }

    /// The snapshot entry of an entry the index holds, if the disk agrees with the index and
    /// the entry has not changed since `settled_before` (else an event about it may still be
    /// on its way).
    fn export_settled(
        &mut self,
        key: usize,
        name: &[u8],
        rel: Vec<u8>,
        settled_before: i64,
    ) -> Option<SnapshotEntry> {
        let entry = self.node(key).entries.get(name)?;
        if entry.kind != Kind::Dir
            && let Some(seen) = entry.stat.as_deref()
        {
            return Some(SnapshotEntry {
                path: rel,
                inode: seen.ino,
                size: seen.size,
                mtime_ns: seen.mtime_ns,
                kind: entry.kind.into(),
            });
        }
        let (kind, ino) = (entry.kind, entry.ino);
        let stat = sys::lstat(&self.node(key).path.join(OsStr::from_bytes(name))).ok()?;
        let agrees = stat.kind == kind && (ino == 0 || ino == stat.ino);
        // A directory's times change with its entries, which are exported on their own.
        let settled = stat.kind == Kind::Dir
            || (stat.ctime_ns < settled_before && stat.mtime_ns < settled_before);
        if !agrees || !settled {
            return None;
        }
        self.keep_stat(key, name, &stat);
        Some(SnapshotEntry {
            path: rel,
            inode: stat.ino,
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            kind: stat.kind.into(),
        })
    }
}

/// `dir` relative to `root`: empty for the root itself, `None` if not below it.
pub(super) fn below_root<'a>(root: &[u8], dir: &'a [u8]) -> Option<&'a [u8]> {
    let rest = dir.strip_prefix(root)?;
    if rest.is_empty() {
        return Some(rest);
    }
    if root.ends_with(b"/") {
        return Some(rest);
    }
    rest.strip_prefix(b"/")
}
