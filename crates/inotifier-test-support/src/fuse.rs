//! A FUSE filesystem for the tests of polling and of the doctor: `bindfs SOURCE POINT` shows
//! SOURCE at POINT through FUSE, so a write made in SOURCE directly changes POINT as another
//! NFS client's write would change an NFS mount: inotify on POINT never hears of it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A bindfs mount, unmounted (by its mount point) when dropped, even when the test panics.
pub struct BindfsMount {
    point: PathBuf,
}

impl BindfsMount {
    /// Mounts `source` at `point` (both existing directories). `None` after skipping `test`
    /// (see [`crate::skip`]) when this is not root or bindfs is not installed; with
    /// `INOTIFIER_REQUIRE_SERVICES` set, a missing bindfs fails the test instead.
    pub fn mount(test: &str, source: &Path, point: &Path) -> Option<BindfsMount> {
        if !crate::privileges::root_available(test, "mounts a FUSE filesystem (bindfs)") {
            return None;
        }
        if Command::new("bindfs").arg("--version").output().is_err() {
            let reason = format!(
                "{test}: skipped: bindfs is not installed (apt-get install bindfs; \
                 scripts/test.sh does as root)"
            );
            assert!(!crate::services::required(), "{reason}");
            crate::skip::skip(&reason);
            return None;
        }
        let status = Command::new("bindfs")
            .arg(source)
            .arg(point)
            .status()
            .expect("bindfs runs");
        assert!(
            status.success(),
            "bindfs {} {} failed",
            source.display(),
            point.display()
        );
        Some(BindfsMount {
            point: point.to_path_buf(),
        })
    }
}

impl Drop for BindfsMount {
    fn drop(&mut self) {
        let unmounted = Command::new("fusermount")
            .arg("-u")
            .arg(&self.point)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
    }
}
