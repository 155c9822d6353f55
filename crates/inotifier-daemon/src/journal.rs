//! Appending routed events to the journal before they are delivered, and what the daemon does
//! while the journal cannot be written.
//!
//! An event reaches the workers only once it is on disk, so a crash redelivers it. When the
//! journal cannot be written (disk full, read-only, damaged), reading stops instead: events
//! wait in the kernel's queue, and past its limit the kernel drops them and the overflow
//! rescan finds the changes again once the journal works. Nothing is dropped silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inotifier_core::Event;
use inotifier_journal::{JournalError, ProcessorId};

use crate::health::Health;
use crate::router::{Route, Router};

/// The journal's condition in [`Health`].
pub(crate) const HEALTH_KEY: &str = "journal:append";

/// What `status` says of a journal that cannot be written.
fn what_is_wrong(error: &JournalError) -> String {
    let what = match error {
        JournalError::Full { .. } => "journal disk full",
        JournalError::ReadOnly { .. } => "journal not writable",
        JournalError::Busy { .. } => "journal locked by another process",
        JournalError::Corrupt { .. } => "journal damaged",
        _ => "journal cannot be written",
    };
    format!("{what} ({})", error.path().display())
}

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// How often a failure that goes on is logged again.
const REPEAT_LOG: Duration = Duration::from_secs(30);

/// What became of a batch handed to [`append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// On disk (or no route of it has a journal): deliver it.
    Journaled,
    /// Not in the journal but to be delivered all the same: a processor that fell behind
    /// must get these queued, not read back from the journal.
    Unjournaled,
    /// Not to be delivered: the daemon is stopping, its drain deadline passed, and the journal
    /// still fails (the next start's catch-up reports those changes).
    Dropped,
}

/// Appends `routed` to the journal of its routes, retrying until it works.
pub fn append(routed: &[(Event, Vec<Arc<Route>>)], router: &Router, health: &Health) -> Appended {
    let Some(journal) = routed
        .iter()
        .flat_map(|(_, routes)| routes)
        .find_map(|route| route.cursor.as_ref().map(|cursor| cursor.journal.clone()))
    else {
        return Appended::Journaled;
    };
    let processors: Vec<Vec<ProcessorId>> = routed
        .iter()
        .map(|(_, routes)| {
            routes
                .iter()
                .filter_map(|route| route.cursor.as_ref().map(|cursor| cursor.processor))
                .collect()
        })
        .collect();
    let batch: Vec<(&Event, &[ProcessorId])> = routed
        .iter()
        .zip(&processors)
        .map(|((event, _), processors)| (event, processors.as_slice()))
        .collect();
    let mut delay = FIRST_DELAY;
    let mut failing_since: Option<Instant> = None;
    let mut last_log = Instant::now();
    loop {
        let error = match journal.append(&batch) {
            Ok(()) => {
                health.clear(HEALTH_KEY);
                if let Some(since) = failing_since {
                    tracing::info!(
                        "the journal {} is writable again after {:.1?}; reading goes on",
                        journal.path().display(),
                        since.elapsed()
                    );
                }
                return Appended::Journaled;
            }
            Err(error) => error,
        };
        if let JournalError::DuplicateId { .. } = error {
            // Ids come from the journal's own counter: a duplicate is a bug, and retrying
            // could not fix it. Deliver rather than stop for good.
            tracing::error!("{error}; these events are delivered without being journaled");
            return Appended::Unjournaled;
        }
        if failing_since.is_none() || last_log.elapsed() >= REPEAT_LOG {
            let what = if error.is_transient() {
                "free space or make it writable"
            } else {
                "stop the daemon and repair it as the error says"
            };
            tracing::error!(
                "{error}. Reading stops until the journal can be written ({what}): events wait \
                 in the kernel's queue, and past its limit the rescan after the overflow finds \
                 the changes again"
            );
            last_log = Instant::now();
        }
        health.set(
            HEALTH_KEY,
            format!("reading paused: {}", what_is_wrong(&error)),
        );
        if let JournalError::Full { .. } = error {
            // Whatever the WAL holds beyond the journal file is space to win back; it fails
            // as well when even the checkpoint finds no room, and is tried again next time.
            let _ = journal.shrink_wal();
        }
        failing_since.get_or_insert_with(Instant::now);
        if router.pause(delay) {
            tracing::error!(
                "stopping: {} event(s) neither journaled nor delivered; the next start's \
                 catch-up reports their changes",
                routed.len()
            );
            return Appended::Dropped;
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}
