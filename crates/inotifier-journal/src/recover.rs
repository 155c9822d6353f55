//! `inotifier journal recover`: a damaged journal is moved aside, what can be read of it is
//! copied into a fresh one. Never done implicitly: opening a corrupt journal is an error.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, Row, params};

use crate::error::{JournalError, Result};
use crate::file::companion;
use crate::journal::{Journal, JournalOptions};
use crate::schema::{ACKED, DEAD, PENDING};

/// What [`Journal::recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// Where the damaged file (and its `-wal`, `-shm`) now is.
    pub moved_to: PathBuf,
    pub processors: usize,
    pub events: usize,
    pub pending: usize,
    pub dead: usize,
    pub acked: usize,
    /// Pending or dead deliveries whose event could not be read: lost.
    pub lost: usize,
    pub snapshot_entries: usize,
    /// What could not be read, table by table.
    pub errors: Vec<String>,
}

impl fmt::Display for RecoverReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "damaged journal moved to {}", self.moved_to.display())?;
        writeln!(
            f,
            "salvaged: {} processors, {} events ({} pending, {} dead, {} acknowledged deliveries), \
             {} snapshot entries",
            self.processors,
            self.events,
            self.pending,
            self.dead,
            self.acked,
            self.snapshot_entries
        )?;
        if self.lost > 0 {
            writeln!(
                f,
                "lost: {} pending or dead deliveries whose event could not be read",
                self.lost
            )?;
        }
        for error in &self.errors {
            writeln!(f, "unreadable: {error}")?;
        }
        Ok(())
    }
}

type EventRow = (
    i64,
    i64,
    i64,
    i64,
    Vec<u8>,
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    i64,
);
type DeliveryRow = (i64, i64, i64, i64, Option<String>, i64);
type SnapshotRow = (String, Vec<u8>, i64, i64, i64, i64);

const EVENT_SELECT: &str =
    "SELECT id, mask, cookie, wd, path, name, src, origin, time_ns FROM events";

fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

/// Reads the rows of `sql` up to the first error, which goes to `errors`: a damaged page ends
/// one table's salvage, not the whole recovery.
fn salvage<T>(
    conn: &Connection,
    table: &str,
    sql: &str,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    errors: &mut Vec<String>,
) -> Vec<T> {
    let mut out = Vec::new();
    let result = (|| {
        let mut stmt = conn.prepare(sql)?;
        for row in stmt.query_map([], map)? {
            out.push(row?);
        }
        Ok::<_, rusqlite::Error>(())
    })();
    if let Err(e) = result {
        errors.push(format!("{table}: {e} (after {} rows)", out.len()));
    }
    out
}

/// Moves the journal at `path` (never a symlink) aside to `PATH.<why>-<unix time>`, holding
/// its lock: refused while a daemon runs with it. The lock is returned, to hold while the
/// caller writes the journal anew.
fn move_aside(path: &Path, why: &str) -> Result<(crate::JournalLock, PathBuf)> {
    let meta = fs::symlink_metadata(path).map_err(|e| JournalError::io(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(JournalError::Symlink {
            path: path.to_path_buf(),
        });
    }
    let lock = crate::JournalLock::acquire(path)?;
    let aside = aside_path(path, why);
    move_with_companions(path, &aside)?;
    Ok((lock, aside))
}

fn move_with_companions(path: &Path, aside: &Path) -> Result<()> {
    fs::rename(path, aside).map_err(|e| JournalError::io(path, e))?;
    for suffix in ["-wal", "-shm"] {
        match fs::rename(companion(path, suffix), companion(aside, suffix)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(JournalError::io(&companion(path, suffix), e)),
        }
    }
    Ok(())
}

fn aside_path(path: &Path, why: &str) -> PathBuf {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut n = 0;
    loop {
        let mut name = path.as_os_str().to_os_string();
        name.push(format!(".{why}-{stamp}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let candidate = PathBuf::from(name);
        if fs::symlink_metadata(&candidate).is_err() {
            return candidate;
        }
        n += 1;
    }
}

impl Journal {
    /// Accepts the loss of the journal at `path`: moves it aside (to `PATH.reset-<unix
    /// time>`, with its `-wal` and `-shm`), so that the next open makes a new journal, with a
    /// new instance id. Returns where it went. Refused while a daemon holds the journal.
    pub fn reset(path: &Path) -> Result<PathBuf> {
        let (_lock, aside) = move_aside(path, "reset")?;
        tracing::warn!(from = %path.display(), to = %aside.display(), "journal: moved aside by reset");
        Ok(aside)
    }

    /// Moves the journal at `path` aside (to `PATH.corrupt-<unix time>`, with its `-wal`),
    /// reads what it can of it table by table, and writes a fresh journal at `path` with
    /// that. Run it with the daemon stopped.
    pub fn recover(path: &Path) -> Result<RecoverReport> {
        let (_lock, aside) = move_aside(path, "corrupt")?;
        tracing::warn!(from = %path.display(), to = %aside.display(), "journal: moved the damaged journal aside");

        let mut report = RecoverReport {
            moved_to: aside.clone(),
            ..RecoverReport::default()
        };
        let errors = &mut report.errors;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let old = match Connection::open_with_flags(&aside, flags) {
            Ok(conn) => Some(conn),
            Err(e) => {
                errors.push(format!("the whole file: {e}"));
                None
            }
        };
        let (mut processors, mut next_id, mut events, mut deliveries, mut roots, mut snapshot) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        if let Some(old) = &old {
            processors = salvage(
                old,
                "processors",
                "SELECT id, key, last_acked FROM processors",
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                },
                errors,
            );
            next_id = salvage(
                old,
                "meta",
                "SELECT value FROM meta WHERE key = 'next_event_id'",
                |r| r.get::<_, i64>(0),
                errors,
            );
            events = salvage(old, "events", EVENT_SELECT, event_row, errors);
            deliveries = salvage(
                old,
                "deliveries",
                "SELECT event, processor, state, attempts, error, requeued FROM deliveries",
                |r| -> rusqlite::Result<DeliveryRow> {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
                errors,
            );
            // A damaged page ended the scan of `events`: the open deliveries' events may
            // still be reachable one by one, through the b-tree's interior pages.
            let have: HashSet<i64> = events.iter().map(|e| e.0).collect();
            let wanted: Vec<i64> = deliveries
                .iter()
                .filter(|d| d.2 != ACKED && !have.contains(&d.0))
                .map(|d| d.0)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if let (false, Ok(mut stmt)) = (
                wanted.is_empty(),
                old.prepare(&format!("{EVENT_SELECT} WHERE id = ?1")),
            ) {
                for id in wanted {
                    if let Ok(row) = stmt.query_row([id], event_row) {
                        events.push(row);
                    }
                }
            }
            roots = salvage(
                old,
                "snapshot_roots",
                "SELECT watch, saved_ns FROM snapshot_roots",
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
                errors,
            );
            snapshot = salvage(
                old,
                "snapshot",
                "SELECT watch, path, inode, size, mtime_ns, kind FROM snapshot",
                |r| -> rusqlite::Result<SnapshotRow> {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
                errors,
            );
        }
        drop(old);

        let fresh = Journal::open(&JournalOptions::new(path))?;
        let have: HashSet<i64> = events.iter().map(|e| e.0).collect();
        let max_event = events.iter().map(|e| e.0).max().unwrap_or(0);
        let max_delivery = deliveries.iter().map(|d| d.0).max().unwrap_or(0);
        let next = next_id
            .into_iter()
            .chain([max_event + 1, max_delivery + 1])
            .max()
            .unwrap_or(1);
        let counts = fresh.shared.with_tx(|tx| {
            let mut counts = (0, 0, 0, 0);
            for (id, key, last) in &processors {
                tx.execute(
                    "INSERT OR IGNORE INTO processors (id, key, last_acked) VALUES (?1, ?2, ?3)",
                    params![id, key, last],
                )?;
            }
            tx.execute(
                "UPDATE meta SET value = max(value, ?1) WHERE key = 'next_event_id'",
                [next],
            )?;
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO events (id, mask, cookie, wd, path, name, src, origin, time_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for e in &events {
                insert.execute(params![e.0, e.1, e.2, e.3, e.4, e.5, e.6, e.7, e.8])?;
            }
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO deliveries (event, processor, state, attempts, error, requeued)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            )?;
            for d in &deliveries {
                if !have.contains(&d.0) {
                    if d.2 != ACKED {
                        counts.3 += 1;
                    }
                    continue;
                }
                insert.execute(params![d.0, d.1, d.2, d.3, d.4])?;
                match d.2 {
                    PENDING => counts.0 += 1,
                    DEAD => counts.1 += 1,
                    _ => counts.2 += 1,
                }
            }
            for (watch, saved) in &roots {
                tx.execute(
                    "INSERT OR IGNORE INTO snapshot_roots (watch, saved_ns) VALUES (?1, ?2)",
                    params![watch, saved],
                )?;
            }
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO snapshot (watch, path, inode, size, mtime_ns, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for s in &snapshot {
                insert.execute(params![s.0, s.1, s.2, s.3, s.4, s.5])?;
            }
            // Entries whose root row was lost still make a snapshot: a partial one yields
            // extra catch-up events, none would yield a silent first start.
            tx.execute(
                "INSERT OR IGNORE INTO snapshot_roots (watch, saved_ns)
                 SELECT DISTINCT watch, 0 FROM snapshot",
                [],
            )?;
            Ok(counts)
        })?;
        report.processors = processors.len();
        report.events = events.len();
        (report.pending, report.dead, report.acked, report.lost) = counts;
        report.snapshot_entries = snapshot.len();
        tracing::warn!(report = %report, "journal: recovered");
        Ok(report)
    }
}
