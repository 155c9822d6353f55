//! Catch-up: a watch added with a baseline (the snapshot a journal persisted) reports what
//! changed while nobody watched, by diffing the index its initial scan built against the
//! baseline. See [`crate::Engine::add_watch_with_baseline`] for what is reported.
//!
//! The diff pairs each entry on disk with a baseline entry, parents first: at the same place
//! (its directory's baseline counterpart, so a renamed directory's content stays paired), or
//! else by inode (a rename). Then it emits, in an order a consumer can replay by path: a
//! directory is created or moved before what goes into it, and a place is vacated (its old
//! entry deleted or moved away) before something new takes it; deletions left over come last,
//! children before their directory.

use super::snapshot::Viewed;
use super::*;
use crate::progress::{Progress, Task};
use crate::snapshot::{EntryKind, SnapshotEntry};

/// Entries statted between two progress checks: four times the parallel stat's minimum.
const CATCH_UP_STAT_CHUNK: usize = 16384;

/// An entry on disk, as the initial scan indexed it and `lstat` saw it.
struct Current {
    rel: Vec<u8>,
    /// The node of its directory.
    key: usize,
    name: Name,
    kind: Kind,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    /// False if it vanished before `lstat`: its removal is the kernel's to report.
    known: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    New,
    /// The baseline entry at the same place.
    Same(usize),
    /// The baseline entry of the same inode, elsewhere.
    Renamed(usize),
}

/// What the emission needs, borrowed from the diff; and how far it got.
struct Plan<'a> {
    id: WatchId,
    watches: Arc<[WatchId]>,
    root: &'a Path,
    baseline: &'a [SnapshotEntry],
    relevant: &'a [bool],
    claimed: &'a [bool],
    cur: &'a [Current],
    class: &'a [Class],
    /// The baseline entry at each current entry's place, as the consumer sees places once the
    /// entry's directory is in place: whatever must leave before the entry can come.
    occupant: &'a [Option<usize>],
    cur_by_path: HashMap<&'a [u8], usize>,
    /// Baseline entry → the current entry it was renamed to.
    renamed_to: HashMap<usize, usize>,
    /// 0 waiting, 1 being placed, 2 done.
    state: Vec<u8>,
    deleted: Vec<bool>,
    /// Baseline path of a renamed directory → where it is now: where the consumer, replaying
    /// the events so far, sees what was below it.
    moved_dirs: HashMap<Vec<u8>, Vec<u8>>,
}

impl Tree {
    /// Diffs the freshly indexed watch `id` against `baseline`, emits the differences with
    /// [`Origin::CatchUp`] and starts its snapshot export relative to the baseline.
    pub(super) fn catch_up(&mut self, id: WatchId, mut baseline: Vec<SnapshotEntry>) {
        let Some(root_key) = self.watches[&id].root else {
            return;
        };
        let root: PathBuf = self.node(root_key).path.to_path_buf();
        baseline.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        baseline.dedup_by(|a, b| a.path == b.path);

        let cur = self.on_disk(id);
        let relevant = self.relevant(id, &baseline);
        let mut by_path: HashMap<&[u8], usize> = HashMap::default();
        // None when several entries share the inode (hard links): no rename is inferred then.
        let mut by_ino: HashMap<u64, Option<usize>> = HashMap::default();
        for (index, entry) in baseline.iter().enumerate() {
            if relevant[index] {
                by_path.insert(&entry.path, index);
                by_ino
                    .entry(entry.inode)
                    .and_modify(|found| *found = None)
                    .or_insert(Some(index));
            }
        }
        let mut inodes_on_disk: HashMap<u64, u32> = HashMap::default();
        for current in cur.iter().filter(|c| c.known) {
            *inodes_on_disk.entry(current.ino).or_default() += 1;
        }

        // Pairing, parents first (the view is breadth first).
        let mut claimed = vec![false; baseline.len()];
        let mut class = Vec::with_capacity(cur.len());
        let mut occupant = Vec::with_capacity(cur.len());
        let mut origin: HashMap<&[u8], usize> = HashMap::default();
        for current in &cur {
            let (parent, name) = split(&current.rel);
            let base_dir: Option<&[u8]> = if parent.is_empty() {
                Some(b"")
            } else {
                origin.get(parent).map(|&b| baseline[b].path.as_slice())
            };
            let kind = EntryKind::from(current.kind);
            let mut found = Class::New;
            let mut there = None;
            if let Some(base_dir) = base_dir {
                let joined;
                let place: &[u8] = if base_dir == parent {
                    &current.rel
                } else {
                    joined = join(base_dir, name);
                    &joined
                };
                there = by_path.get(place).copied();
                if let Some(b) = there
                    && !claimed[b]
                    && baseline[b].inode == current.ino
                    && baseline[b].kind == kind
                {
                    found = Class::Same(b);
                }
            }
            if found == Class::New
                && current.known
                && inodes_on_disk.get(&current.ino) == Some(&1)
                && let Some(&Some(b)) = by_ino.get(&current.ino)
                && !claimed[b]
                && baseline[b].kind == kind
                // A file keeps its times when renamed; one that did not is most likely a new
                // file that got a deleted one's inode number, which file systems reuse at once.
                && (kind == EntryKind::Dir
                    || (baseline[b].size == current.size
                        && baseline[b].mtime_ns == current.mtime_ns))
            {
                found = Class::Renamed(b);
            }
            if let Class::Same(b) | Class::Renamed(b) = found {
                claimed[b] = true;
                if current.kind == Kind::Dir {
                    origin.insert(&current.rel, b);
                }
            }
            class.push(found);
            occupant.push(there);
        }

        // The persisted snapshot is the baseline: the export starts from the differences.
        let mut dirty: std::collections::HashSet<Vec<u8>, foldhash::fast::RandomState> =
            Default::default();
        for (current, found) in cur.iter().zip(&class) {
            match *found {
                Class::Same(b)
                    if current.known && {
                        let base = &baseline[b];
                        base.path == current.rel
                            && base.size == current.size
                            && base.mtime_ns == current.mtime_ns
                    } => {}
                Class::Same(b) | Class::Renamed(b) => {
                    dirty.insert(current.rel.clone());
                    dirty.insert(baseline[b].path.clone());
                }
                Class::New => {
                    dirty.insert(current.rel.clone());
                }
            }
        }
        for (index, entry) in baseline.iter().enumerate() {
            if !claimed[index] {
                dirty.insert(entry.path.clone());
            }
        }

        let mut plan = Plan {
            id,
            watches: Arc::new([id]),
            root: &root,
            baseline: &baseline,
            relevant: &relevant,
            claimed: &claimed,
            cur: &cur,
            class: &class,
            occupant: &occupant,
            // Only directories are looked up, as the parents of what is placed.
            cur_by_path: cur
                .iter()
                .enumerate()
                .filter(|(_, c)| c.kind == Kind::Dir)
                .map(|(i, c)| (c.rel.as_slice(), i))
                .collect(),
            renamed_to: class
                .iter()
                .enumerate()
                .filter_map(|(i, found)| match found {
                    Class::Renamed(b) => Some((*b, i)),
                    _ => None,
                })
                .collect(),
            state: vec![0; cur.len()],
            deleted: vec![false; baseline.len()],
            moved_dirs: HashMap::default(),
        };
        let (mut created, mut changed, mut moved) = (0usize, 0usize, 0usize);
        for (index, found) in class.iter().enumerate() {
            self.place(&mut plan, index);
            match found {
                Class::New => created += 1,
                Class::Renamed(_) => moved += 1,
                Class::Same(_) => changed += 1,
            }
        }
        let mut left: Vec<usize> = (0..baseline.len())
            .filter(|&b| relevant[b] && !claimed[b] && !plan.deleted[b])
            .collect();
        let deleted = left.len() + plan.deleted.iter().filter(|&&d| d).count();
        left.sort_by_key(|&b| std::cmp::Reverse(depth(&baseline[b].path)));
        for b in left {
            self.delete_baseline_entry(&mut plan, b);
        }
        tracing::info!(
            "catch-up of {}: {} entries on disk ({created} new, {moved} moved, {} unchanged or \
             modified), {deleted} deleted",
            root.display(),
            cur.len(),
            changed,
        );

        let watch = self.watches.get_mut(&id).expect("watch being added");
        watch.dirty = Some(dirty);
        self.tracked += 1;
    }

    /// What is on disk now, as the initial scan indexed it: one `lstat` per entry, kept in the
    /// index for the next export.
    fn on_disk(&mut self, id: WatchId) -> Vec<Current> {
        let viewed = self.view(id);
        let items: Vec<(usize, &[u8])> =
            viewed.iter().map(|v| (v.key, v.name.as_slice())).collect();
        // The lstat of every entry is what takes long on a large tree (the diff itself is in
        // memory): done in chunks, each large enough to be statted in parallel, between which
        // progress is told.
        let root = self.watches[&id]
            .root
            .map(|key| self.node(key).path.display().to_string())
            .unwrap_or_default();
        let mut progress = Progress::new(Task::CatchUp, root, Some(items.len() as u64));
        let mut stats = Vec::with_capacity(items.len());
        for chunk in items.chunks(CATCH_UP_STAT_CHUNK) {
            stats.extend(self.stat_entries(chunk));
            progress.tick(chunk.len() as u64);
        }
        progress.finish();
        drop(items);
        let mut cur = Vec::with_capacity(viewed.len());
        for (Viewed { key, name, rel }, stat) in viewed.into_iter().zip(stats) {
            let entry = &self.node(key).entries[&name];
            let (kind, ino) = (entry.kind, entry.ino);
            let current = match stat {
                Some(stat) => {
                    self.keep_stat(key, &name, &stat);
                    Current {
                        rel,
                        key,
                        name,
                        kind: stat.kind,
                        ino: stat.ino,
                        size: stat.size,
                        mtime_ns: stat.mtime_ns,
                        known: true,
                    }
                }
                None => Current {
                    rel,
                    key,
                    name,
                    kind,
                    ino,
                    size: 0,
                    mtime_ns: 0,
                    known: false,
                },
            };
            cur.push(current);
        }
        cur
    }

    /// Which baseline entries this watch would index today: filters or recursion may have
    /// changed since it was taken. The others are not compared; they only leave the persisted
    /// snapshot.
    fn relevant(&self, id: WatchId, baseline: &[SnapshotEntry]) -> Vec<bool> {
        let watch = &self.watches[&id];
        let (recursive, filters) = (watch.spec.recursive, &watch.spec.filters);
        let mut relevant = vec![false; baseline.len()];
        // Sorted by path, a directory comes before what is below it.
        let mut dirs: HashMap<&[u8], bool> = HashMap::default();
        for (index, entry) in baseline.iter().enumerate() {
            let path = entry.path.as_slice();
            if path.is_empty() || path.starts_with(b"/") || path.ends_with(b"/") {
                continue;
            }
            let (parent, _) = split(path);
            let parent_ok =
                parent.is_empty() || (recursive && dirs.get(parent).copied().unwrap_or(true));
            let ok = parent_ok && (filters.exclude.is_empty() || !filters.is_excluded(path));
            relevant[index] = ok;
            if entry.kind == EntryKind::Dir {
                dirs.insert(path, ok);
            }
        }
        relevant
    }

    /// Emits what happened to current entry `index`, after its directory and after whatever
    /// had its place left it.
    fn place(&mut self, plan: &mut Plan<'_>, index: usize) {
        if plan.state[index] != 0 {
            return;
        }
        plan.state[index] = 1;
        let (cur, baseline) = (plan.cur, plan.baseline);
        let current = &cur[index];
        let (parent, _) = split(&current.rel);
        if !parent.is_empty()
            && let Some(&parent_index) = plan.cur_by_path.get(parent)
        {
            self.place(plan, parent_index);
        }
        let found = plan.class[index];
        if !matches!(found, Class::Same(_))
            && let Some(occupant) = plan.occupant[index]
        {
            if !plan.claimed[occupant] {
                self.delete_baseline_entry(plan, occupant);
            } else if let Some(&elsewhere) = plan.renamed_to.get(&occupant)
                && elsewhere != index
            {
                // A rotation (`a` → `a.1` → `a.2`): the older move first. In a cycle (a
                // swap), the one being placed goes on.
                self.place(plan, elsewhere);
            }
        }
        let isdir = if current.kind == Kind::Dir {
            Mask::IN_ISDIR
        } else {
            Mask::empty()
        };
        let modified = |base: &SnapshotEntry| {
            current.known
                && current.kind != Kind::Dir
                && (base.size != current.size || base.mtime_ns != current.mtime_ns)
        };
        match found {
            Class::New => {
                // Listed after the watch was in place, so the kernel may report its creation
                // too: that duplicate is dropped, as for a scanned directory.
                if let Some(entry) = self.node_mut(current.key).entries.get_mut(&current.name) {
                    entry.from_scan = true;
                }
                self.emit_catch_up(
                    plan,
                    &current.rel,
                    Some(current.key),
                    Mask::IN_CREATE | isdir,
                );
                if current.kind == Kind::File {
                    self.emit_catch_up(plan, &current.rel, Some(current.key), Mask::IN_CLOSE_WRITE);
                }
            }
            Class::Same(b) => {
                if modified(&baseline[b]) {
                    self.emit_modified(plan, index);
                }
            }
            Class::Renamed(b) => {
                let from = view_path(plan, &baseline[b].path);
                let cookie = self.next_cookie;
                self.next_cookie = self.next_cookie.wrapping_add(1).max(0xC000_0000);
                self.emit_move(plan, &from, None, Mask::IN_MOVED_FROM | isdir, cookie, None);
                let source = plan.root.join(OsStr::from_bytes(&from));
                self.emit_move(
                    plan,
                    &current.rel,
                    Some(current.key),
                    Mask::IN_MOVED_TO | isdir,
                    cookie,
                    Some(source),
                );
                if current.kind == Kind::Dir {
                    plan.moved_dirs
                        .insert(baseline[b].path.clone(), current.rel.clone());
                }
                if modified(&baseline[b]) {
                    self.emit_modified(plan, index);
                }
            }
        }
        plan.state[index] = 2;
    }

    fn emit_modified(&mut self, plan: &Plan<'_>, index: usize) {
        let current = &plan.cur[index];
        self.emit_catch_up(plan, &current.rel, Some(current.key), Mask::IN_MODIFY);
        if current.kind == Kind::File {
            self.emit_catch_up(plan, &current.rel, Some(current.key), Mask::IN_CLOSE_WRITE);
        }
    }

    /// Reports baseline entry `b` deleted, after whatever was below it has moved out (renamed
    /// elsewhere) and after what is gone too.
    fn delete_baseline_entry(&mut self, plan: &mut Plan<'_>, b: usize) {
        if plan.deleted[b] {
            return;
        }
        let baseline = plan.baseline;
        let path = &baseline[b].path;
        if baseline[b].kind == EntryKind::Dir {
            let mut prefix = path.clone();
            prefix.push(b'/');
            let start = baseline.partition_point(|e| e.path < prefix);
            let moved_out: Vec<usize> = (start..baseline.len())
                .take_while(|&i| baseline[i].path.starts_with(&prefix))
                .filter_map(|i| plan.renamed_to.get(&i).copied())
                .collect();
            for index in moved_out {
                self.place(plan, index);
            }
            // Placing may have come back here (the move's new place needed this one gone).
            if plan.deleted[b] {
                return;
            }
            let mut below: Vec<usize> = (start..baseline.len())
                .take_while(|&i| baseline[i].path.starts_with(&prefix))
                .filter(|&i| plan.relevant[i] && !plan.claimed[i] && !plan.deleted[i])
                .collect();
            below.sort_by_key(|&i| std::cmp::Reverse(depth(&baseline[i].path)));
            for i in below {
                self.emit_deleted(plan, i);
            }
        }
        self.emit_deleted(plan, b);
    }

    fn emit_deleted(&mut self, plan: &mut Plan<'_>, b: usize) {
        plan.deleted[b] = true;
        let entry = &plan.baseline[b];
        let isdir = if entry.kind == EntryKind::Dir {
            Mask::IN_ISDIR
        } else {
            Mask::empty()
        };
        let at = view_path(plan, &entry.path);
        self.emit_catch_up(plan, &at, None, Mask::IN_DELETE | isdir);
    }

    fn emit_catch_up(&mut self, plan: &Plan<'_>, rel: &[u8], dir: Option<usize>, mask: Mask) {
        self.emit_move(plan, rel, dir, mask, 0, None);
    }

    /// Emits a catch-up event about `rel` to the watch being added only (the others covering
    /// the place saw it happen, or did not ask), if its mask and filters take it, as `emit`
    /// does for kernel events. `dir` is the node of its directory when known; a directory
    /// that is gone now (the old place of a move) has no watch descriptor: -1.
    fn emit_move(
        &mut self,
        plan: &Plan<'_>,
        rel: &[u8],
        dir: Option<usize>,
        mask: Mask,
        cookie: u32,
        src_pathname: Option<PathBuf>,
    ) {
        let watch = &self.watches[&plan.id];
        if !watch
            .delivered
            .intersects(mask.intersection(Mask::ALL_EVENTS))
        {
            return;
        }
        let filters = &watch.spec.filters;
        let unfiltered = filters.include.is_empty() && filters.exclude.is_empty();
        if !unfiltered && !filters.reports(rel, mask.contains(Mask::IN_ISDIR)) {
            return;
        }
        let (parent, name) = split(rel);
        let dir = dir.or_else(|| self.directory_node(plan.id, parent));
        let (wd, path) = match dir {
            Some(key) => (self.node(key).wd, self.node(key).path.clone()),
            None => (
                -1,
                Arc::from(plan.root.join(OsStr::from_bytes(parent)).as_path()),
            ),
        };
        self.push_event(
            mask,
            cookie,
            wd,
            path,
            name,
            src_pathname,
            Origin::CatchUp,
            plan.watches.clone(),
        );
    }

    /// The node of the directory at `rel` in a watch's view, if it is watched.
    fn directory_node(&self, id: WatchId, rel: &[u8]) -> Option<usize> {
        if rel.is_empty() {
            return self.watches[&id].root;
        }
        let key = self.resolve(id, rel)?;
        let (_, name) = split(rel);
        self.node(key).entries.get(name)?.child.get()
    }
}

/// Where the consumer, replaying the events emitted so far, sees baseline path `path`: below
/// the new place of its closest renamed ancestor.
fn view_path(plan: &Plan<'_>, path: &[u8]) -> Vec<u8> {
    if !plan.moved_dirs.is_empty() {
        let mut end = path.len();
        while let Some(slash) = path[..end].iter().rposition(|&b| b == b'/') {
            if let Some(now) = plan.moved_dirs.get(&path[..slash]) {
                let mut moved = now.clone();
                moved.extend_from_slice(&path[slash..]);
                return moved;
            }
            end = slash;
        }
    }
    path.to_vec()
}

/// Splits a relative path into its directory (empty for the root) and its name.
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&rel[..slash], &rel[slash + 1..]),
        None => (b"", rel),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !dir.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

fn depth(path: &[u8]) -> usize {
    path.iter().filter(|&&b| b == b'/').count()
}
