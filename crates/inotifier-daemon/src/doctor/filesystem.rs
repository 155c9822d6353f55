//! What the filesystem of a watch path means for its backend, and the free space of a
//! directory (statvfs). The table of filesystems is the core's
//! ([`inotifier_core::filesystem`]), which the `auto` backend decides from.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use inotifier_core::BackendChoice;
use inotifier_core::filesystem::{Filesystem, Reach, filesystem_of};

use crate::config::WatchConfig;

use super::Finding;

/// Bytes an unprivileged user can still write in the directory `dir`.
pub(super) fn free_space(dir: &Path) -> io::Result<u64> {
    let c_path = c_path(dir)?;
    // SAFETY: as for statfs above.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs to fill, both alive across the call.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Both are 32-bit on some targets, 64-bit here.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The filesystem of a watch's path and the backend it gets there ([`BackendChoice`], the
/// engine's own rule). None for a path that does not exist (its own finding says so).
pub(super) fn check_filesystem(watch: &WatchConfig) -> Option<Finding> {
    let path = watch.path.as_path();
    let shown = path.display();
    let (found, magic) = match filesystem_of(path) {
        Ok(found) => found,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            return Some(Finding::warning(
                "filesystem",
                format!("{shown}: cannot tell its filesystem: {error}"),
                "check with `stat -f` that it is a local filesystem",
            ));
        }
    };
    let choice = BackendChoice::of(&watch.spec());
    let backend = match choice.summary() {
        "inotify" => "backend inotify".to_string(),
        summary => format!(
            "backend {summary}, every {}",
            inotifier_core::duration::format_duration(choice.interval)
        ),
    };
    let name = found.map_or_else(
        || format!("a filesystem of type {magic:#x}"),
        |fs| fs.name.to_string(),
    );
    Some(match found {
        Some(Filesystem {
            reach: Reach::Nothing,
            ..
        }) => Finding::warning(
            "filesystem",
            format!("{shown} is on {name}: inotify reports next to nothing there"),
            "watch a directory of a real filesystem",
        ),
        Some(Filesystem {
            reach: Reach::ThisHostOnly,
            ..
        }) if !choice.polls(path) => Finding::warning(
            "filesystem",
            format!(
                "{shown} is on {name}: {backend}, which misses changes made by other hosts (or \
                 by the filesystem's server)"
            ),
            "set backend = \"auto\" (or \"poll\") on this watch, or make sure every change \
             is made through this machine",
        ),
        _ => Finding::ok("filesystem", format!("{shown} is on {name}: {backend}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::ProcessorConfig;

    fn watch_of(path: &str, backend: inotifier_core::Backend) -> WatchConfig {
        WatchConfig {
            name: None,
            path: path.into(),
            events: inotifier_core::Mask::IN_CLOSE_WRITE,
            processor: ProcessorConfig {
                kind: "log".into(),
                options: Default::default(),
            },
            recursive: false,
            auto_add: false,
            filters: Default::default(),
            backend,
            poll_interval: inotifier_core::DEFAULT_POLL_INTERVAL,
            ready: Default::default(),
            retry: Default::default(),
        }
    }

    #[test]
    fn proc_is_known_and_warned_about() {
        let finding = check_filesystem(&watch_of("/proc", Default::default())).unwrap();
        assert_eq!(finding.level, super::super::Level::Warning);
    }

    #[test]
    fn a_forced_poll_is_named_with_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let finding = check_filesystem(&watch_of(path, inotifier_core::Backend::Poll)).unwrap();
        assert_eq!(finding.level, super::super::Level::Ok);
        assert!(
            finding.what.ends_with("backend poll, every 1s"),
            "{finding:?}"
        );
        let finding = check_filesystem(&watch_of(path, Default::default())).unwrap();
        assert!(finding.what.ends_with("backend inotify"), "{finding:?}");
    }
}
