//! The snapshot of each watched tree that catch-up diffs against the disk after downtime.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, Transaction, params};

use crate::error::Result;
use crate::journal::Journal;

pub use inotifier_core::snapshot::{EntryKind, SnapshotChange, SnapshotEntry};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn mark_saved(tx: &Transaction<'_>, watch_key: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO snapshot_roots (watch, saved_ns) VALUES (?1, ?2)")?
        .execute(params![watch_key, now_ns()])?;
    Ok(())
}

fn upsert(tx: &Transaction<'_>, watch_key: &str, entry: &SnapshotEntry) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO snapshot (watch, path, inode, size, mtime_ns, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        watch_key,
        entry.path,
        entry.inode as i64,
        entry.size as i64,
        entry.mtime_ns,
        entry.kind.as_u8()
    ])?;
    Ok(())
}

impl Journal {
    /// Applies `changes` to the snapshot of `watch_key` in one transaction, and records that
    /// this watch has a snapshot (so an empty `changes` marks an empty tree as saved).
    pub fn save_snapshot(&self, watch_key: &str, changes: &[SnapshotChange]) -> Result<()> {
        self.shared.with_tx(|tx| {
            mark_saved(tx, watch_key)?;
            for change in changes {
                match change {
                    SnapshotChange::Upsert(entry) => upsert(tx, watch_key, entry)?,
                    SnapshotChange::Remove(path) => {
                        tx.prepare_cached("DELETE FROM snapshot WHERE watch = ?1 AND path = ?2")?
                            .execute(params![watch_key, path])?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Replaces the whole snapshot of `watch_key` with `entries`: the first start's full scan.
    pub fn replace_snapshot(&self, watch_key: &str, entries: &[SnapshotEntry]) -> Result<()> {
        self.shared.with_tx(|tx| {
            tx.prepare_cached("DELETE FROM snapshot WHERE watch = ?1")?
                .execute([watch_key])?;
            mark_saved(tx, watch_key)?;
            for entry in entries {
                upsert(tx, watch_key, entry)?;
            }
            Ok(())
        })
    }

    /// The snapshot of `watch_key`, sorted by path; `None` if none was ever saved (a first
    /// start, which records a snapshot and emits nothing).
    /// When the snapshot of `watch_key` was last saved (ns since the Unix epoch), if ever.
    pub fn snapshot_saved_ns(&self, watch_key: &str) -> Result<Option<i64>> {
        self.shared.with_conn(|conn| {
            conn.prepare_cached("SELECT saved_ns FROM snapshot_roots WHERE watch = ?1")?
                .query_row([watch_key], |row| row.get(0))
                .optional()
        })
    }

    pub fn load_snapshot(&self, watch_key: &str) -> Result<Option<Vec<SnapshotEntry>>> {
        self.shared.with_conn(|conn| {
            let saved: Option<i64> = conn
                .prepare_cached("SELECT saved_ns FROM snapshot_roots WHERE watch = ?1")?
                .query_row([watch_key], |row| row.get(0))
                .optional()?;
            if saved.is_none() {
                return Ok(None);
            }
            let entries = conn
                .prepare_cached(
                    "SELECT path, inode, size, mtime_ns, kind FROM snapshot
                     WHERE watch = ?1 ORDER BY path",
                )?
                .query_map([watch_key], |row| {
                    Ok(SnapshotEntry {
                        path: row.get(0)?,
                        inode: row.get::<_, i64>(1)? as u64,
                        size: row.get::<_, i64>(2)? as u64,
                        mtime_ns: row.get(3)?,
                        kind: EntryKind::from_u8(row.get(4)?).unwrap_or(EntryKind::Other),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(entries))
        })
    }
}
