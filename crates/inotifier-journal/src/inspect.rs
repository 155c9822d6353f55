//! Checking a journal from outside, read-only: what `inotifier doctor` asks of it.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{JournalError, Result};
use crate::{Journal, file, schema};

/// A journal that [`Journal::inspect`] found sound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Bytes of the file and its WAL.
    pub bytes: u64,
    /// Deliveries not yet acknowledged (pending and dead-lettered), of every processor.
    pub open_deliveries: u64,
}

impl Journal {
    /// Checks the journal at `path` as [`Journal::open`] and [`Journal::check`] would (a
    /// regular file, not a symbolic link, SQLite's header, this schema's version and tables,
    /// every page readable), writing nothing: the daemon may be running on it. A missing file
    /// is an [`JournalError::Io`] of kind `NotFound`.
    pub fn inspect(path: &Path) -> Result<Inspection> {
        let meta = fs::symlink_metadata(path).map_err(|e| JournalError::io(path, e))?;
        if meta.file_type().is_symlink() {
            return Err(JournalError::Symlink {
                path: path.to_path_buf(),
            });
        }
        if !meta.is_file() {
            return Err(JournalError::NotAJournal {
                path: path.to_path_buf(),
                detail: "not a regular file".into(),
            });
        }
        if meta.len() == 0 {
            return Err(JournalError::Lost {
                path: path.to_path_buf(),
                detail: "a zero-length file".into(),
            });
        }
        let header = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| JournalError::io(path, e))?;
        file::check_header(path, &header)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| JournalError::sqlite(path, e, 0))?;
        let fail = |conn: &Connection, e| JournalError::sqlite(path, e, schema::errno(conn));
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| fail(&conn, e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| fail(&conn, e))?;
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut stmt| {
                stmt.query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| fail(&conn, e))?;
        schema::verify(path, version, &tables)?;
        let problems: Vec<String> = conn
            .prepare("PRAGMA quick_check(20)")
            .and_then(|mut stmt| {
                stmt.query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| fail(&conn, e))?;
        if !(problems.len() == 1 && problems[0] == "ok") {
            return Err(JournalError::Corrupt {
                path: path.to_path_buf(),
                detail: problems.join("; "),
            });
        }
        let open_deliveries: i64 = conn
            .query_row(
                "SELECT count(*) FROM deliveries WHERE state < 2",
                [],
                |row| row.get(0),
            )
            .map_err(|e| fail(&conn, e))?;
        let wal = match fs::metadata(file::companion(path, "-wal")) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(JournalError::io(path, e)),
        };
        Ok(Inspection {
            bytes: meta.len() + wal,
            open_deliveries: u64::try_from(open_deliveries).unwrap_or(0),
        })
    }
}
