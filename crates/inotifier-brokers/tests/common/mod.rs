//! What the broker tests share.

use std::time::{Duration, Instant};

use inotifier_core::Event;
use inotifier_sinks::Processor;

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
