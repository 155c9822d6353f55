//! What the metrics read when a scrape comes, beyond the counters the daemon keeps: the
//! journal's backlog (on a read-only connection of the metrics thread's own) and the kernel's
//! watch limit.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use inotifier_journal::BacklogReader;
use inotifier_metrics::{Backlog, Metrics};

const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

/// The kernel's limit of inotify watches per user, when it can be read.
pub fn watch_limit() -> Option<u64> {
    std::fs::read_to_string(MAX_USER_WATCHES)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as i64)
}

/// Sets the backlog gauges from the journal at `journal` (none without a journal) before each
/// scrape. The connection is opened at the first scrape (the journal exists by then) and again
/// after an error; an error leaves the last figures and is logged once until it clears.
pub fn refresh(journal: Option<PathBuf>) -> Box<dyn Fn(&Metrics) + Send> {
    let reader: RefCell<Option<BacklogReader>> = RefCell::new(None);
    let failing = std::cell::Cell::new(false);
    Box::new(move |metrics| {
        let Some(path) = &journal else { return };
        let mut reader = reader.borrow_mut();
        let read = match reader.as_ref() {
            Some(opened) => opened.read(),
            None => BacklogReader::open(path).and_then(|opened| {
                let rows = opened.read();
                *reader = Some(opened);
                rows
            }),
        };
        match read {
            Ok(rows) => {
                failing.set(false);
                let now = now_ns();
                let rows: Vec<Backlog> = rows
                    .into_iter()
                    .map(|row| Backlog {
                        oldest_pending_age: row.oldest_pending_age(now),
                        watch: row.key,
                        pending: row.pending,
                        dead: row.dead,
                    })
                    .collect();
                metrics.set_backlog(&rows);
            }
            Err(error) => {
                *reader = None;
                if !failing.replace(true) {
                    tracing::warn!(
                        "metrics: cannot read the journal's backlog ({error}): the pending and \
                         dead-letter gauges keep their last values"
                    );
                }
            }
        }
    })
}
