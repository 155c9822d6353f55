//! Hands each event to the processors of the watches it matched, on a bounded pool of worker
//! threads.
//!
//! Events are sharded by pathname: one file's events always go to the same worker, so they are
//! processed in order, while different files are processed concurrently. Each worker has a
//! bounded queue; when a processor is slow its queue fills and [`Router::dispatch`] blocks, which
//! holds back the reader and, past the kernel's queue, turns into an overflow and a rescan:
//! memory stays bounded whatever the processors do.

use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotifier_core::{Event, Mask, WatchId};
use inotifier_sinks::{ProcessError, Processor, RetryPolicy};

use crate::stats::Stats;

/// Where one watch's events go.
pub struct Route {
    pub watch: WatchId,
    /// The watched path, for messages.
    pub path: PathBuf,
    /// The processor's name, for messages.
    pub processor_name: String,
    pub processor: Arc<dyn Processor>,
    pub events: Mask,
    pub retry: RetryPolicy,
}

impl Drop for Route {
    /// The last job holding a route has run: the processor will get no more events.
    fn drop(&mut self) {
        self.processor.close();
    }
}

struct Job {
    event: Arc<Event>,
    routes: Vec<Arc<Route>>,
}

/// Lets a stopping daemon give up on retries and queued events once its drain deadline passed.
#[derive(Default)]
struct Abandon {
    flag: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Abandon {
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration` unless abandoned first; returns whether it was abandoned.
    fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.is_set() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .wake
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// See [`Router::abandoner`].
#[derive(Clone)]
pub struct Abandoner(Arc<Abandon>);

impl Abandoner {
    pub fn abandon(&self) {
        self.0.set();
    }
}

pub struct Router {
    queues: Vec<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    hasher: foldhash::fast::RandomState,
    abandon: Arc<Abandon>,
    stats: Arc<Stats>,
}

impl Router {
    /// Starts `workers` threads, each with room for `queue_capacity` waiting events.
    pub fn new(
        workers: usize,
        queue_capacity: usize,
        stats: Arc<Stats>,
    ) -> std::io::Result<Router> {
        let abandon = Arc::new(Abandon::default());
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        for index in 0..workers.max(1) {
            let (sender, receiver) = mpsc::sync_channel::<Job>(queue_capacity.max(1));
            let abandon = abandon.clone();
            let stats = stats.clone();
            let handle = std::thread::Builder::new()
                .name(format!("inotifier-worker-{index}"))
                .spawn(move || {
                    for job in receiver {
                        if abandon.is_set() {
                            stats.abandoned(job.routes.len());
                            continue;
                        }
                        for route in &job.routes {
                            deliver(route, &job.event, &abandon, &stats);
                        }
                    }
                })?;
            queues.push(sender);
            handles.push(handle);
        }
        Ok(Router {
            queues,
            workers: handles,
            hasher: foldhash::fast::RandomState::default(),
            abandon,
            stats,
        })
    }

    /// A handle that makes the workers give up, for a stop whose deadline passed while the
    /// router was still being fed.
    pub fn abandoner(&self) -> Abandoner {
        Abandoner(self.abandon.clone())
    }

    /// Queues `event` for `routes`, blocking while the file's worker is full.
    pub fn dispatch(&self, event: Event, routes: Vec<Arc<Route>>) {
        if routes.is_empty() {
            return;
        }
        let mut hasher = self.hasher.build_hasher();
        event.path.hash(&mut hasher);
        event.name.hash(&mut hasher);
        let worker = (hasher.finish() % self.queues.len() as u64) as usize;
        let job = Job {
            event: Arc::new(event),
            routes,
        };
        // A worker only ends when its queue closes, so the send cannot fail while we hold it.
        let _ = self.queues[worker].send(job);
    }

    /// Lets the workers finish what is queued, until `deadline`; after it, pending retries and
    /// queued events are given up (and counted). Returns whether everything was delivered.
    pub fn drain(mut self, deadline: Instant) -> bool {
        self.queues.clear();
        let (done_tx, done_rx) = mpsc::channel();
        let workers = std::mem::take(&mut self.workers);
        let joiner = std::thread::spawn(move || {
            for worker in workers {
                let _ = worker.join();
            }
            let _ = done_tx.send(());
        });
        let timeout = deadline.saturating_duration_since(Instant::now());
        let finished = done_rx.recv_timeout(timeout).is_ok();
        if !finished {
            self.abandon.set();
            let _ = done_rx.recv();
        }
        let _ = joiner.join();
        finished && self.stats.snapshot().abandoned == 0
    }
}

/// Runs one event through one processor, retrying per the route's policy; failures are logged
/// with the event, inside a span naming the processor and the watch.
fn deliver(route: &Route, event: &Event, abandon: &Abandon, stats: &Stats) {
    let span = tracing::error_span!(
        "delivery",
        processor = %route.processor_name,
        watch = %route.path.display()
    );
    let _entered = span.enter();
    let mut abandoned = false;
    let outcome = route
        .retry
        .run(&PanicGuard(&*route.processor), event, |delay| {
            abandoned = abandon.sleep(delay);
            if !abandoned {
                stats.retried();
            }
            !abandoned
        });
    match outcome {
        Ok(_) => stats.delivered(),
        Err(_) if abandoned => {
            tracing::warn!(
                event.id = event.id,
                "the daemon is stopping and its drain deadline passed: retries given up"
            );
            stats.abandoned(1);
        }
        Err(_) => stats.failed(),
    }
}

/// A processor that panics has failed on this event, not killed the worker: the panic becomes
/// a permanent failure.
struct PanicGuard<'a>(&'a dyn Processor);

impl Processor for PanicGuard<'_> {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.0.process(event))).unwrap_or_else(
            |panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(ProcessError::permanent(format!(
                    "processor panicked: {what}"
                )))
            },
        )
    }
}
