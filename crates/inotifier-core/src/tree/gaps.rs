//! Parts of watched trees the kernel does not watch, kept in view until they heal:
//! - directories that could not get a watch at run time: out of `max_user_watches`, tried again
//!   every [`RETRY`] until the limit is raised (or watches are freed), then scanned, their
//!   files reported as for a new directory; or a path longer than `PATH_MAX`, which inotify
//!   cannot take, reported as unwatched for as long as it exists;
//! - watch roots that are gone (deleted, unmounted, moved away): looked for every [`RETRY`],
//!   and once a directory (or file) is there again, watched and scanned again, its entries
//!   reported as created (origin `scan`).
//!
//! [`Tree::gaps`] says what is missing, for `status`; nothing is skipped silently.

use super::*;

/// How often gaps are tried again.
pub(crate) const RETRY: Duration = Duration::from_secs(1);

/// A directory below a watched one that has no kernel watch.
pub(super) struct Gap {
    /// The watched directory it is in, and that node's descriptor: a key can be reused once
    /// its node is gone, the pair cannot while it lives.
    parent: usize,
    parent_wd: i32,
    name: Name,
    why: GapReason,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum GapReason {
    OutOfWatches,
    TooLong,
}

/// What the kernel does not watch of the watched trees, as [`crate::Engine::gaps`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gaps {
    /// Roots of watches that are gone, waiting to come back.
    pub lost_roots: Vec<PathBuf>,
    /// Directories left unwatched for want of inotify watches (retried).
    pub out_of_watches: usize,
    /// Directories whose path is longer than `PATH_MAX`, which inotify cannot watch.
    pub too_long: usize,
}

impl Gaps {
    pub fn is_empty(&self) -> bool {
        self.lost_roots.is_empty() && self.out_of_watches == 0 && self.too_long == 0
    }

    /// One line per kind of gap, saying what is missing and what heals it.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .lost_roots
            .iter()
            .map(|root| {
                format!(
                    "watched path gone: {} (watched again once it is back)",
                    root.display()
                )
            })
            .collect();
        if self.out_of_watches > 0 {
            let limit = sys::inotify_limit("max_user_watches")
                .map_or_else(|| "unknown".into(), |limit| limit.to_string());
            lines.push(format!(
                "{} directories not watched: out of inotify watches (fs.inotify.max_user_watches \
                 is {limit}); tried again every second: raise it with `sysctl \
                 fs.inotify.max_user_watches=N`",
                self.out_of_watches
            ));
        }
        if self.too_long > 0 {
            lines.push(format!(
                "{} directories not watched: their paths are longer than PATH_MAX, which inotify \
                 cannot watch",
                self.too_long
            ));
        }
        lines
    }
}

impl Tree {
    /// Records that directory `name` of node `parent` could not be watched, when that is a
    /// gap to keep in view (and warns, as for any failure).
    pub(super) fn watch_failed(
        &mut self,
        parent: usize,
        name: &[u8],
        path: &Path,
        failure: WatchFailure,
    ) {
        let why = match &failure {
            WatchFailure::OutOfWatches => Some(GapReason::OutOfWatches),
            WatchFailure::Other(error) if error.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                Some(GapReason::TooLong)
            }
            _ => None,
        };
        if let Some(why) = why {
            let parent_wd = self.node(parent).wd;
            let known = self.gaps.iter().any(|gap| {
                gap.parent == parent && gap.parent_wd == parent_wd && *gap.name == *name
            });
            if !known {
                self.gaps.push(Gap {
                    parent,
                    parent_wd,
                    name: Name::from_slice(name),
                    why,
                });
            }
            if why == GapReason::TooLong && self.warned_paths.insert(path.to_path_buf()) {
                tracing::warn!(
                    "{} is longer than PATH_MAX ({} bytes): inotify cannot watch it or what is \
                     below it; it is reported as unwatched",
                    path.display(),
                    path.as_os_str().len()
                );
                return;
            }
        }
        self.warn_watch_failure(path, failure);
    }

    /// When the gaps are next due to be tried, if there are any.
    pub(crate) fn next_gap_retry(&self) -> Option<Instant> {
        let retried = self
            .gaps
            .iter()
            .any(|gap| gap.why == GapReason::OutOfWatches)
            || self.watches.values().any(|watch| watch.root.is_none());
        retried.then_some(self.last_gap_retry + RETRY)
    }

    /// Tries the gaps that may have healed, if due.
    pub(crate) fn retry_gaps(&mut self, now: Instant) {
        if self.next_gap_retry().is_none_or(|due| due > now) {
            return;
        }
        self.last_gap_retry = now;
        self.tick();
        self.retry_lost_roots();
        self.retry_unwatched();
    }

    fn retry_unwatched(&mut self) {
        let gaps = std::mem::take(&mut self.gaps);
        let mut healed = 0;
        let mut exhausted = false;
        for gap in gaps {
            let parent_alive = self
                .nodes
                .get(gap.parent)
                .and_then(Option::as_ref)
                .is_some_and(|node| {
                    node.wd == gap.parent_wd && self.by_wd.get(&node.wd) == Some(&gap.parent)
                });
            if !parent_alive {
                continue;
            }
            let waiting = self
                .node(gap.parent)
                .entries
                .get(&gap.name)
                .is_some_and(|entry| entry.kind == Kind::Dir && entry.child.get().is_none());
            if !waiting {
                continue;
            }
            if gap.why == GapReason::TooLong || exhausted {
                // Still too long; or the limit was hit again in this round: later.
                self.gaps.push(gap);
                continue;
            }
            // Only gaps found after a watch's first walk are retried (a first walk out of
            // watches fails as a whole): the owners are those of a directory that appeared.
            let owners = self.child_owners(gap.parent, &gap.name, true);
            if owners.is_empty() {
                continue;
            }
            let path: Arc<Path> = Arc::from(
                self.node(gap.parent)
                    .path
                    .join(OsStr::from_bytes(&gap.name)),
            );
            match self.watch_directory(
                path.clone(),
                Some(gap.parent),
                owners,
                true,
                Some(Origin::Scan),
            ) {
                Ok(child) => {
                    healed += 1;
                    if let Some(entry) = self.node_mut(gap.parent).entries.get_mut(&gap.name) {
                        entry.child = Child::of(child);
                    }
                }
                Err(WatchFailure::OutOfWatches) => {
                    exhausted = true;
                    self.gaps.push(gap);
                }
                Err(failure) => self.warn_watch_failure(&path, failure),
            }
        }
        if healed > 0 {
            let left = self
                .gaps
                .iter()
                .filter(|gap| gap.why == GapReason::OutOfWatches);
            let left = left.count();
            tracing::info!(
                "{healed} directories that had no inotify watch are watched now and were \
                 scanned{}",
                if left > 0 {
                    format!("; {left} still wait for watches")
                } else {
                    String::new()
                }
            );
            if left == 0 {
                // A later shortage is logged again.
                self.warned_watch_limit = false;
            }
        }
    }

    fn retry_lost_roots(&mut self) {
        let lost: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, watch)| watch.root.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            let path = self.watches[&id].spec.path.clone();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let walked = self.watch_directory(
                Arc::from(path.as_path()),
                None,
                Arc::new([id]),
                meta.is_dir(),
                Some(Origin::Scan),
            );
            match walked {
                Ok(key) => {
                    self.watches.get_mut(&id).expect("listed").root = Some(key);
                    tracing::info!(
                        "the watched path {} is back: watched again, and its entries reported",
                        path.display()
                    );
                }
                Err(failure) => self.warn_watch_failure(&path, failure),
            }
        }
    }

    /// Says that the root of `id` is gone, once, when it goes.
    pub(super) fn root_lost(&mut self, id: WatchId) {
        if let Some(watch) = self.watches.get(&id) {
            tracing::warn!(
                "the watched path {} is gone (deleted, unmounted or moved): waiting for it to \
                 come back, looking every {RETRY:?}",
                watch.spec.path.display()
            );
        }
    }

    /// What of the watched trees the kernel does not watch now.
    pub(crate) fn gaps(&self) -> Gaps {
        let mut gaps = Gaps {
            lost_roots: self
                .watches
                .values()
                .filter(|watch| watch.root.is_none())
                .map(|watch| watch.spec.path.clone())
                .collect(),
            ..Gaps::default()
        };
        gaps.lost_roots.sort();
        for gap in &self.gaps {
            match gap.why {
                GapReason::OutOfWatches => gaps.out_of_watches += 1,
                GapReason::TooLong => gaps.too_long += 1,
            }
        }
        gaps
    }
}
