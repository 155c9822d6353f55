//! Hands each event to the processors of the watches it matched.
//!
//! Every route (a watch's processor) has a lane of its own: its own worker threads, each with a
//! bounded queue. A processor that is down, retrying or slow fills only its own lane; the other
//! processors, and the other watches, go on at their own speed. Within a lane, events are
//! sharded by pathname: one file's events always go to the same worker, so they are processed
//! in order, while different files are processed concurrently.
//!
//! What happens when a lane's queues are full depends on the journal:
//! - With a journal (the default), the lane falls behind: the events it cannot take now are on
//!   disk already (they are appended before they are routed) and stay pending there. The lane's
//!   feeder thread reads them back, page by page and in id order, as its workers free room,
//!   until it has caught up; then the lane takes events live again. Reading never waits for a
//!   processor, and what one processor is owed is bounded by the journal's disk, not memory.
//! - Without a journal, there is nowhere else to keep them: [`Router::dispatch`] waits for
//!   room, which holds back the reader for every watch and, past the kernel's queue, turns into
//!   an overflow and a rescan. Memory stays bounded, at the cost of isolation; the log says so.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotifier_core::progress::{Progress, Task};
use inotifier_core::{Event, Mask, WatchId};
use inotifier_journal::{Journal, ProcessorId};
use inotifier_sinks::{BatchOutcome, ProcessError, Processor, RetryFailure, RetryPolicy};

use crate::health::Health;
use crate::stats::Stats;
use inotifier_metrics::WatchMetrics;

/// How long a feeder waits before it reads the journal again after a read failed.
const FEEDER_RETRY: Duration = Duration::from_secs(1);

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
    /// The watch's series (events, deliveries, timings).
    pub metrics: WatchMetrics,
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
    /// The last worker holding a route has ended: the processor will get no more events.
    fn drop(&mut self) {
        self.processor.close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
        let _guard = lock(&self.lock);
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration` unless abandoned first; returns whether it was abandoned.
    fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut guard = lock(&self.lock);
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

/// Room in one worker's queue, counted in events: a chunk takes room before it is queued, the
/// worker gives it back once the chunk is processed.
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

    /// Takes room for up to `wanted` events, without waiting. Returns how many it took.
    fn take_now(&self, wanted: usize) -> usize {
        let mut free = lock(&self.free);
        let taken = wanted.min(*free);
        *free -= taken;
        taken
    }

    /// Takes room for at least one and up to `wanted` events, waiting while there is none;
    /// returns 0 only once `give_up()` says so (checked at least every 100 ms).
    fn take_waiting(&self, wanted: usize, give_up: &dyn Fn() -> bool) -> usize {
        let mut free = lock(&self.free);
        while *free == 0 {
            if give_up() {
                return 0;
            }
            free = self
                .freed
                .wait_timeout(free, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let taken = wanted.min(*free);
        *free -= taken;
        taken
    }

    fn give(&self, count: usize) {
        if count == 0 {
            return;
        }
        *lock(&self.free) += count;
        self.freed.notify_all();
    }
}

struct WorkerQueue {
    chunks: mpsc::Sender<Vec<Arc<Event>>>,
    room: Arc<Room>,
}

/// Whether a lane takes events as they come, or is catching up from the journal.
struct LaneState {
    /// Behind: the journal holds this lane's events from this id on; the feeder hands them
    /// over, and events routed meanwhile stay in the journal for it.
    behind_from: Option<u64>,
    /// Events `inotifier journal retry` or `replay` put back, for the feeder to queue (it may
    /// wait for room; the thread that found them may not).
    requeued: Vec<Arc<Event>>,
    /// When it fell behind, for the log line once it caught up.
    behind_since: Option<Instant>,
    /// Whether the no-journal warning was logged since the lane last had room.
    warned_full: bool,
}

/// One route's workers and queues.
struct Lane {
    route: Arc<Route>,
    queues: Vec<WorkerQueue>,
    state: Mutex<LaneState>,
    /// Wakes the feeder when the lane falls behind or closes.
    wake: Condvar,
    closed: AtomicBool,
    capacity: usize,
    hasher: foldhash::fast::RandomState,
    stats: Arc<Stats>,
    health: Arc<Health>,
}

impl Lane {
    fn worker_of(&self, event: &Event) -> usize {
        let mut hasher = self.hasher.build_hasher();
        event.path.hash(&mut hasher);
        event.name.hash(&mut hasher);
        (hasher.finish() % self.queues.len() as u64) as usize
    }

    /// Splits `events` into one chunk per worker, each in the order given.
    fn shard(&self, events: Vec<Arc<Event>>) -> Vec<Vec<Arc<Event>>> {
        let mut chunks: Vec<Vec<Arc<Event>>> = (0..self.queues.len()).map(|_| Vec::new()).collect();
        for event in events {
            chunks[self.worker_of(&event)].push(event);
        }
        chunks
    }

    fn send(&self, worker: usize, chunk: Vec<Arc<Event>>) {
        if chunk.is_empty() {
            return;
        }
        self.stats.seen(chunk.len());
        // A worker only ends once its queue closes, after the lane is gone.
        let _ = self.queues[worker].chunks.send(chunk);
    }

    /// Queues `events`, waiting for room as the workers free it. Returns false when it gave
    /// up because the lane closed or the daemon ran out of drain time (the rest not queued).
    fn send_waiting(&self, events: Vec<Arc<Event>>, abandon: &Abandon) -> bool {
        let give_up = || self.closed.load(Ordering::SeqCst) || abandon.is_set();
        for (worker, mut chunk) in self.shard(events).into_iter().enumerate() {
            while !chunk.is_empty() {
                let room = self.queues[worker].room.take_waiting(chunk.len(), &give_up);
                if room == 0 {
                    return false;
                }
                let rest = chunk.split_off(room);
                self.send(worker, std::mem::replace(&mut chunk, rest));
            }
        }
        true
    }

    /// Queues what fits of `events` (in id order) now. With a journal, the lane falls behind
    /// from the first event that does not fit; without one, the rest waits for room.
    fn offer(&self, events: Vec<Arc<Event>>, abandon: &Abandon) {
        let mut state = lock(&self.state);
        if state.behind_from.is_some() {
            // The journal holds them: the feeder reads them after what it owes already.
            return;
        }
        let mut chunks = self.shard(events);
        let taken: Vec<usize> = chunks
            .iter()
            .zip(&self.queues)
            .map(|(chunk, queue)| queue.room.take_now(chunk.len()))
            .collect();
        // The first event, in id order, that found no room.
        let cut = chunks
            .iter()
            .zip(&taken)
            .filter_map(|(chunk, &taken)| chunk.get(taken).map(|event| event.id))
            .min();
        let Some(cut) = cut else {
            state.warned_full = false;
            drop(state);
            for (worker, chunk) in chunks.into_iter().enumerate() {
                self.send(worker, chunk);
            }
            return;
        };
        if self.route.cursor.is_some() {
            // Everything from `cut` on waits in the journal, also what found room: a lane's
            // events reach its workers in id order.
            for (worker, (chunk, taken)) in chunks.iter_mut().zip(taken).enumerate() {
                let keep = chunk.partition_point(|event| event.id < cut);
                chunk.truncate(keep);
                self.queues[worker].room.give(taken - keep);
                self.send(worker, std::mem::take(chunk));
            }
            state.behind_from = Some(cut);
            state.behind_since = Some(Instant::now());
            self.stats.fell_behind();
            self.wake.notify_all();
            tracing::warn!(
                "processor {} of {} is not keeping up: its queue of {} event(s) per worker is \
                 full. Its events from id {cut} on wait in the journal and reach it in order as \
                 it catches up; other watches are not held up",
                self.route.processor_name,
                self.route.path.display(),
                self.capacity
            );
            return;
        }
        if !state.warned_full {
            state.warned_full = true;
            tracing::warn!(
                "processor {} of {} is not keeping up and there is no journal to hold its \
                 events: reading waits for it, for every watch (enable [journal] to let one \
                 processor fall behind alone)",
                self.route.processor_name,
                self.route.path.display()
            );
        }
        drop(state);
        let mut rest = Vec::new();
        for (worker, (mut chunk, taken)) in chunks.into_iter().zip(taken).enumerate() {
            let waiting = chunk.split_off(taken);
            self.send(worker, chunk);
            rest.extend(waiting);
        }
        rest.sort_by_key(|event| event.id);
        let key = format!("{READING_HEALTH_PREFIX}{}", self.route.watch.0);
        self.health.set(
            key.as_str(),
            format!(
                "reading paused: processor {} of {} is not keeping up (its queue is full, and \
                 there is no journal to hold its events)",
                self.route.processor_name,
                self.route.path.display()
            ),
        );
        self.send_waiting(rest, abandon);
        self.health.clear(&key);
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _state = lock(&self.state);
        self.wake.notify_all();
    }
}

/// Reads what a lane that fell behind is owed from the journal and queues it, page by page,
/// until none is left; then the lane takes events live again.
fn feed(lane: Arc<Lane>, page: usize, abandon: Arc<Abandon>, health: &Health) {
    let Some(cursor) = lane.route.cursor.clone() else {
        return;
    };
    let health_key = format!("{JOURNAL_READ_HEALTH_PREFIX}{}", cursor.processor.get());
    let mut delivered_since_behind = 0usize;
    let mut failing = false;
    // From the first page read while behind to the switch back to live events.
    let mut progress: Option<Progress> = None;
    loop {
        let (from, requeued) = {
            let mut state = lock(&lane.state);
            loop {
                if lane.closed.load(Ordering::SeqCst) {
                    return;
                }
                if state.behind_from.is_some() || !state.requeued.is_empty() {
                    break (state.behind_from, std::mem::take(&mut state.requeued));
                }
                state = lane.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        // Put back by an admin command: older than anything the lane has queued, so their
        // order relative to it is moot; queued as they are.
        if !requeued.is_empty() && !lane.send_waiting(requeued, &abandon) {
            return;
        }
        let Some(from) = from else {
            continue;
        };
        let events = match cursor.journal.pending_from(cursor.processor, from, page) {
            Ok(events) => {
                if failing {
                    health.clear(&health_key);
                    tracing::info!(
                        "the journal can be read again for {} of {}",
                        lane.route.processor_name,
                        lane.route.path.display()
                    );
                }
                failing = false;
                events
            }
            Err(error) => {
                if !failing {
                    tracing::error!(
                        "cannot read what the journal owes {} of {} ({error}); trying again \
                         every second",
                        lane.route.processor_name,
                        lane.route.path.display()
                    );
                    let owed = cursor
                        .journal
                        .pending_count(cursor.processor)
                        .map_or(String::new(), |count| format!("{count} event(s) "));
                    health.set(
                        health_key.as_str(),
                        format!(
                            "journal unreadable: {owed}owed to {} of {} could not be read; stop \
                             the daemon and run `inotifier journal recover --journal {}`",
                            lane.route.processor_name,
                            lane.route.path.display(),
                            cursor.journal.path().display()
                        ),
                    );
                }
                failing = true;
                let state = lock(&lane.state);
                let _ = lane.wake.wait_timeout(state, FEEDER_RETRY);
                continue;
            }
        };
        if let Some(last) = events.last() {
            let next = last.id + 1;
            let count = events.len();
            let progress = progress.get_or_insert_with(|| {
                let owed = cursor.journal.pending_count(cursor.processor).ok();
                Progress::new(
                    Task::Replay,
                    format!(
                        "{} of {}",
                        lane.route.processor_name,
                        lane.route.path.display()
                    ),
                    owed,
                )
            });
            if !lane.send_waiting(events.into_iter().map(Arc::new).collect(), &abandon) {
                // Closed or out of drain time: what was not queued stays pending in the
                // journal for the next start.
                return;
            }
            delivered_since_behind += count;
            progress.tick(count as u64);
            lock(&lane.state).behind_from = Some(next);
            continue;
        }
        // Nothing left from `from` on. Checked again under the lock that routing takes, so
        // that no event journaled meanwhile is skipped by both: either this read sees it, or
        // routing, after the switch, queues it live.
        let mut state = lock(&lane.state);
        let more = cursor.journal.pending_from(cursor.processor, from, 1);
        if more.is_err() {
            // Read again after a pause (the error is logged by the read at the top), not in a
            // loop that holds the lock routing needs.
            let _ = lane.wake.wait_timeout(state, FEEDER_RETRY);
            continue;
        }
        if let Ok(more) = more
            && more.is_empty()
        {
            state.behind_from = None;
            progress = None;
            let since = state.behind_since.take();
            lane.stats.caught_up();
            if delivered_since_behind > 0 {
                tracing::info!(
                    "processor {} of {} caught up: {delivered_since_behind} event(s) handed over \
                     from the journal{}",
                    lane.route.processor_name,
                    lane.route.path.display(),
                    since.map_or(String::new(), |since| format!(
                        " in {:.1?}",
                        since.elapsed()
                    ))
                );
            }
            delivered_since_behind = 0;
        }
    }
}

pub struct Router {
    /// The open lanes, by their route's address (held by the lane, so it stays unique).
    lanes: Mutex<HashMap<usize, Arc<Lane>>>,
    /// Every thread any lane started; they end once their lane closed and drained.
    threads: Mutex<Vec<JoinHandle<()>>>,
    workers: usize,
    capacity: usize,
    abandon: Arc<Abandon>,
    stats: Arc<Stats>,
    health: Arc<Health>,
}

fn key(route: &Arc<Route>) -> usize {
    Arc::as_ptr(route) as usize
}

impl Router {
    /// A router whose lanes get `workers` threads each, each with room for `queue_capacity`
    /// waiting events.
    pub fn new(
        workers: usize,
        queue_capacity: usize,
        stats: Arc<Stats>,
        health: Arc<Health>,
    ) -> Router {
        Router {
            lanes: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            workers: workers.max(1),
            capacity: queue_capacity.max(1),
            abandon: Arc::new(Abandon::default()),
            stats,
            health,
        }
    }

    /// Starts the lane of `route`: its workers and, with a journal, its feeder. `behind_from`
    /// starts it behind (a restart owes it what the journal holds from that id on).
    pub fn open(&self, route: &Arc<Route>, behind_from: Option<u64>) -> std::io::Result<()> {
        let capacity = self.capacity;
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for index in 0..self.workers {
            let (chunks_tx, chunks) = mpsc::channel::<Vec<Arc<Event>>>();
            let room = Arc::new(Room::new(capacity));
            let (abandon, stats, worker_room) =
                (self.abandon.clone(), self.stats.clone(), room.clone());
            let route = route.clone();
            let thread = std::thread::Builder::new()
                .name(format!("inotifier-worker-{}-{index}", route.watch.0))
                .spawn(move || {
                    // Chunks that queued up while the worker was busy go into one batch (fewer,
                    // larger processor calls), up to half the queue, so that the other half
                    // can fill meanwhile.
                    let most = (capacity / 2).max(1);
                    while let Ok(mut batch) = chunks.recv() {
                        while batch.len() < most {
                            match chunks.try_recv() {
                                Ok(more) => batch.extend(more),
                                Err(_) => break,
                            }
                        }
                        let events: Vec<&Event> = batch.iter().map(|event| &**event).collect();
                        deliver(&route, &events, &abandon, &stats);
                        worker_room.give(batch.len());
                    }
                })?;
            queues.push(WorkerQueue {
                chunks: chunks_tx,
                room,
            });
            threads.push(thread);
        }
        let lane = Arc::new(Lane {
            route: route.clone(),
            queues,
            state: Mutex::new(LaneState {
                behind_from: None,
                requeued: Vec::new(),
                behind_since: None,
                warned_full: false,
            }),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            capacity,
            hasher: foldhash::fast::RandomState::default(),
            stats: self.stats.clone(),
            health: self.health.clone(),
        });
        if route.cursor.is_some() {
            if let Some(from) = behind_from {
                let mut state = lock(&lane.state);
                state.behind_from = Some(from);
                state.behind_since = Some(Instant::now());
                self.stats.fell_behind();
            }
            let (feeder_lane, abandon, health) =
                (lane.clone(), self.abandon.clone(), self.health.clone());
            let page = capacity * self.workers;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("inotifier-feeder-{}", route.watch.0))
                    .spawn(move || feed(feeder_lane, page, abandon, &health))?,
            );
        }
        lock(&self.lanes).insert(key(route), lane);
        lock(&self.threads).extend(threads);
        Ok(())
    }

    /// Closes the lane of `route`: its workers finish what is queued, then end. What a lane
    /// that was behind had not queued stays pending in the journal; a lane of the same
    /// journal cursor still open (the route that replaced it in a reload) takes it over.
    pub fn close(&self, route: &Arc<Route>) {
        let mut lanes = lock(&self.lanes);
        let Some(lane) = lanes.remove(&key(route)) else {
            return;
        };
        lane.close();
        let (owed, requeued) = {
            let mut state = lock(&lane.state);
            (state.behind_from, std::mem::take(&mut state.requeued))
        };
        if let (None, false, Some(cursor)) = (owed, requeued.is_empty(), &route.cursor)
            && let Some(successor) = lanes.values().find(|other| {
                other
                    .route
                    .cursor
                    .as_ref()
                    .is_some_and(|c| c.processor == cursor.processor)
            })
        {
            lock(&successor.state).requeued.extend(requeued);
            successor.wake.notify_all();
            return;
        }
        if let (Some(from), Some(cursor)) = (owed, &route.cursor) {
            self.stats.caught_up();
            let successor = lanes.values().find(|other| {
                other
                    .route
                    .cursor
                    .as_ref()
                    .is_some_and(|c| c.processor == cursor.processor)
            });
            if let Some(successor) = successor {
                // Events it queued live since may come again: at least once, never lost.
                let mut state = lock(&successor.state);
                state.requeued.extend(requeued);
                if state.behind_from.is_none() {
                    self.stats.fell_behind();
                    state.behind_since = Some(Instant::now());
                }
                state.behind_from = Some(state.behind_from.map_or(from, |own| own.min(from)));
                successor.wake.notify_all();
            }
        }
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

    /// Queues each event for each of its routes, in the lane of that route (a chunk per
    /// worker: one wake-up per chunk, not per event). Events come in id order. `journaled`:
    /// they are in the journal, so a lane that is full or behind may leave them there.
    pub fn dispatch(&self, events: Vec<(Event, Vec<Arc<Route>>)>, journaled: bool) {
        let mut by_lane: Vec<(Arc<Lane>, Vec<Arc<Event>>)> = Vec::new();
        {
            let lanes = lock(&self.lanes);
            for (event, routes) in events {
                let event = Arc::new(event);
                for route in routes {
                    let Some(lane) = lanes.get(&key(&route)) else {
                        // Closed by a reload between routing and now: the watch that
                        // replaced it routes the same changes.
                        continue;
                    };
                    match by_lane
                        .iter_mut()
                        .find(|(known, _)| Arc::ptr_eq(known, lane))
                    {
                        Some((_, events)) => events.push(event.clone()),
                        None => by_lane.push((lane.clone(), vec![event.clone()])),
                    }
                }
            }
        }
        for (lane, events) in by_lane {
            if journaled {
                lane.offer(events, &self.abandon);
            } else {
                lane.send_waiting(events, &self.abandon);
            }
        }
    }

    /// Queues events that `inotifier journal retry` or `replay` put back in the journal for
    /// `route`, through its feeder: they are not appended again, and the caller never waits.
    pub fn redeliver(&self, route: &Arc<Route>, events: Vec<Event>) {
        let Some(lane) = lock(&self.lanes).get(&key(route)).cloned() else {
            return;
        };
        let mut state = lock(&lane.state);
        // All of them, also those the feeder may read from the journal too: it may have read
        // the page they are in before they were put back (a second delivery beats none).
        state.requeued.extend(events.into_iter().map(Arc::new));
        lane.wake.notify_all();
    }

    /// Lets the workers finish what is queued, until `deadline`; after it, pending retries and
    /// queued events are given up (and counted). Returns whether everything was delivered.
    pub fn drain(self, deadline: Instant) -> bool {
        for lane in lock(&self.lanes).drain().map(|(_, lane)| lane) {
            lane.close();
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        let (done_tx, done_rx) = mpsc::channel();
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
        // What the processor says is done is acknowledged as it goes: a crash in the middle
        // of a long batch (the exec processor runs one command per event) delivers again
        // only what was not done.
        let acknowledged = Cell::new(0);
        let acknowledge_up_to = |done: usize| {
            let done = done.min(rest.len());
            let from = acknowledged.get();
            if done > from {
                stats.delivered(done - from);
                route.metrics.delivered(done - from);
                route.acknowledge(&rest[from..done]);
                acknowledged.set(done);
            }
        };
        let started = Instant::now();
        let outcome = processor.process_batch(rest, &|done| {
            acknowledge_up_to(done);
            !abandon.is_set()
        });
        route.metrics.call_took(started.elapsed());
        let processed = outcome.processed.min(rest.len());
        acknowledge_up_to(processed);
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
            route.metrics.retried();
        }
        !abandoned
    });
    match outcome {
        Ok(_) => {
            stats.delivered(1);
            route.metrics.delivered(1);
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
            route.metrics.given_up(route.cursor.is_some());
            route.dead_letter(event, &failure);
        }
    }
}

/// The [`Health`] keys of a route whose reading is paused (no journal, queue full), and of a
/// processor whose owed events the journal cannot read.
pub const READING_HEALTH_PREFIX: &str = "reading:";
pub const JOURNAL_READ_HEALTH_PREFIX: &str = "journal:read:";

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
    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn(usize) -> bool) -> BatchOutcome {
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
