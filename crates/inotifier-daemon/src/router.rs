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
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotifier_core::{Event, Mask, WatchId};
use inotifier_journal::{Journal, ProcessorId};
use inotifier_sinks::{BatchOutcome, ProcessError, Processor, RetryFailure, RetryPolicy};

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
    /// Where this route's deliveries are acknowledged; `None` without a journal.
    pub cursor: Option<Cursor>,
}

/// A processor's place in the journal: its events are acknowledged there once processed, and
/// dead-lettered once given up on.
#[derive(Clone)]
pub struct Cursor {
    pub journal: Arc<Journal>,
    pub processor: ProcessorId,
}

impl Route {
    fn acknowledge(&self, events: &[&Event]) {
        if let Some(cursor) = &self.cursor {
            for event in events {
                cursor.journal.ack(cursor.processor, event.id);
            }
        }
    }

    fn dead_letter(&self, event: &Event, failure: &RetryFailure) {
        if let Some(cursor) = &self.cursor {
            cursor.journal.dead_letter(
                cursor.processor,
                event.id,
                failure.attempts,
                &failure.error.message,
            );
        }
    }
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

/// Room in one worker's queue, counted in events: the dispatcher takes room before it queues a
/// chunk, the worker gives it back once the chunk is processed.
struct Room {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Room {
    fn new(capacity: usize) -> Room {
        Room {
            free: Mutex::new(capacity),
            freed: Condvar::new(),
        }
    }

    /// Takes room for up to `wanted` events; with `wait`, waits until there is room for one at
    /// least. Returns how many it took.
    fn take(&self, wanted: usize, wait: bool) -> usize {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while wait && *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        let taken = wanted.min(*free);
        *free -= taken;
        taken
    }

    fn give(&self, count: usize) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += count;
        self.freed.notify_all();
    }
}

struct Worker {
    queue: mpsc::Sender<Vec<Job>>,
    room: Arc<Room>,
}

pub struct Router {
    workers: Vec<Worker>,
    threads: Vec<JoinHandle<()>>,
    capacity: usize,
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
        let capacity = queue_capacity.max(1);
        let abandon = Arc::new(Abandon::default());
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for index in 0..workers.max(1) {
            let (queue, chunks) = mpsc::channel::<Vec<Job>>();
            let room = Arc::new(Room::new(capacity));
            let (abandon, stats, worker_room) = (abandon.clone(), stats.clone(), room.clone());
            let thread = std::thread::Builder::new()
                .name(format!("inotifier-worker-{index}"))
                .spawn(move || {
                    // Chunks that queued up while the worker was busy go into one batch (fewer,
                    // larger processor calls), up to half the queue, so that the dispatcher
                    // can fill the other half meanwhile.
                    let most = (capacity / 2).max(1);
                    while let Ok(mut batch) = chunks.recv() {
                        while batch.len() < most {
                            match chunks.try_recv() {
                                Ok(more) => batch.extend(more),
                                Err(_) => break,
                            }
                        }
                        for (route, events) in by_route(&batch) {
                            deliver(route, &events, &abandon, &stats);
                        }
                        worker_room.give(batch.len());
                    }
                })?;
            queues.push(Worker { queue, room });
            threads.push(thread);
        }
        Ok(Router {
            workers: queues,
            threads,
            capacity,
            hasher: foldhash::fast::RandomState::default(),
            abandon,
            stats,
        })
    }

    /// Waits for `duration` unless a stopping daemon's drain deadline passes first; returns
    /// whether it passed.
    pub fn pause(&self, duration: Duration) -> bool {
        self.abandon.sleep(duration)
    }

    /// A handle that makes the workers give up, for a stop whose deadline passed while the
    /// router was still being fed.
    pub fn abandoner(&self) -> Abandoner {
        Abandoner(self.abandon.clone())
    }

    /// Queues each event for its routes on the worker of its file, a chunk per worker (one
    /// wake-up per chunk, not per event), blocking while a worker's queue is full.
    pub fn dispatch(&self, events: Vec<(Event, Vec<Arc<Route>>)>) {
        let mut chunks: Vec<Vec<Job>> = (0..self.workers.len()).map(|_| Vec::new()).collect();
        for (event, routes) in events {
            if routes.is_empty() {
                continue;
            }
            let mut hasher = self.hasher.build_hasher();
            event.path.hash(&mut hasher);
            event.name.hash(&mut hasher);
            let worker = (hasher.finish() % self.workers.len() as u64) as usize;
            chunks[worker].push(Job {
                event: Arc::new(event),
                routes,
            });
            if chunks[worker].len() == self.capacity {
                self.send_all(&mut chunks);
            }
        }
        self.send_all(&mut chunks);
    }

    /// Hands each worker its chunk: first what fits in every queue now, then the rest as room
    /// frees up, so that one full queue does not keep the others idle.
    fn send_all(&self, chunks: &mut [Vec<Job>]) {
        for wait in [false, true] {
            for (worker, chunk) in self.workers.iter().zip(chunks.iter_mut()) {
                while !chunk.is_empty() {
                    let room = worker.room.take(chunk.len(), wait);
                    if room == 0 {
                        break;
                    }
                    let rest = chunk.split_off(room);
                    self.stats.seen(chunk.len());
                    // A worker only ends when its queue closes: the send cannot fail meanwhile.
                    let _ = worker.queue.send(std::mem::replace(chunk, rest));
                }
            }
        }
    }

    /// Lets the workers finish what is queued, until `deadline`; after it, pending retries and
    /// queued events are given up (and counted). Returns whether everything was delivered.
    pub fn drain(mut self, deadline: Instant) -> bool {
        self.workers.clear();
        let (done_tx, done_rx) = mpsc::channel();
        let threads = std::mem::take(&mut self.threads);
        let joiner = std::thread::spawn(move || {
            for thread in threads {
                let _ = thread.join();
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

/// The events of a chunk grouped by route, each group in the chunk's order: a processor gets
/// its events as one batch (one GIL acquisition for a Python processor, not one per event),
/// and the events of one file stay in order since they share a worker.
fn by_route(chunk: &[Job]) -> Vec<(&Route, Vec<&Event>)> {
    let mut groups: Vec<(&Arc<Route>, Vec<&Event>)> = Vec::new();
    for job in chunk {
        for route in &job.routes {
            match groups
                .iter_mut()
                .find(|(known, _)| Arc::ptr_eq(known, route))
            {
                Some((_, events)) => events.push(&job.event),
                None => groups.push((route, vec![&job.event])),
            }
        }
    }
    groups
        .into_iter()
        .map(|(route, events)| (&**route, events))
        .collect()
}

/// Runs a batch of events through one processor. An event that fails is retried per the
/// route's policy before the events after it are tried, so one file's events stay in order;
/// failures are logged with the event, inside a span naming the processor and the watch.
fn deliver(route: &Route, events: &[&Event], abandon: &Abandon, stats: &Stats) {
    let span = tracing::error_span!(
        "delivery",
        processor = %route.processor_name,
        watch = %route.path.display()
    );
    let _entered = span.enter();
    let processor = PanicGuard(&*route.processor);
    let mut rest = events;
    while !rest.is_empty() {
        if abandon.is_set() {
            stats.abandoned(rest.len());
            return;
        }
        stats.batch();
        let outcome = processor.process_batch(rest, &|| !abandon.is_set());
        let processed = outcome.processed.min(rest.len());
        stats.delivered(processed);
        route.acknowledge(&rest[..processed]);
        rest = &rest[processed..];
        let Some((event, after)) = rest.split_first() else {
            return;
        };
        let error = match outcome.failure {
            Some(error) => error,
            // Stopped because the daemon is out of time: the loop gives up on the rest.
            None if abandon.is_set() => continue,
            None if processed > 0 => continue,
            None => ProcessError::permanent("the processor returned without handling the event"),
        };
        retry(route, &processor, event, error, abandon, stats);
        rest = after;
    }
}

/// Retries an event whose first attempt failed with `error`.
fn retry(
    route: &Route,
    processor: &dyn Processor,
    event: &Event,
    error: ProcessError,
    abandon: &Abandon,
    stats: &Stats,
) {
    let mut abandoned = false;
    let outcome = route.retry.retry_failed(processor, event, error, |delay| {
        abandoned = abandon.sleep(delay);
        if !abandoned {
            stats.retried();
        }
        !abandoned
    });
    match outcome {
        Ok(_) => {
            stats.delivered(1);
            route.acknowledge(&[event]);
        }
        Err(_) if abandoned => {
            // Not acknowledged: with a journal, the next start delivers it again.
            tracing::warn!(
                event.id = event.id,
                "the daemon is stopping and its drain deadline passed: retries given up"
            );
            stats.abandoned(1);
        }
        Err(failure) => {
            stats.failed();
            route.dead_letter(event, &failure);
        }
    }
}

/// A processor that panics has failed on this event, not killed the worker: the panic becomes
/// a permanent failure.
struct PanicGuard<'a>(&'a dyn Processor);

impl Processor for PanicGuard<'_> {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.0.process(event)))
            .unwrap_or_else(|panic| Err(panicked(panic)))
    }

    /// A panic leaves unknown how far the batch got: the first event fails, and the rest are
    /// tried again (at least once, possibly twice).
    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn() -> bool) -> BatchOutcome {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.0.process_batch(events, go_on)))
            .unwrap_or_else(|panic| BatchOutcome::failed(0, panicked(panic)))
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> ProcessError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    ProcessError::permanent(format!("processor panicked: {what}"))
}
