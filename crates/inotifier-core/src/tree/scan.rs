//! Watching directories and listing them into the index, synthesizing what a new directory
//! already held.

use super::*;

impl Tree {
    /// Watches the directory at `path` and, when `recursive`, everything below it. With
    /// `synthesize`, every entry found gets an `IN_CREATE` (and regular files an
    /// `IN_CLOSE_WRITE`), as the kernel would have reported had the watch been there.
    pub(super) fn watch_directory(
        &mut self,
        path: Arc<Path>,
        parent: Option<usize>,
        owners: Arc<[WatchId]>,
        is_dir: bool,
        synthesize: Option<Origin>,
    ) -> std::result::Result<usize, WatchFailure> {
        let mut progress = crate::progress::Progress::new(
            crate::progress::Task::Scan,
            path.display().to_string(),
            None,
        );
        let top = self.add_node(path, parent, owners, is_dir)?;
        // An explicit stack: trees can be deeper than the thread's stack allows recursion.
        let mut pending = vec![top];
        while let Some(key) = pending.pop() {
            if self.initial_walk_failure.is_some() {
                break;
            }
            self.scan_node(key, synthesize, &mut pending);
            progress.tick_with_left(1, pending.len() as u64);
        }
        self.unquiet();
        Ok(top)
    }

    pub(super) fn add_node(
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
            if *self.node(existing).path == *path {
                // Another watch already covers this directory: share the node.
                self.add_owners(existing, &owners);
                return Ok(existing);
            }
            if self.moved_away(existing, &path) {
                // The directory moved here and its old place is not processed yet: its move
                // events are still queued, or were lost in an overflow. Forget the old place
                // (the kernel watch stays: same inode) and take it as new here.
                self.drop_subtree(existing, false);
            } else {
                // The same directory through two paths (a bind mount): watched once. The
                // kernel replaced the existing watch's mask; give it back its own.
                let _ = self.refresh_kernel_mask(existing);
                return Err(WatchFailure::AlreadyWatched);
            }
        }
        let polled = self.polled_for(&owners, &path);
        let node = Node {
            wd,
            path,
            parent,
            owners,
            entries: HashMap::default(),
            is_dir,
            polled,
            symlinks: Vec::new(),
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

    /// Whether the directory of node `key` is no longer at the node's path but at `path`.
    fn moved_away(&self, key: usize, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let identity = |path: &Path| std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()));
        match (identity(&self.node(key).path), identity(path)) {
            (Ok(old), Ok(new)) => old != new,
            (Err(_), _) => true,
            (Ok(_), Err(_)) => false,
        }
    }

    /// Lists the directory of a node, with the time taken just before: anything changed after
    /// it shows a later mtime or ctime. `None` for a file, or a directory that cannot be read
    /// (gone: its parent's listing tells; unreadable: warned once).
    pub(super) fn list_node(&mut self, key: usize) -> Option<(i64, Vec<sys::DirEntry>)> {
        let node = self.node(key);
        if !node.is_dir {
            return None;
        }
        let path = node.path.clone();
        let since_ns = sys::coarse_realtime_ns();
        match sys::read_dir(&path, node.parent.is_none(), &mut self.dirent_buffer) {
            Ok(listing) => Some((since_ns, listing)),
            Err(error) => {
                self.warn_unreadable(&path, &error);
                None
            }
        }
    }

    /// Lists one watched directory into the index, watches its subdirectories (pushing them on
    /// `pending` to be scanned in turn) and synthesizes events for what it finds.
    pub(super) fn scan_node(
        &mut self,
        key: usize,
        synthesize: Option<Origin>,
        pending: &mut Vec<usize>,
    ) {
        let Some((since_ns, listing)) = self.list_node(key) else {
            return;
        };
        for found in listing {
            self.add_entry(
                key, found.name, found.kind, found.ino, since_ns, synthesize, pending,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_entry(
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
        if let Some(known) = self.node(key).entries.get(&name) {
            // Listed again, for a second watch covering this directory: keep what is known, and
            // extend the subdirectory's watch to the new owners.
            match known.child.get() {
                Some(child) => {
                    self.add_owners(child, &child_owners);
                    pending.push(child);
                    return;
                }
                None if !is_dir || child_owners.is_empty() => return,
                None => {}
            }
        }
        let mut created = None;
        if let Some(origin) = synthesize {
            let isdir = if is_dir {
                Mask::IN_ISDIR
            } else {
                Mask::empty()
            };
            let at = self.out.len();
            self.emit(key, Mask::IN_CREATE | isdir, 0, &name, None, origin);
            let event = (self.out.len() > at).then_some(at);
            let mut close = None;
            if kind == Kind::File {
                let before = self.out.len();
                self.emit(key, Mask::IN_CLOSE_WRITE, 0, &name, None, origin);
                close = (self.out.len() > before).then_some(before);
            }
            created = Some((at, event, close));
        }
        let mut entry = Entry {
            kind,
            ino,
            stat: None,
            since_ns,
            from_scan: synthesize.is_some(),
            unclosed_write: false,
            child: Child::NONE,
        };
        if is_dir && !child_owners.is_empty() {
            let child_path: Arc<Path> =
                Arc::from(self.node(key).path.join(OsStr::from_bytes(&name)));
            match self.add_node(child_path.clone(), Some(key), child_owners, true) {
                Ok(child) => {
                    // A root of another watch found inside this one is its child now too.
                    let node = self.node_mut(child);
                    if node.parent.is_none() {
                        node.parent = Some(key);
                    }
                    entry.child = Child::of(child);
                    pending.push(child);
                }
                Err(WatchFailure::OutOfWatches) if synthesize.is_none() => {
                    // The initial walk of a watch fails as a whole, with the count it needs.
                    self.initial_walk_failure = Some(WatchFailure::OutOfWatches);
                }
                Err(failure) => self.watch_failed(key, &name, &child_path, failure),
            }
        }
        if self.tracked > 0 {
            let dir = self.node(key).path.clone();
            self.mark(&dir, &name);
        }
        if kind == Kind::Symlink && !self.node(key).symlinks.iter().any(|l| l.name == name) {
            self.node_mut(key).symlinks.push(swaps::Symlink {
                name: name.clone(),
                target: None,
            });
        }
        if kind == Kind::Dir || !self.node(key).polled {
            self.node_mut(key).entries.insert(name, entry);
            return;
        }
        self.node_mut(key).entries.insert(name.clone(), entry);
        self.baseline_if_polled(key, &name);
        if let (Some((at, event, close)), Some(_)) = (created, self.poll_moves.as_ref()) {
            let seen = self.node(key).entries[&name].stat.as_deref().copied();
            if let Some(moves) = self.poll_moves.as_mut() {
                moves.came.push(poll::Moved {
                    key,
                    ino: seen.map_or(ino, |seen| seen.ino),
                    content: seen.map(|seen| (seen.size, seen.mtime_ns)),
                    name,
                    at,
                    event,
                    close,
                });
            }
        }
    }

    /// The watches that should also watch subdirectory `name` of node `key`.
    /// Shares the parent's list when it is the same, as it nearly always is: one allocation
    /// fewer per directory.
    pub(super) fn child_owners(&self, key: usize, name: &[u8], later: bool) -> Arc<[WatchId]> {
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

    pub(super) fn excluded_everywhere(&self, key: usize, name: &[u8]) -> bool {
        let node = self.node(key);
        node.owners.iter().all(|id| {
            let watch = &self.watches[id];
            watch
                .spec
                .filters
                .is_excluded(&relative(&watch.root_bytes, &node.path, name))
        })
    }

    pub(super) fn warn_unreadable(&mut self, path: &Path, error: &io::Error) {
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

    pub(super) fn warn_watch_failure(&mut self, path: &Path, failure: WatchFailure) {
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
}
