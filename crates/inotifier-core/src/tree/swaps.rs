//! Symlink swaps: a directory whose visible files are symbolic links through another link of
//! the same directory, which is replaced atomically to switch every file at once. That is how
//! kubelet's atomic writer lays out a ConfigMap or Secret volume:
//!
//! ```text
//! config.yaml -> ..data/config.yaml
//! ..data -> ..2026_12_08_05_00_00.123456789
//! ..2026_12_08_05_00_00.123456789/config.yaml
//! ```
//!
//! An update writes a new timestamped directory, makes `..data_tmp` point to it and renames it
//! over `..data`. The kernel reports the rename, and nothing about `config.yaml`, whose content
//! changed all the same: for each symbolic link of the directory that goes through the replaced
//! name and still resolves, an `IN_MODIFY` and an `IN_CLOSE_WRITE` are synthesized, so that
//! processors (and the ready detector) see the file change.
//!
//! Only directories that held a symbolic link when listed are looked at, and in them only
//! renames and creations, at the cost of one `readlink` each; the other links' targets are
//! read once, the first time, and kept. Elsewhere nothing is added to the event path.
//!
//! A watch of a file through such a link (`config.yaml` itself) holds a kernel watch on the
//! file the path resolved to, which the writer deletes after the swap. Its `IN_ATTRIB` (the
//! last link gone), `IN_DELETE_SELF` and `IN_IGNORED` are then about a file nobody reaches any
//! more: when the path resolves to another file by then, the watch moves to that file and the
//! change is reported as an `IN_MODIFY` and an `IN_CLOSE_WRITE` of the path, in place of those
//! three. A file watched by a path without symbolic links keeps the kernel's behaviour (the
//! watch follows the inode).

use super::*;

impl Tree {
    /// Entry `name` of node `key` was renamed in or created: when it is a symbolic link that
    /// other links of the node go through, their targets changed.
    pub(super) fn after_link_replaced(&mut self, key: usize, name: &[u8]) {
        if self.node(key).symlinks.is_empty() {
            return;
        }
        let dir = self.node(key).path.clone();
        // One system call, which fails for anything but a link: a regular file created in a
        // directory that also holds links costs no more.
        let Ok(target) = std::fs::read_link(dir.join(OsStr::from_bytes(name))) else {
            return;
        };
        let target: Box<[u8]> = target.as_os_str().as_bytes().into();
        let node = self.node_mut(key);
        let mut links = std::mem::take(&mut node.symlinks);
        // Links deleted since are forgotten; one made after the listing (a key added to the
        // ConfigMap) is followed from now on.
        links.retain(|link| &link.name[..] == name || node.entries.contains_key(&link.name));
        match links.iter_mut().find(|link| &link.name[..] == name) {
            Some(link) => link.target = Some(target),
            None => links.push(Symlink {
                name: name.into(),
                target: Some(target),
            }),
        }
        let mut through = Vec::new();
        for link in links.iter_mut().filter(|link| &link.name[..] != name) {
            if link.target.is_none() {
                // Read once, the first time a link of this directory is replaced.
                link.target = std::fs::read_link(dir.join(OsStr::from_bytes(&link.name)))
                    .ok()
                    .map(|target| target.as_os_str().as_bytes().into());
            }
            let goes_through = link.target.as_deref().is_some_and(|target| {
                target
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
            });
            // Reported only when it still resolves to a file: a key removed from the
            // ConfigMap has its link deleted by the writer, which the kernel reports.
            if goes_through
                && std::fs::metadata(dir.join(OsStr::from_bytes(&link.name)))
                    .is_ok_and(|meta| meta.is_file())
            {
                through.push(link.name.clone());
            }
        }
        self.node_mut(key).symlinks = links;
        for link in through {
            self.emit(key, Mask::IN_MODIFY, 0, &link, None, Origin::Rescan);
            self.emit(key, Mask::IN_CLOSE_WRITE, 0, &link, None, Origin::Rescan);
        }
    }
}

/// A symbolic link among a directory's entries, and its target once read.
pub(super) struct Symlink {
    pub(super) name: Name,
    pub(super) target: Option<Box<[u8]>>,
}

impl Tree {
    /// A kernel event about the file root of node `key`, watched through a symbolic link: if
    /// the path now resolves to another file, the watch moves there and the change is reported;
    /// true when it did (the kernel's event is then about the old file, and dropped).
    pub(super) fn root_retargeted(&mut self, key: usize, mask: Mask) -> bool {
        let node = self.node(key);
        if node.is_dir
            || node.parent.is_some()
            || !mask.intersects(Mask::IN_ATTRIB | Mask::IN_DELETE_SELF | Mask::IN_IGNORED)
            || !node.owners.iter().any(|id| {
                self.watches
                    .get(id)
                    .is_some_and(|watch| watch.through_symlink && watch.root == Some(key))
            })
        {
            return false;
        }
        let (path, old_wd) = (node.path.clone(), node.wd);
        let kernel_mask = self.kernel_mask(&node.owners, true, false);
        if !std::fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
            return false;
        }
        let Ok(wd) = self.inotify.add_watch(&path, kernel_mask) else {
            return false;
        };
        if wd == old_wd {
            // Still the same file (a chmod): the kernel's event stands.
            return false;
        }
        if self.by_wd.contains_key(&wd) {
            // The new target is watched already (another watch): leave the kernel to it.
            return false;
        }
        let _ = self.inotify.rm_watch(old_wd);
        self.by_wd.remove(&old_wd);
        self.by_wd.insert(wd, key);
        self.node_mut(key).wd = wd;
        self.emit(key, Mask::IN_MODIFY, 0, b"", None, Origin::Rescan);
        self.emit(key, Mask::IN_CLOSE_WRITE, 0, b"", None, Origin::Rescan);
        true
    }
}
