//! What `inotifier journal` does: summaries, listings, retry, purge and replay. These run in
//! the command's own process while the daemon writes; SQLite's busy timeout serializes them.

use std::ops::RangeInclusive;

use inotifier_core::Event;
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{Decoder, EVENT_COLUMNS};
use crate::error::{JournalError, Result};
use crate::journal::{Journal, ProcessorId};
use crate::schema::{ACKED, DEAD, PENDING};

/// The two states an entry can be listed, retried or purged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not yet acknowledged: delivered (again) by the daemon.
    Pending,
    /// Given up on after the retry limit; waits for `retry_dead` or `purge`.
    Dead,
}

impl State {
    fn code(self) -> i64 {
        match self {
            State::Pending => PENDING,
            State::Dead => DEAD,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Dead => "dead",
        }
    }
}

/// One processor's line in [`Journal::summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessorSummary {
    pub key: String,
    pub id: ProcessorId,
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending: Option<u64>,
    pub last_acked: Option<u64>,
}

/// One delivery listed by [`Journal::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub processor: String,
    pub event: Event,
    pub state: State,
    /// Attempts made before it was dead-lettered (0 for an event never dead-lettered).
    pub attempts: u32,
    /// The error of the last attempt, for a dead-lettered event.
    pub error: Option<String>,
}

/// SQLite integers are signed: an unbounded range ends at the largest.
fn bounds(ids: Option<&RangeInclusive<u64>>) -> (i64, i64) {
    match ids {
        Some(r) => (
            (*r.start()).min(i64::MAX as u64) as i64,
            (*r.end()).min(i64::MAX as u64) as i64,
        ),
        None => (0, i64::MAX),
    }
}

/// Each id as a range of its own; an id beyond SQLite's integers matches nothing.
fn singles(ids: &[u64]) -> Vec<(i64, i64)> {
    ids.iter()
        .filter_map(|&id| i64::try_from(id).ok())
        .map(|id| (id, id))
        .collect()
}

impl Journal {
    fn resolve(&self, conn: &Connection, key: &str) -> Result<u32> {
        let fail = |e| JournalError::sqlite(self.path(), e, crate::schema::errno(conn));
        let id: Option<u32> = conn
            .prepare_cached("SELECT id FROM processors WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |row| row.get(0)).optional())
            .map_err(fail)?;
        if let Some(id) = id {
            return Ok(id);
        }
        let known: Vec<String> = conn
            .prepare("SELECT key FROM processors ORDER BY key")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .map_err(fail)?;
        Err(JournalError::UnknownProcessor {
            path: self.path().to_path_buf(),
            key: key.to_owned(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        })
    }

    /// Runs `f` in one write transaction with `processor` resolved to its id.
    fn with_processor<T>(
        &self,
        processor: Option<&str>,
        f: impl FnOnce(&rusqlite::Transaction<'_>, Option<u32>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut resolved = Ok(None);
        let value = self.shared.with_tx(|tx| {
            if let Some(key) = processor {
                resolved = self.resolve(tx, key).map(Some);
            }
            match resolved {
                Ok(id) => f(tx, id).map(Some),
                Err(_) => Ok(None),
            }
        })?;
        match (resolved, value) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(value)) => Ok(value),
            (Ok(_), None) => unreachable!("a value whenever the processor resolved"),
        }
    }

    /// Per processor: pending and dead counts, the oldest pending id and the last
    /// acknowledged id.
    pub fn summary(&self) -> Result<Vec<ProcessorSummary>> {
        self.shared.with_conn(|conn| {
            let mut out: Vec<ProcessorSummary> = conn
                .prepare("SELECT id, key, last_acked FROM processors ORDER BY key")?
                .query_map([], |row| {
                    Ok(ProcessorSummary {
                        id: ProcessorId(row.get(0)?),
                        key: row.get(1)?,
                        last_acked: row.get::<_, Option<i64>>(2)?.map(|i| i as u64),
                        pending: 0,
                        dead: 0,
                        oldest_pending: None,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare(
                "SELECT processor, state, count(*), min(event) FROM deliveries
                 WHERE state < 2 GROUP BY processor, state",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id = ProcessorId(row.get(0)?);
                let state: i64 = row.get(1)?;
                let count: i64 = row.get(2)?;
                let oldest: i64 = row.get(3)?;
                if let Some(s) = out.iter_mut().find(|s| s.id == id) {
                    if state == PENDING {
                        s.pending = count as u64;
                        s.oldest_pending = Some(oldest as u64);
                    } else {
                        s.dead = count as u64;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Up to `limit` entries in `state`, of one processor or all, in id order.
    pub fn list(&self, processor: Option<&str>, state: State, limit: usize) -> Result<Vec<Entry>> {
        self.list_page(processor, state, 0, limit)
    }

    /// [`Journal::list`] after skipping the first `offset` entries: one page of a listing that
    /// shows the entries a page at a time (the admin page). Entries acknowledged or dead-lettered
    /// between two pages shift the later pages by as many.
    pub fn list_page(
        &self,
        processor: Option<&str>,
        state: State,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let clamp = |n: usize| n.min(i64::MAX as usize) as i64;
        self.with_processor(processor, |tx, id| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT p.key, d.attempts, d.error, {EVENT_COLUMNS}
                 FROM deliveries d JOIN events e ON e.id = d.event
                 JOIN processors p ON p.id = d.processor
                 WHERE d.state < 2 AND d.state = ?1 AND (?2 IS NULL OR d.processor = ?2)
                 ORDER BY d.event, d.processor LIMIT ?3 OFFSET ?4"
            ))?;
            let mut decoder = Decoder::default();
            stmt.query_map(
                params![state.code(), id, clamp(limit), clamp(offset)],
                |row| {
                    Ok(Entry {
                        processor: row.get(0)?,
                        attempts: row.get(1)?,
                        error: row.get(2)?,
                        event: decoder.event(row, 3)?,
                        state,
                    })
                },
            )?
            .collect()
        })
    }

    /// Makes dead-lettered events pending again (and hands them to a running daemon through
    /// [`Journal::take_requeued`]). Returns how many.
    pub fn retry_dead(
        &self,
        processor: Option<&str>,
        ids: Option<RangeInclusive<u64>>,
    ) -> Result<usize> {
        self.retry_ranges(processor, &[bounds(ids.as_ref())])
    }

    /// [`Journal::retry_dead`] for the events with these ids (those picked on the admin page);
    /// ids that are not dead letters (any more) are not counted.
    pub fn retry_dead_ids(&self, processor: Option<&str>, ids: &[u64]) -> Result<usize> {
        self.retry_ranges(processor, &singles(ids))
    }

    fn retry_ranges(&self, processor: Option<&str>, ranges: &[(i64, i64)]) -> Result<usize> {
        self.with_processor(processor, |tx, id| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE deliveries SET state = {PENDING}, requeued = 1
                 WHERE state < 2 AND state = {DEAD} AND (?1 IS NULL OR processor = ?1)
                 AND event BETWEEN ?2 AND ?3"
            ))?;
            let mut count = 0;
            for (lo, hi) in ranges {
                count += stmt.execute(params![id, lo, hi])?;
            }
            Ok(count)
        })
    }

    /// Deletes entries in `state` for good. Returns how many. A running daemon may still
    /// deliver pending events it already holds in memory; their acknowledgement then finds
    /// nothing to update, which is harmless.
    pub fn purge(
        &self,
        processor: Option<&str>,
        state: State,
        ids: Option<RangeInclusive<u64>>,
    ) -> Result<usize> {
        self.purge_ranges(processor, state, &[bounds(ids.as_ref())])
    }

    /// [`Journal::purge`] for the events with these ids (those picked on the admin page); ids
    /// not in `state` (any more) are not counted.
    pub fn purge_ids(&self, processor: Option<&str>, state: State, ids: &[u64]) -> Result<usize> {
        self.purge_ranges(processor, state, &singles(ids))
    }

    fn purge_ranges(
        &self,
        processor: Option<&str>,
        state: State,
        ranges: &[(i64, i64)],
    ) -> Result<usize> {
        self.with_processor(processor, |tx, id| {
            let mut delete = tx.prepare_cached(
                "DELETE FROM deliveries
                 WHERE state < 2 AND state = ?1 AND (?2 IS NULL OR processor = ?2)
                 AND event BETWEEN ?3 AND ?4
                 RETURNING event",
            )?;
            let mut events: Vec<i64> = Vec::new();
            for (lo, hi) in ranges {
                for event in
                    delete.query_map(params![state.code(), id, lo, hi], |row| row.get(0))?
                {
                    events.push(event?);
                }
            }
            // An event no processor refers to any more is of no use to anyone.
            let mut drop_event = tx.prepare_cached(
                "DELETE FROM events WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event = ?1)",
            )?;
            for event in &events {
                drop_event.execute([event])?;
            }
            Ok(events.len())
        })
    }

    /// Makes the retained, acknowledged events of `processor` with ids in `ids` pending again
    /// (handed to a running daemon through [`Journal::take_requeued`]). Returns how many: ids
    /// pruned already, or never routed to `processor`, are not counted.
    pub fn replay(&self, processor: &str, ids: RangeInclusive<u64>) -> Result<usize> {
        let (lo, hi) = bounds(Some(&ids));
        self.with_processor(Some(processor), |tx, id| {
            tx.prepare_cached(&format!(
                "UPDATE deliveries SET state = {PENDING}, requeued = 1
                 WHERE processor = ?1 AND state = {ACKED} AND event BETWEEN ?2 AND ?3"
            ))?
            .execute(params![id, lo, hi])
        })
    }
}
