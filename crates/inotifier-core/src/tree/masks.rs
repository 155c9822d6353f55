//! What each watch asks the kernel for, and keeping the engine's own directory listings out of
//! the event stream (quieting watches while it lists).

use super::*;

impl Tree {
    /// The mask the kernel must report for a node: what its owners want plus what tracking needs.
    pub(super) fn kernel_mask(&self, owners: &[WatchId], is_root: bool, is_dir: bool) -> Mask {
        let mut mask = TRACKING;
        for id in owners {
            let spec = &self.watches[id].spec;
            // `delivered` holds kernel events only: our own bits never reach the kernel.
            mask |= self.watches[id].delivered;
            if self.watches[id].track_content {
                mask |= CONTENT_CHANGES;
            }
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

    pub(super) fn refresh_kernel_mask(&mut self, key: usize) -> io::Result<()> {
        let node = self.node(key);
        let mask = self.kernel_mask(&node.owners, node.parent.is_none(), node.is_dir);
        self.set_kernel_mask(key, mask)
    }

    /// inotify changes a watch's mask by path only; if the path now leads elsewhere (the
    /// directory moved and the move is not processed yet), undo what that did.
    pub(super) fn set_kernel_mask(&mut self, key: usize, mask: Mask) -> io::Result<()> {
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

    /// Adds watches to those covering a node, and asks the kernel for what they want; quietly
    /// (see [`READ_EVENTS`]) since a listing follows.
    pub(super) fn add_owners(&mut self, key: usize, owners: &[WatchId]) {
        let node = self.node_mut(key);
        let mut all = node.owners.to_vec();
        all.extend(owners.iter().filter(|owner| !node.owners.contains(owner)));
        if all.len() != node.owners.len() {
            node.owners = all.into();
            let node = self.node(key);
            let polled = self.polled_for(&node.owners, &node.path);
            self.node_mut(key).polled = polled;
        }
        let node = self.node(key);
        let mask = self.kernel_mask(&node.owners, node.parent.is_none(), node.is_dir);
        if node.is_dir && mask.intersects(READ_EVENTS) {
            let _ = self.set_kernel_mask(key, mask.without(READ_EVENTS));
            self.quieted.push(key);
        } else {
            let _ = self.set_kernel_mask(key, mask);
        }
    }

    /// Leaves [`READ_EVENTS`] out of every watch, before a listing of the whole tree.
    pub(super) fn quiet_all(&mut self) {
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
    pub(super) fn unquiet(&mut self) {
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
}
