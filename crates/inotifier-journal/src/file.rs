//! The journal's files on disk: created 0600 before SQLite sees them, never through a symlink.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{JournalError, Result};

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The journal holds file names, which can be private: nobody but its owner reads it.
const MODE: u32 = 0o600;

/// SQLite's companion files of `path`.
pub(crate) fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether the journal exists already; see [`prepare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    Existing,
    /// Nothing at the path: [`crate::Journal::open`] makes a new journal under a temporary
    /// name and links it into place whole, so that a file at the path always was a journal.
    Missing,
}

/// Makes sure an existing `path` is a regular file with mode 0600, that it is writable, and
/// that a non-empty one starts like a SQLite database.
///
/// SQLite creates `-wal` and `-shm` with the mode of the database file (and fchmods them past
/// the umask), so a 0600 database gives 0600 companions; stale companions are tightened here.
pub(crate) fn prepare(path: &Path) -> Result<Found> {
    let found = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(JournalError::Symlink {
                path: path.to_path_buf(),
            });
        }
        Ok(meta) if !meta.is_file() => {
            return Err(JournalError::NotAJournal {
                path: path.to_path_buf(),
                detail: "not a regular file".into(),
            });
        }
        // Journals are made whole, and a checkpoint never shrinks the file: an empty one lost
        // its content. Refused before SQLite opens it, which would write to it.
        Ok(meta) if meta.len() == 0 => {
            return Err(JournalError::Lost {
                path: path.to_path_buf(),
                detail: "a zero-length file".into(),
            });
        }
        Ok(_) => {
            let file = open_existing(path)?;
            check_header(path, &file)?;
            tighten(path, &file)?;
            Found::Existing
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Found::Missing,
        Err(e) => return Err(JournalError::io(path, e)),
    };
    for suffix in ["-wal", "-shm"] {
        let companion = companion(path, suffix);
        match fs::symlink_metadata(&companion) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(JournalError::Symlink { path: companion });
            }
            Ok(meta) if meta.permissions().mode() & 0o777 != MODE => {
                let file = open_existing(&companion)?;
                tighten(&companion, &file)?;
            }
            _ => {}
        }
    }
    // SQLite creates the companions in the directory: on a read-only filesystem the database
    // could be opened read-only and fail later, on the first write; say it now.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()))
            .map_err(|e| JournalError::io(path, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        // SAFETY: a valid NUL-terminated string; access() only reads it.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            let error = io::Error::last_os_error();
            return Err(match JournalError::io(path, error) {
                JournalError::Io { path, source } => JournalError::Io {
                    path,
                    source: io::Error::new(
                        source.kind(),
                        format!("its directory {}: {source}", dir.display()),
                    ),
                },
                classified => classified,
            });
        }
    }
    Ok(found)
}

/// Creates `path`, empty, mode 0600; fails if anything is there.
pub(crate) fn create_new(path: &Path) -> Result<()> {
    // O_EXCL: if someone races us to the name (a symlink planted meanwhile), we fail rather
    // than open what they made.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    // The umask could only have narrowed it; this states the mode exactly.
    file.set_permissions(fs::Permissions::from_mode(MODE))
        .map_err(|e| JournalError::io(path, e))
}

fn open_existing(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| JournalError::io(path, e))
}

pub(crate) fn check_header(path: &Path, mut file: &File) -> Result<()> {
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::io(path, e)),
        }
    }
    if head == *SQLITE_MAGIC {
        return Ok(());
    }
    Err(JournalError::Corrupt {
        path: path.to_path_buf(),
        detail: "it does not start with SQLite's header, so it is not a database".into(),
    })
}

fn tighten(path: &Path, file: &File) -> Result<()> {
    let meta = file.metadata().map_err(|e| JournalError::io(path, e))?;
    if meta.permissions().mode() & 0o777 != MODE {
        tracing::info!(path = %path.display(), "journal: setting mode 0600");
        file.set_permissions(fs::Permissions::from_mode(MODE))
            .map_err(|e| JournalError::io(path, e))?;
    }
    Ok(())
}
