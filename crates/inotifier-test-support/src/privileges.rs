//! Tests that need root: those that lower `/proc/sys/fs/inotify` limits, mount a tmpfs, or run
//! the watcher as another user. Run by anyone else, each is skipped, naming why it needs root
//! (see [`crate::skip`]), so that `./scripts/test.sh` run by a user without sudo still runs
//! everything else and fails only for failures.

/// Whether this process runs with effective uid 0. The kernel decides with the effective uid
/// (and the capabilities that come with it), so that is what is asked, not an environment
/// variable that could disagree with it.
pub fn is_root() -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when running as root. Otherwise `test` is skipped (false), the reason naming `why` it
/// needs root, e.g. "lowers fs.inotify.max_queued_events".
pub fn root_available(test: &str, why: &str) -> bool {
    if is_root() {
        return true;
    }
    crate::skip::skip(&needs_root(test, why));
    false
}

/// The skip line of `test`, which needs root because it `why`.
pub fn needs_root(test: &str, why: &str) -> String {
    format!("{test}: skipped: needs root ({why}; run ./scripts/test.sh as root or with sudo)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skip_names_the_test_the_reason_and_the_remedy() {
        assert_eq!(
            needs_root("t", "mounts a tmpfs"),
            "t: skipped: needs root (mounts a tmpfs; run ./scripts/test.sh as root or with sudo)"
        );
    }
}
