//! What the journal owes each processor, read on a connection of its own: the figures the
//! metrics and `inotifier status --json` report, read every scrape while the daemon writes.
//! A read-only connection of its own, so that reading them never waits for the daemon's own
//! connection nor holds it (in WAL mode readers and the writer do not block each other).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{JournalError, Result};
use crate::schema::{PENDING, errno};

/// One processor key's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub key: String,
    /// Events not acknowledged yet.
    pub pending: u64,
    /// Events given up on, kept for `inotifier journal retry`.
    pub dead: u64,
    /// When the oldest pending event happened, in nanoseconds since the Unix epoch.
    pub oldest_pending_ns: Option<i64>,
}

impl Backlog {
    /// How long the oldest pending event has waited at `now_ns`.
    pub fn oldest_pending_age(&self, now_ns: i64) -> Option<Duration> {
        self.oldest_pending_ns
            .map(|then| Duration::from_nanos(now_ns.saturating_sub(then).max(0) as u64))
    }
}

/// A read-only view of a journal's backlog.
pub struct BacklogReader {
    path: PathBuf,
    conn: Connection,
}

impl BacklogReader {
    /// Opens the journal at `path`, which must exist, read-only and never through a symlink.
    pub fn open(path: &Path) -> Result<BacklogReader> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| JournalError::sqlite(path, e, 0))?;
        conn.busy_timeout(Duration::from_secs(2))
            .map_err(|e| JournalError::sqlite(path, e, errno(&conn)))?;
        Ok(BacklogReader {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Every processor key the journal knows, with what it is owed (zeros included).
    pub fn read(&self) -> Result<Vec<Backlog>> {
        let run = || -> rusqlite::Result<Vec<Backlog>> {
            let mut rows: Vec<(u32, Backlog)> = self
                .conn
                .prepare_cached("SELECT id, key FROM processors ORDER BY key")?
                .query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        Backlog {
                            key: row.get(1)?,
                            pending: 0,
                            dead: 0,
                            oldest_pending_ns: None,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            // `state < 2` literally: the partial index of open deliveries covers it.
            let mut open = self.conn.prepare_cached(
                "SELECT d.processor, d.state, count(*), min(e.time_ns)
                 FROM deliveries d JOIN events e ON e.id = d.event
                 WHERE d.state < 2 GROUP BY d.processor, d.state",
            )?;
            let mut found = open.query([])?;
            while let Some(row) = found.next()? {
                let processor: u32 = row.get(0)?;
                let state: i64 = row.get(1)?;
                let count: i64 = row.get(2)?;
                let oldest: Option<i64> = row.get(3)?;
                if let Some((_, backlog)) = rows.iter_mut().find(|(id, _)| *id == processor) {
                    if state == PENDING {
                        backlog.pending = count as u64;
                        backlog.oldest_pending_ns = oldest;
                    } else {
                        backlog.dead = count as u64;
                    }
                }
            }
            Ok(rows.into_iter().map(|(_, backlog)| backlog).collect())
        };
        run().map_err(|e| JournalError::sqlite(&self.path, e, errno(&self.conn)))
    }
}
