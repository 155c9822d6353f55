//! What the broker tests share.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotifier_core::{Event, Mask, Origin, WatchId};
use inotifier_sinks::Processor;

/// `count` events, ids 1 to `count`, each a file `f<id>` of `/srv/in` written and closed.
pub fn events(count: u64) -> Vec<Event> {
    (1..=count)
        .map(|id| Event {
            id,
            mask: Mask::IN_CLOSE_WRITE,
            cookie: 0,
            wd: 1,
            path: Arc::from(Path::new("/srv/in")),
            name: OsString::from(format!("f{id}")),
            src_pathname: None,
            origin: Origin::Kernel,
            time_ns: 1_764_077_825_000_000_000,
            watches: Arc::from([WatchId(0)]),
        })
        .collect()
}

/// Delivers `events` as the daemon does: batch after batch, each retried from its first
/// unprocessed event after an outage, until all are processed or `deadline` passes. Returns
/// how many outages it met; any other failure fails the test.
pub fn deliver_all(
    processor: &dyn Processor,
    events: &[Event],
    batch: usize,
    deadline: Duration,
) -> usize {
    let until = Instant::now() + deadline;
    let (mut done, mut outages) = (0, 0);
    while done < events.len() {
        assert!(
            Instant::now() < until,
            "{done} of {} delivered in {deadline:?}",
            events.len()
        );
        let end = (done + batch).min(events.len());
        let refs: Vec<&Event> = events[done..end].iter().collect();
        let outcome = processor.process_batch(&refs, &|_| true);
        done += outcome.processed;
        match outcome.failure {
            Some(failure) => {
                assert!(failure.outage, "only outages: {failure:?}");
                outages += 1;
                // The daemon's retry delay, shortened.
                std::thread::sleep(Duration::from_millis(50));
            }
            // Batches as a live stream of events brings them, not all at once.
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    outages
}
