//! Between the engine and the router: derives ready events, numbers events, and looks up
//! which processors each one goes to.
//!
//! It runs as the engine's sink, on the reader thread, so that a batch reaches the workers
//! with one thread switch instead of two; a timer thread delivers the ready events whose
//! settle time ends while no batch comes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use inotifier_core::ready::{ReadyOptions, ReadyStage};
use inotifier_core::{Batch, Event, Flow, Mask, Origin, Sink, WatchId};

use crate::covered::Journaled;
use crate::health::Health;
use crate::journal;
use crate::router::{Route, Router};

/// What the pipeline thread and the daemon's control side share.
pub struct Pipeline {
    routes: HashMap<WatchId, Arc<Route>>,
    ready: ReadyStage,
    /// The highest watch id registered so far: an event of a higher one belongs to a watch
    /// the engine has just added and the daemon has not registered yet.
    highest_registered: Option<WatchId>,
    /// Events of such watches, held until their route is registered.
    waiting: Vec<Event>,
    next_id: u64,
    router: Option<Router>,
    health: Arc<Health>,
    /// Per watch caught up at its start: what the journal already holds (see [`crate::covered`]).
    journaled: HashMap<WatchId, Journaled>,
}

pub struct Shared {
    pipeline: Mutex<Pipeline>,
    /// Signalled when a batch may have armed a new settle timer, and to stop the timer thread.
    timers: Condvar,
    stopping: AtomicBool,
}

pub type SharedPipeline = Arc<Shared>;

impl Pipeline {
    pub fn shared(router: Router, first_id: u64, health: Arc<Health>) -> SharedPipeline {
        Arc::new(Shared {
            pipeline: Mutex::new(Pipeline {
                routes: HashMap::new(),
                ready: ReadyStage::new(),
                highest_registered: None,
                waiting: Vec::new(),
                next_id: first_id,
                router: Some(router),
                health,
                journaled: HashMap::new(),
            }),
            timers: Condvar::new(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Starts sending the events of `route.watch` to its processor, including any that
    /// arrived before this call. `owed_from`: the journal still owes this processor its
    /// events from that id on (pending at the last stop); they come first, from the oldest, so
    /// that each file's events stay in order.
    pub fn register(
        &mut self,
        route: Route,
        ready: Option<ReadyOptions>,
        owed_from: Option<u64>,
        journaled: Option<Journaled>,
    ) -> std::io::Result<()> {
        let id = route.watch;
        let route = Arc::new(route);
        if let Some(journaled) = journaled {
            self.journaled.insert(id, journaled);
        }
        if let Some(router) = &self.router {
            router.open(&route, owed_from)?;
        }
        self.ready.set_watch(id, route.events, ready);
        let path = route.path.clone();
        self.routes.insert(id, route);
        self.highest_registered = self.highest_registered.max(Some(id));
        let (held, still_waiting): (Vec<Event>, Vec<Event>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|event| event.watches.iter().all(|w| !self.is_future(*w)));
        self.waiting = still_waiting;
        if !held.is_empty() {
            self.process(held, Instant::now());
        }
        if let Some(dropped) = self.journaled.get(&id).map(Journaled::dropped)
            && dropped > 0
        {
            tracing::info!(
                "{dropped} change(s) found by catch-up on {} were journaled before the stop: \
                 not reported again",
                path.display()
            );
        }
        Ok(())
    }

    /// Stops routing the events of `watch`; what is queued for its processor still runs.
    pub fn unregister(&mut self, watch: WatchId) {
        self.ready.remove_watch(watch);
        self.journaled.remove(&watch);
        if let Some(route) = self.routes.remove(&watch)
            && let Some(router) = &self.router
        {
            router.close(&route);
        }
    }

    fn is_future(&self, watch: WatchId) -> bool {
        self.highest_registered
            .is_none_or(|highest| watch > highest)
    }

    fn process(&mut self, batch: Batch, now: Instant) {
        let mut known = Vec::with_capacity(batch.len());
        for event in batch {
            if event.watches.iter().any(|w| self.is_future(*w)) {
                self.waiting.push(event);
            } else {
                known.push(event);
            }
        }
        let out = self.ready.process(known, now);
        self.dispatch(out);
    }

    fn poll(&mut self, now: Instant) {
        let out = self.ready.poll(now);
        self.dispatch(out);
    }

    fn dispatch(&mut self, batch: Batch) {
        let Some(router) = &self.router else { return };
        let mut routed: Vec<(Event, Vec<Arc<Route>>)> = Vec::with_capacity(batch.len());
        for mut event in batch {
            if is_queue_overflow(&event) {
                // Counted for every watch it concerns, whether or not it asked for the event.
                for route in event
                    .watches
                    .iter()
                    .filter_map(|watch| self.routes.get(watch))
                {
                    route.metrics.overflowed();
                }
            }
            let journaled = &mut self.journaled;
            let routes: Vec<Arc<Route>> = event
                .watches
                .iter()
                .filter_map(|watch| self.routes.get(watch))
                .filter(|route| wants(route.events, event.mask))
                // Only catch-up's findings are looked up: no cost for the kernel's events.
                .filter(|route| {
                    event.origin != Origin::CatchUp
                        || !journaled
                            .get_mut(&route.watch)
                            .is_some_and(|journaled| journaled.covers(&event))
                })
                .cloned()
                .collect();
            if routes.is_empty() {
                continue;
            }
            for route in &routes {
                route.metrics.event(event.origin);
            }
            if is_queue_overflow(&event) {
                // It concerns every watch and names no file: each watch that asked for it
                // gets its own, naming its watched path, so that `{pathname}` is never empty.
                for route in routes {
                    let mut own = event.clone();
                    own.path = Arc::from(route.path.as_path());
                    own.watches = vec![route.watch].into();
                    own.id = self.next_id;
                    self.next_id += 1;
                    routed.push((own, vec![route]));
                }
                continue;
            }
            event.id = self.next_id;
            self.next_id += 1;
            routed.push((event, routes));
        }
        let appended = match routed.is_empty() {
            true => journal::Appended::Journaled,
            false => journal::append(&routed, router, &self.health),
        };
        match appended {
            journal::Appended::Journaled => router.dispatch(routed, true),
            journal::Appended::Unjournaled => router.dispatch(routed, false),
            journal::Appended::Dropped => {}
        }
    }

    /// Hands the router events that `inotifier journal retry`/`replay` put back for one
    /// route: already journaled, they are not appended again.
    pub fn redeliver(&self, route: &Arc<Route>, events: Vec<Event>) {
        if let Some(router) = &self.router {
            router.redeliver(route, events);
        }
    }

    /// Whether a file of `watch` still has its ready event to come.
    pub fn is_settling(&self, watch: WatchId, pathname: &std::path::Path) -> bool {
        self.ready.is_settling(watch, pathname)
    }

    /// The route whose journal cursor is `processor`, if it is still registered.
    pub fn route_of(&self, processor: inotifier_journal::ProcessorId) -> Option<Arc<Route>> {
        self.routes
            .values()
            .find(|route| {
                route
                    .cursor
                    .as_ref()
                    .is_some_and(|cursor| cursor.processor == processor)
            })
            .cloned()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.ready.next_deadline()
    }

    /// Hands the router over for draining; the pipeline routes nothing afterwards.
    pub fn take_router(&mut self) -> Option<Router> {
        self.router.take()
    }
}

/// Whether a watch asking for `wanted` gets an event with `mask`. The kernel always sends
/// `IN_IGNORED` and `IN_UNMOUNT`, and so do we: a processor must know that its watch is gone.
/// `IN_Q_OVERFLOW` goes only where it was asked for: the rescan that follows it reports what
/// changed, and a processor that runs a command per file has nothing to run it on.
fn wants(wanted: Mask, mask: Mask) -> bool {
    mask.intersects(wanted.union(Mask::IN_IGNORED).union(Mask::IN_UNMOUNT))
}

fn is_queue_overflow(event: &Event) -> bool {
    event.mask.contains(Mask::IN_Q_OVERFLOW) && event.path.as_os_str().is_empty()
}

/// Registers a route (see [`Pipeline::register`]) and wakes the timer thread: the events held
/// for the watch, such as catch-up's findings, may have armed settle timers that no kernel
/// event would otherwise make it notice.
pub fn register(
    shared: &SharedPipeline,
    route: Route,
    ready: Option<ReadyOptions>,
    owed_from: Option<u64>,
    journaled: Option<Journaled>,
) -> std::io::Result<()> {
    lock(shared).register(route, ready, owed_from, journaled)?;
    shared.timers.notify_one();
    Ok(())
}

pub fn lock(shared: &SharedPipeline) -> MutexGuard<'_, Pipeline> {
    shared.pipeline.lock().unwrap_or_else(|e| e.into_inner())
}

/// The engine's sink: every batch goes through the pipeline on the reader thread.
pub fn sink(shared: SharedPipeline) -> Sink {
    Box::new(move |batch| {
        let mut pipeline = lock(&shared);
        pipeline.process(std::mem::take(batch), Instant::now());
        if pipeline.next_deadline().is_some() {
            shared.timers.notify_one();
        }
        Flow::Continue
    })
}

/// Starts the thread that delivers ready events when their settle time ends.
pub fn spawn_timers(shared: SharedPipeline) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("inotifier-timers".into())
        .spawn(move || {
            let mut pipeline = lock(&shared);
            while !shared.stopping.load(Ordering::SeqCst) {
                let now = Instant::now();
                pipeline = match pipeline.next_deadline() {
                    Some(deadline) if deadline <= now => {
                        pipeline.poll(now);
                        continue;
                    }
                    Some(deadline) => {
                        shared
                            .timers
                            .wait_timeout(pipeline, deadline - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => shared
                        .timers
                        .wait(pipeline)
                        .unwrap_or_else(|e| e.into_inner()),
                };
            }
        })
}

/// Ends the timer thread, once the engine has stopped feeding the pipeline.
pub fn stop_timers(shared: &SharedPipeline, thread: JoinHandle<()>) {
    {
        let _pipeline = lock(shared);
        shared.stopping.store(true, Ordering::SeqCst);
        shared.timers.notify_all();
    }
    let _ = thread.join();
    // Files still settling when reading stopped cannot be known to be ready: nothing watched
    // them for their whole settle time. Say so rather than guess.
    let pending = lock(shared).ready.pending_count();
    if pending > 0 {
        tracing::info!(
            "{pending} file(s) were still settling when reading stopped: no ready event for them"
        );
    }
}
