//! Recovery from a kernel queue overflow: rescan every watched directory and diff it against
//! the index.

use super::*;

impl Tree {
    /// The kernel dropped events. Report that, then rescan every watched directory and diff it
    /// against the index, synthesizing exactly the changes the index has not seen.
    pub(super) fn overflow(&mut self) {
        let started = std::time::Instant::now();
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
                    .filter_map(|e| e.child.get())
                    .filter(|c| !new_dirs.contains(c)),
            );
            let mut pending = new_dirs;
            while let Some(added) = pending.pop() {
                self.scan_node(added, Some(Origin::Rescan), &mut pending);
            }
        }
        self.unquiet();
        self.on_rescan.rescanned(started.elapsed());
    }

    pub(super) fn rescan_node(&mut self, key: usize, new_dirs: &mut Vec<usize>) {
        let Some((since_ns, listing)) = self.list_node(key) else {
            return;
        };
        let path = self.node(key).path.clone();
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
    pub(super) fn compare_metadata(&mut self, key: usize, name: &[u8], dir: &Path, ino: u64) {
        let Ok(stat) = sys::lstat(&dir.join(OsStr::from_bytes(name))) else {
            return;
        };
        self.compare_with_stat(key, name, dir, ino, stat);
    }

    /// [`Tree::compare_metadata`] with the entry's stat already taken.
    pub(super) fn compare_with_stat(
        &mut self,
        key: usize,
        name: &[u8],
        dir: &Path,
        ino: u64,
        stat: sys::Stat,
    ) {
        let polling = self.poll_moves.is_some();
        let entry = self
            .node_mut(key)
            .entries
            .get_mut(name)
            .expect("known entry");
        if polling && entry.unclosed_write {
            // This machine has it open for writing: the kernel reports its writes and its
            // close, and a poll reporting a close now would make it ready too early.
            return;
        }
        let (modified, attrib) = match entry.stat.as_deref() {
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
        entry.stat = Some(Box::new(Seen::from(stat)));
        entry.ino = ino;
        let unclosed_write = std::mem::take(&mut entry.unclosed_write);
        if modified || attrib {
            self.mark(dir, name);
        }
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
        } else {
            if unclosed_write && stat.kind == Kind::File {
                // Its writes were reported, its close may have been dropped: a spurious close
                // (the writer still has it open) is preferred to a lost one.
                self.emit(key, Mask::IN_CLOSE_WRITE, 0, name, None, Origin::Rescan);
            }
            if attrib {
                self.emit(key, Mask::IN_ATTRIB | isdir, 0, name, None, Origin::Rescan);
            }
        }
    }

    /// An indexed entry is gone: report its deletion, and that of everything below it first.
    pub(super) fn synthesize_removal(&mut self, key: usize, name: &[u8]) {
        let Some(entry) = self.node_mut(key).entries.remove(name) else {
            return;
        };
        let dir = self.node(key).path.clone();
        self.mark(&dir, name);
        if let Some(child) = entry.child.get() {
            // Depth first, children before parents, as the kernel reports an `rm -r`.
            let mut order = Vec::new();
            let mut stack = vec![child];
            while let Some(node) = stack.pop() {
                order.push(node);
                stack.extend(
                    self.node(node)
                        .entries
                        .values()
                        .filter_map(|e| e.child.get()),
                );
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
        let at = self.out.len();
        self.emit(key, Mask::IN_DELETE | isdir, 0, name, None, Origin::Rescan);
        if entry.kind != Kind::Dir
            && let Some(moves) = self.poll_moves.as_mut()
        {
            let seen = entry.stat.as_deref();
            moves.gone.push(poll::Moved {
                key,
                name: name.into(),
                ino: seen.map_or(entry.ino, |seen| seen.ino),
                content: seen.map(|seen| (seen.size, seen.mtime_ns)),
                at,
                event: (self.out.len() > at).then_some(at),
                close: None,
            });
        }
    }
}
