//! Errors, classified by what the operator (or the daemon) must do about them.

use std::io;
use std::path::{Path, PathBuf};

use rusqlite::ffi;

pub type Result<T, E = JournalError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Never reset silently: the operator decides, with the recovery command.
    #[error(
        "journal {}: the file is corrupt ({detail}); stop the daemon and run \
         `inotifier journal recover --journal {}`, which moves the damaged file aside and \
         salvages the pending and dead-lettered events and the snapshots it can still read",
        path.display(), path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    /// Never taken for a first start: the events it owed would be forgotten, and ids would
    /// start again at 1.
    #[error(
        "journal {}: its content is lost ({detail}). Starting on it would forget every delivery \
         it owed and number events from 1 again, so nothing starts on it. Restore it from a \
         backup, or accept the loss with `inotifier journal reset --journal {}` \
         (`manage.py inotifier_journal reset` in Django), which moves it aside so that the \
         next start begins a new journal",
        path.display(), path.display()
    )]
    Lost { path: PathBuf, detail: String },
    #[error(
        "journal {}: the disk is full ({detail}); free space on its filesystem or move the \
         journal elsewhere; events are not acknowledged to the kernel until it can be written",
        path.display()
    )]
    Full { path: PathBuf, detail: String },
    #[error(
        "journal {}: cannot write ({detail}); make the file and its directory writable by the \
         daemon's user, or remount the filesystem read-write",
        path.display()
    )]
    ReadOnly { path: PathBuf, detail: String },
    #[error(
        "journal {}: locked by another process for longer than the busy timeout ({detail}); \
         retry when the other `inotifier journal` command or daemon has finished its write",
        path.display()
    )]
    Busy { path: PathBuf, detail: String },
    #[error(
        "journal {}: in use by another daemon{}; two daemons on one journal would each deliver \
         every event. Stop the other daemon, or give this one a journal of its own ([journal] \
         path, or INOTIFIER_JOURNAL[\"path\"] in Django)",
        path.display(), pid.map_or(String::new(), |pid| format!(" (pid {pid})"))
    )]
    InUse { path: PathBuf, pid: Option<i32> },
    #[error("journal {}: is a symbolic link; refusing to follow it", path.display())]
    Symlink { path: PathBuf },
    #[error(
        "journal {}: schema version {found}, this inotifier knows version {supported}; \
         use the inotifier that wrote it, or a newer one",
        path.display()
    )]
    Version {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("journal {}: {detail}", path.display())]
    NotAJournal { path: PathBuf, detail: String },
    #[error("journal {}: no processor named {key:?} (known: {known})", path.display())]
    UnknownProcessor {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("journal {}: event id {id} was already appended; ids must be unique", path.display())]
    DuplicateId { path: PathBuf, id: u64 },
    #[error("journal {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("journal {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl JournalError {
    /// Whether retrying the same operation later can succeed without an operator repairing the
    /// file: a full disk gets freed, a read-only mount gets remounted, a lock gets released.
    /// The daemon keeps retrying these (and stops reading meanwhile); a corrupt journal it
    /// does not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            JournalError::Full { .. } | JournalError::ReadOnly { .. } | JournalError::Busy { .. }
        )
    }

    pub fn path(&self) -> &Path {
        match self {
            JournalError::Corrupt { path, .. }
            | JournalError::Lost { path, .. }
            | JournalError::Full { path, .. }
            | JournalError::ReadOnly { path, .. }
            | JournalError::Busy { path, .. }
            | JournalError::InUse { path, .. }
            | JournalError::Symlink { path }
            | JournalError::Version { path, .. }
            | JournalError::NotAJournal { path, .. }
            | JournalError::UnknownProcessor { path, .. }
            | JournalError::DuplicateId { path, .. }
            | JournalError::Io { path, .. }
            | JournalError::Sqlite { path, .. } => path,
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> JournalError {
        let path = path.to_path_buf();
        let detail = source.to_string();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => JournalError::Full { path, detail },
            Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => {
                JournalError::ReadOnly { path, detail }
            }
            _ => JournalError::Io { path, source },
        }
    }

    /// `errno` is SQLite's last system error on the connection, when one is at hand: an I/O
    /// error is only actionable once we know it was EROFS or ENOSPC.
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error, errno: i32) -> JournalError {
        let path = path.to_path_buf();
        let Some(code) = source.sqlite_error_code() else {
            return JournalError::Sqlite { path, source };
        };
        let detail = source.to_string();
        match code {
            ffi::ErrorCode::DatabaseCorrupt | ffi::ErrorCode::NotADatabase => {
                JournalError::Corrupt { path, detail }
            }
            ffi::ErrorCode::DiskFull => JournalError::Full { path, detail },
            ffi::ErrorCode::ReadOnly | ffi::ErrorCode::PermissionDenied => {
                JournalError::ReadOnly { path, detail }
            }
            ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => {
                JournalError::Busy { path, detail }
            }
            ffi::ErrorCode::SystemIoFailure | ffi::ErrorCode::CannotOpen => match errno {
                libc::ENOSPC | libc::EDQUOT => JournalError::Full {
                    path,
                    detail: format!("{detail}: {}", io::Error::from_raw_os_error(errno)),
                },
                libc::EROFS | libc::EACCES | libc::EPERM => JournalError::ReadOnly {
                    path,
                    detail: format!("{detail}: {}", io::Error::from_raw_os_error(errno)),
                },
                _ => JournalError::Sqlite { path, source },
            },
            _ => JournalError::Sqlite { path, source },
        }
    }
}
