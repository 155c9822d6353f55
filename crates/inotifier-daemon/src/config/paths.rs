//! Paths in a configuration: relative ones resolved against the config's directory, and the
//! check that a watch path can really be watched.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Config;

/// `path` made absolute against `base_dir` (the config file's directory), with `.` components
/// and doubled or trailing slashes removed. `..` is kept: removing it could change which file
/// is meant when a symbolic link is on the way.
pub fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    base_dir.join(path).components().collect()
}

/// Why a watch path cannot be watched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("does not exist: create it, or correct `path`")]
    Missing,
    #[error("cannot be read ({reason}): give the daemon's user read access, or correct `path`")]
    Unreadable { reason: String },
}

/// Whether the daemon can watch `path`: it exists, and a directory can be listed (a recursive
/// watch lists it; inotify needs read access anyway) or a file can be read.
pub fn check_watch_path(path: &Path) -> Result<(), PathProblem> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(PathProblem::Missing),
        Err(error) => return Err(unreadable(error)),
    };
    if metadata.is_dir() {
        std::fs::read_dir(path).map(drop).map_err(unreadable)
    } else {
        // access(2) rather than opening: opening a FIFO for reading would block.
        readable(path).map_err(unreadable)
    }
}

fn unreadable(error: io::Error) -> PathProblem {
    PathProblem::Unreadable {
        reason: strip_os_error_code(&error.to_string()),
    }
}

/// "Permission denied (os error 13)" → "Permission denied".
fn strip_os_error_code(message: &str) -> String {
    match message.rfind(" (os error ") {
        Some(start) if message.ends_with(')') => message[..start].to_string(),
        _ => message.to_string(),
    }
}

fn readable(path: &Path) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: a NUL-terminated string that lives across the call.
    if unsafe { libc::access(c_path.as_ptr(), libc::R_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Config {
    /// Checks every watch path with [`check_watch_path`], for configurations that were not read
    /// from a file (a file's paths are checked, with their line and column, by
    /// [`load`](super::load)).
    pub fn check_paths(&self) -> Result<(), Vec<(PathBuf, PathProblem)>> {
        let problems: Vec<_> = self
            .watches
            .iter()
            .filter_map(|watch| {
                check_watch_path(&watch.path)
                    .err()
                    .map(|problem| (watch.path.clone(), problem))
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_base_and_are_tidied() {
        let base = Path::new("/etc/inotifier");
        assert_eq!(
            resolve(base, Path::new("up")),
            Path::new("/etc/inotifier/up")
        );
        assert_eq!(
            resolve(base, Path::new("./up//load/")),
            Path::new("/etc/inotifier/up/load")
        );
        assert_eq!(resolve(base, Path::new("/srv/x")), Path::new("/srv/x"));
        assert_eq!(
            resolve(base, Path::new("../run/x.pid")),
            Path::new("/etc/inotifier/../run/x.pid")
        );
    }

    #[test]
    fn watch_paths_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_watch_path(dir.path()), Ok(()));
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(check_watch_path(&file), Ok(()));
        assert_eq!(
            check_watch_path(&dir.path().join("absent")),
            Err(PathProblem::Missing)
        );
        assert!(matches!(
            check_watch_path(&file.join("below-a-file")),
            Err(PathProblem::Unreadable { .. })
        ));
    }

    #[test]
    fn os_error_codes_are_left_out_of_messages() {
        assert_eq!(
            strip_os_error_code("Permission denied (os error 13)"),
            "Permission denied"
        );
        assert_eq!(strip_os_error_code("odd"), "odd");
    }
}
