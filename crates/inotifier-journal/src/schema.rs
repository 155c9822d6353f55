//! The tables, their version, and the connection settings every journal connection uses.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{JournalError, Result};

/// `PRAGMA user_version` of the schema below. Bump it, and migrate in `ensure`, whenever a
/// table changes; a journal with a larger number was written by a newer inotifier.
pub const VERSION: i64 = 1;

/// Delivery states (`deliveries.state`). The partial index `deliveries_open` holds the rows
/// with `state < 2`, so queries on open deliveries must say `state < 2` literally for SQLite
/// to use it.
pub(crate) const PENDING: i64 = 0;
pub(crate) const DEAD: i64 = 1;
pub(crate) const ACKED: i64 = 2;

pub(crate) const SCHEMA: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('next_event_id', 1);
INSERT INTO meta (key, value) VALUES ('instance', random() & 9223372036854775807);
CREATE TABLE processors (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    last_acked INTEGER
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    mask INTEGER NOT NULL,
    cookie INTEGER NOT NULL,
    wd INTEGER NOT NULL,
    path BLOB NOT NULL,
    name BLOB NOT NULL,
    src BLOB,
    origin TEXT NOT NULL,
    time_ns INTEGER NOT NULL
);
CREATE TABLE deliveries (
    event INTEGER NOT NULL,
    processor INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    requeued INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event, processor)
) WITHOUT ROWID;
CREATE INDEX deliveries_open ON deliveries (processor, event) WHERE state < 2;
CREATE INDEX deliveries_requeued ON deliveries (processor, event) WHERE requeued <> 0;
CREATE TABLE snapshot_roots (
    watch TEXT PRIMARY KEY,
    saved_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE snapshot (
    watch TEXT NOT NULL,
    path BLOB NOT NULL,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    PRIMARY KEY (watch, path)
) WITHOUT ROWID;
";

const TABLES: [&str; 6] = [
    "meta",
    "processors",
    "events",
    "deliveries",
    "snapshot_roots",
    "snapshot",
];

/// Admin commands write while the daemon does; SQLite serializes writers, this bounds the wait.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's last OS error on `conn`, to tell EROFS and ENOSPC apart inside an I/O error.
pub(crate) fn errno(conn: &Connection) -> i32 {
    // SAFETY: the handle is valid for as long as `conn` is borrowed; the call only reads it.
    unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) }
}

pub(crate) fn connect(path: &Path) -> Result<Connection> {
    // NOFOLLOW: SQLite itself refuses a symlink swapped in after our check.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| JournalError::sqlite(path, e, 0))?;
    let fail = |conn: &Connection, e| JournalError::sqlite(path, e, errno(conn));
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail(&conn, e))?;
    // A database SQLite could only open read-only (EROFS, EACCES) fails on its first write:
    // say so at open time.
    if conn.is_readonly("main").map_err(|e| fail(&conn, e))? {
        return Err(JournalError::ReadOnly {
            path: path.to_path_buf(),
            detail: "SQLite could only open it read-only".into(),
        });
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| fail(&conn, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::NotAJournal {
            path: path.to_path_buf(),
            detail: format!("SQLite refused WAL mode (journal_mode is {mode})"),
        });
    }
    // FULL: a commit is on disk (WAL fsynced) when it returns, which is what append promises.
    // The WAL is checkpointed every 1,000 pages (4 MiB) and cut back to 4 MiB after each
    // checkpoint: it never holds much more than that of the disk, so that space freed on a
    // full disk goes to new events, not to a WAL that grows back.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA cache_size = -16384;
         PRAGMA foreign_keys = OFF;
         PRAGMA wal_autocheckpoint = 1000;
         PRAGMA journal_size_limit = 4194304;",
    )
    .map_err(|e| fail(&conn, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates the tables in a new journal (`creating`: the file is ours, made a moment ago), or
/// checks an existing one's version and tables. Reading `sqlite_master` parses page 1 and the
/// schema, the cheap half of a corruption check that stays fast however large the journal is.
pub(crate) fn ensure(path: &Path, conn: &mut Connection, creating: bool) -> Result<()> {
    let fail = |conn: &Connection, e| JournalError::sqlite(path, e, errno(conn));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| JournalError::sqlite(path, e, 0))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| fail(&tx, e))?;
    let tables: Vec<String> = {
        let mut stmt = tx
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(|e| fail(&tx, e))?;
        let rows = stmt
            .query_map([], |row| row.get(0))
            .map_err(|e| fail(&tx, e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| fail(&tx, e))?
    };
    if version == 0 && tables.is_empty() {
        if !creating {
            // Journals are made whole under another name: an empty one at the path lost its
            // content (truncated, or replaced).
            return Err(JournalError::Lost {
                path: path.to_path_buf(),
                detail: "the file holds no tables".into(),
            });
        }
        tx.execute_batch(SCHEMA).map_err(|e| fail(&tx, e))?;
        tx.pragma_update(None, "user_version", VERSION)
            .map_err(|e| fail(&tx, e))?;
        tx.commit().map_err(|e| fail(conn, e))?;
        return Ok(());
    }
    verify(path, version, &tables)?;
    // Journals made before instances existed get theirs now.
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', random() & 9223372036854775807)",
        [],
    )
    .map_err(|e| fail(&tx, e))?;
    tx.commit().map_err(|e| fail(conn, e))?;
    Ok(())
}

/// An existing journal's version (`PRAGMA user_version`) and tables are this schema's.
pub(crate) fn verify(path: &Path, version: i64, tables: &[String]) -> Result<()> {
    if version > VERSION {
        return Err(JournalError::Version {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    if version != VERSION {
        return Err(JournalError::NotAJournal {
            path: path.to_path_buf(),
            detail: format!(
                "a SQLite database with schema version {version}, not an inotifier journal"
            ),
        });
    }
    let missing: Vec<&str> = TABLES
        .iter()
        .copied()
        .filter(|t| !tables.iter().any(|have| have == t))
        .collect();
    if !missing.is_empty() {
        return Err(JournalError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("tables missing: {}", missing.join(", ")),
        });
    }
    Ok(())
}

/// The journal's instance id (see [`crate::Journal::instance`]).
pub(crate) fn instance(path: &Path, conn: &Connection) -> Result<u64> {
    conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|value| value as u64)
    .map_err(|e| JournalError::sqlite(path, e, errno(conn)))
}
