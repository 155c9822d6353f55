//! What the broker tests share.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use inotifier_core::{Event, Mask, Origin, WatchId};
use inotifier_sinks::Processor;
use inotifier_test_support::servers::ServerProcess;

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
    deliver(processor, events, batch, deadline, None)
}

/// As [`deliver_all`], with a fault the test injects part way: delivery holds before event
/// `fault.hold_at` until the fault is in place, so the stream can never end before it, however
/// fast this machine is.
pub fn deliver_all_through(
    processor: &dyn Processor,
    events: &[Event],
    batch: usize,
    deadline: Duration,
    fault: &MidStreamFault,
) -> usize {
    deliver(processor, events, batch, deadline, Some(fault))
}

fn deliver(
    processor: &dyn Processor,
    events: &[Event],
    batch: usize,
    deadline: Duration,
    fault: Option<&MidStreamFault>,
) -> usize {
    let until = Instant::now() + deadline;
    let (mut done, mut outages) = (0, 0);
    while done < events.len() {
        assert!(
            Instant::now() < until,
            "{done} of {} delivered in {deadline:?}",
            events.len()
        );
        let mut end = (done + batch).min(events.len());
        if let Some(fault) = fault {
            if done >= fault.hold_at {
                fault.wait_injected(until);
            } else {
                end = end.min(fault.hold_at);
            }
        }
        let refs: Vec<&Event> = events[done..end].iter().collect();
        let outcome = processor.process_batch(&refs, &|_| true);
        done += outcome.processed;
        match outcome.failure {
            Some(failure) => {
                assert!(failure.outage, "only outages: {failure:?}");
                outages += 1;
                if let Some(fault) = fault {
                    fault.outages.fetch_add(1, Ordering::SeqCst);
                }
                // The daemon's retry delay, shortened.
                std::thread::sleep(Duration::from_millis(50));
            }
            // Batches as a live stream of events brings them, not all at once.
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    outages
}

/// A fault (a server stopped, a master killed) that a test injects while
/// [`deliver_all_through`] runs on another thread.
pub struct MidStreamFault {
    hold_at: usize,
    injected: (Mutex<bool>, Condvar),
    outages: AtomicUsize,
}

impl MidStreamFault {
    /// Delivery will not go past event `hold_at` before [`MidStreamFault::injected`].
    pub fn holding_at(hold_at: usize) -> MidStreamFault {
        MidStreamFault {
            hold_at,
            injected: (Mutex::new(false), Condvar::new()),
            outages: AtomicUsize::new(0),
        }
    }

    /// The fault is in place: delivery may go on.
    pub fn injected(&self) {
        *self.injected.0.lock().unwrap() = true;
        self.injected.1.notify_all();
    }

    fn wait_injected(&self, until: Instant) {
        let mut injected = self.injected.0.lock().unwrap();
        while !*injected {
            let left = until.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the fault was never injected");
            injected = self.injected.1.wait_timeout(injected, left).unwrap().0;
        }
    }

    /// The fault of a server restarted mid-stream: `server` stopped, delivery let go on until
    /// it meets the outage, then the server started again.
    pub fn restart(&self, server: &mut ServerProcess) {
        server.stop();
        self.injected();
        self.wait_for_an_outage(Duration::from_secs(20));
        server.start_again();
    }

    /// Returns once delivery has met an outage since the fault: the fault was seen.
    pub fn wait_for_an_outage(&self, timeout: Duration) {
        let until = Instant::now() + timeout;
        while self.outages.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < until,
                "no outage within {timeout:?} of the fault"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
