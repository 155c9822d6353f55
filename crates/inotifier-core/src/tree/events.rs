//! Turning the kernel's events into ours: the index kept current, moves paired, new directories
//! watched.

use super::*;

impl Tree {
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

    pub(super) fn handle_self_event(&mut self, key: usize, mask: Mask) {
        let is_root = self.node(key).parent.is_none();
        if is_root && self.root_retargeted(key, mask) {
            return;
        }
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
                .filter_map(|e| e.child.get())
                .collect();
            for child in children {
                self.drop_subtree(child, true);
            }
            let _ = self.inotify.rm_watch(self.node(key).wd);
        }
    }

    pub(super) fn handle_child_event(&mut self, key: usize, mask: Mask, cookie: u32, name: &[u8]) {
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
                    entry.unclosed_write = !is_dir;
                    Some(std::mem::take(&mut entry.from_scan))
                }
                std::collections::hash_map::Entry::Vacant(vacant) if !is_dir => {
                    vacant.insert(Entry {
                        kind: Kind::File,
                        ino: 0,
                        stat: None,
                        since_ns: now,
                        from_scan: false,
                        unclosed_write: true,
                        child: Child::NONE,
                    });
                    Some(false)
                }
                std::collections::hash_map::Entry::Vacant(_) => None,
            };
            if self.tracked > 0 {
                let dir = self.node(key).path.clone();
                self.mark(&dir, name);
            }
            if !is_dir {
                self.baseline_if_polled(key, name);
            }
            match reported {
                Some(true) => {}
                Some(false) => self.emit(key, mask, cookie, name, None, Origin::Kernel),
                None => {
                    self.emit(key, mask, cookie, name, None, Origin::Kernel);
                    self.entry_appeared(key, name, is_dir, Origin::Scan);
                }
            }
            if !is_dir {
                self.after_link_replaced(key, name);
            }
        } else if mask.contains(Mask::IN_DELETE) {
            let Some(entry) = self.node_mut(key).entries.remove(name) else {
                // A rescan has already reported this deletion.
                return;
            };
            self.emit(key, mask, cookie, name, None, Origin::Kernel);
            if self.tracked > 0 {
                let dir = self.node(key).path.clone();
                self.mark(&dir, name);
            }
            if let Some(child) = entry.child.get() {
                // Its own IN_IGNORED may be lost in an overflow; forget it now.
                self.drop_subtree(child, false);
            }
        } else if mask.contains(Mask::IN_MOVED_FROM) {
            self.emit(key, mask, cookie, name, None, Origin::Kernel);
            if let Some(entry) = self.node_mut(key).entries.remove(name) {
                if self.tracked > 0 {
                    // Its paths leave the index now, whatever becomes of the move.
                    let dir = self.node(key).path.clone();
                    self.mark(&dir, name);
                    if let Some(child) = entry.child.get() {
                        self.mark_subtree(child);
                    }
                }
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
            if !mask.contains(Mask::IN_ISDIR) {
                self.after_link_replaced(key, name);
            }
        } else {
            if mask.intersects(CONTENT_CHANGES) {
                let now = self.coarse_now_ns;
                match self.node_mut(key).entries.get_mut(name) {
                    Some(entry) => {
                        entry.stat = None;
                        entry.since_ns = now;
                        if mask.contains(Mask::IN_CLOSE_WRITE) {
                            entry.unclosed_write = false;
                        } else if mask.contains(Mask::IN_MODIFY) && !is_dir {
                            entry.unclosed_write = true;
                        }
                        if self.tracked > 0 {
                            let dir = self.node(key).path.clone();
                            self.mark(&dir, name);
                        }
                        // A write still going on has no final stat: the poll reports it again
                        // (it is changing), and the close then settles it.
                        if !mask.contains(Mask::IN_MODIFY) {
                            self.baseline_if_polled(key, name);
                        }
                    }
                    None => self.entry_appeared(key, name, is_dir, Origin::Scan),
                }
            }
            self.emit(key, mask, cookie, name, None, Origin::Kernel);
        }
    }

    pub(super) fn moved_to(&mut self, key: usize, mask: Mask, cookie: u32, name: &[u8]) {
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
        if let Some(child) = std::mem::replace(&mut entry.child, Child::NONE).get() {
            let mut wanted = self.child_owners(key, name, false).to_vec();
            let mut had = self.node(child).owners.to_vec();
            wanted.sort_unstable();
            had.sort_unstable();
            if !wanted.is_empty() && wanted == had {
                self.reparent(child, key, name);
                entry.child = Child::of(child);
            } else {
                // It moved between watches with other settings: start it afresh.
                self.drop_subtree(child, true);
                self.entry_appeared(key, name, true, Origin::Scan);
                return;
            }
        }
        let child = entry.child.get();
        self.node_mut(key).entries.insert(name.into(), entry);
        if child.is_none() {
            self.baseline_if_polled(key, name);
        }
        if self.tracked > 0 {
            let dir = self.node(key).path.clone();
            self.mark(&dir, name);
            if let Some(child) = child {
                self.mark_subtree(child);
            }
        }
    }

    /// A directory moved inside the tree: same watches, new paths for it and all below it.
    pub(super) fn reparent(&mut self, child: usize, new_parent: usize, name: &[u8]) {
        let parent_path = self.node(new_parent).path.clone();
        let node = self.node_mut(child);
        node.parent = Some(new_parent);
        node.path = Arc::from(parent_path.join(OsStr::from_bytes(name)));
        let mut stack = vec![child];
        while let Some(key) = stack.pop() {
            let base = self.node(key).path.clone();
            // Moved across a mount's boundary is impossible (a rename stays on its mount),
            // but a poll-by-path choice still follows the new path.
            let polled = self.polled_for(&self.node(key).owners, &base);
            self.node_mut(key).polled = polled;
            let children: Vec<(usize, Name)> = self
                .node(key)
                .entries
                .iter()
                .filter_map(|(name, entry)| entry.child.get().map(|c| (c, name.clone())))
                .collect();
            for (grandchild, name) in children {
                self.node_mut(grandchild).path = Arc::from(base.join(OsStr::from_bytes(&name)));
                stack.push(grandchild);
            }
        }
    }

    /// Records an entry the kernel told us about (created or moved in); a directory is watched
    /// and scanned so that what was created in it before its watch landed is reported.
    pub(super) fn entry_appeared(&mut self, key: usize, name: &[u8], is_dir: bool, origin: Origin) {
        let mut entry = Entry {
            kind: if is_dir { Kind::Dir } else { Kind::File },
            ino: 0,
            stat: None,
            since_ns: self.coarse_now_ns,
            from_scan: false,
            unclosed_write: false,
            child: Child::NONE,
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
                    Ok(child) => entry.child = Child::of(child),
                    Err(failure) => self.watch_failed(key, name, &path, failure),
                }
                self.unquiet();
            }
        }
        self.node_mut(key).entries.insert(name.into(), entry);
        if self.tracked > 0 {
            let dir = self.node(key).path.clone();
            self.mark(&dir, name);
        }
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
            if let Some(child) = pending.entry.child.get() {
                self.drop_subtree(child, true);
            }
        }
    }

    pub(crate) fn next_move_deadline(&self) -> Option<Instant> {
        self.pending_moves.front().map(|pending| pending.deadline)
    }
}
