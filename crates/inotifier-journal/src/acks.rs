//! Acknowledgements and dead letters: queued without blocking, committed in groups, and the
//! pruning of acknowledged events beyond the retention.

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{OptionalExtension, Transaction, params};

use crate::schema::ACKED;

/// One outcome reported by the daemon, waiting for the next group commit.
#[derive(Debug)]
pub(crate) enum Op {
    Ack {
        processor: u32,
        event: u64,
    },
    Dead {
        processor: u32,
        event: u64,
        attempts: u32,
        error: String,
    },
}

/// What pruning needs to know between passes.
#[derive(Default)]
pub(crate) struct Pruning {
    /// Events below this id were pruned already (0: not yet this session). An acknowledgement
    /// below it is a straggler (acked late, or replayed): its rows go at once rather than
    /// waiting for a pass that will never look that low again.
    pub(crate) floor: AtomicU64,
    /// Acknowledgements committed since the last pass.
    pub(crate) acked_since: AtomicU64,
}

/// Applies `ops`, in order, inside `tx`.
pub(crate) fn apply(tx: &Transaction<'_>, ops: &[Op], pruning: &Pruning) -> rusqlite::Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let floor = pruning.floor.load(Ordering::Relaxed);
    let mut ack = tx.prepare_cached(
        "UPDATE deliveries SET state = 2, requeued = 0 WHERE event = ?1 AND processor = ?2",
    )?;
    let mut dead = tx.prepare_cached(
        "UPDATE deliveries SET state = 1, attempts = ?3, error = ?4, requeued = 0
         WHERE event = ?1 AND processor = ?2",
    )?;
    // Highest acknowledged id per processor; a journal has a handful of processors.
    let mut last: Vec<(u32, u64)> = Vec::new();
    let mut stragglers: Vec<(u32, u64)> = Vec::new();
    let mut acked = 0u64;
    for op in ops {
        match *op {
            Op::Ack { processor, event } => {
                if event < floor {
                    stragglers.push((processor, event));
                } else {
                    ack.execute(params![event as i64, processor])?;
                }
                acked += 1;
                match last.iter_mut().find(|(p, _)| *p == processor) {
                    Some((_, max)) => *max = (*max).max(event),
                    None => last.push((processor, event)),
                }
            }
            Op::Dead {
                processor,
                event,
                attempts,
                ref error,
            } => {
                dead.execute(params![event as i64, processor, attempts, error])?;
            }
        }
    }
    if !stragglers.is_empty() {
        // Whatever its state: a processor that succeeded after all wins over a dead letter,
        // as in the update above.
        let mut drop_delivery =
            tx.prepare_cached("DELETE FROM deliveries WHERE event = ?1 AND processor = ?2")?;
        let mut drop_event = tx.prepare_cached(
            "DELETE FROM events WHERE id = ?1
             AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event = ?1)",
        )?;
        for (processor, event) in stragglers {
            drop_delivery.execute(params![event as i64, processor])?;
            drop_event.execute(params![event as i64])?;
        }
    }
    let mut set_last = tx.prepare_cached(
        "UPDATE processors SET last_acked = max(coalesce(last_acked, 0), ?2) WHERE id = ?1",
    )?;
    for (processor, event) in last {
        set_last.execute(params![processor, event as i64])?;
    }
    pruning.acked_since.fetch_add(acked, Ordering::Relaxed);
    Ok(())
}

/// Drops the acknowledged events older than the `retain` newest events. Events with a pending
/// or dead delivery stay, whatever their age. Returns the new floor, for the caller to store
/// once the transaction is committed.
pub(crate) fn prune(
    tx: &Transaction<'_>,
    retain: usize,
    pruning: &Pruning,
) -> rusqlite::Result<Option<u64>> {
    pruning.acked_since.store(0, Ordering::Relaxed);
    let cutoff: Option<i64> = tx
        .prepare_cached("SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1")?
        .query_row([retain as i64], |row| row.get(0))
        .optional()?;
    let Some(cutoff) = cutoff else {
        return Ok(None);
    };
    let floor = pruning.floor.load(Ordering::Relaxed) as i64;
    if cutoff < floor {
        return Ok(None);
    }
    tx.prepare_cached(&format!(
        "DELETE FROM deliveries WHERE event BETWEEN ?1 AND ?2 AND state = {ACKED}"
    ))?
    .execute([floor, cutoff])?;
    let pruned = tx
        .prepare_cached(
            "DELETE FROM events WHERE id BETWEEN ?1 AND ?2
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event = events.id)",
        )?
        .execute([floor, cutoff])?;
    tracing::debug!(
        pruned,
        below = cutoff + 1,
        "journal: pruned acknowledged events"
    );
    Ok(Some(cutoff as u64 + 1))
}
