//! The thread between the engine and the router: derives ready events, numbers events, and
//! looks up which processors each one goes to.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotifier_core::ready::{ReadyOptions, ReadyStage};
use inotifier_core::{Batch, Event, Mask, WatchId};

use crate::router::{Route, Router};
use crate::stats::Stats;

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
    stats: Arc<Stats>,
}

pub type SharedPipeline = Arc<Mutex<Pipeline>>;

impl Pipeline {
    pub fn new(router: Router, stats: Arc<Stats>, first_id: u64) -> SharedPipeline {
        Arc::new(Mutex::new(Pipeline {
            routes: HashMap::new(),
            ready: ReadyStage::new(),
            highest_registered: None,
            waiting: Vec::new(),
            next_id: first_id,
            router: Some(router),
            stats,
        }))
    }

    /// Starts sending the events of `route.watch` to its processor, including any that
    /// arrived before this call.
    pub fn register(&mut self, route: Route, ready: Option<ReadyOptions>) {
        let id = route.watch;
        self.ready.set_watch(id, route.events, ready);
        self.routes.insert(id, Arc::new(route));
        self.highest_registered = self.highest_registered.max(Some(id));
        let (held, still_waiting): (Vec<Event>, Vec<Event>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|event| event.watches.iter().all(|w| !self.is_future(*w)));
        self.waiting = still_waiting;
        if !held.is_empty() {
            self.process(held, Instant::now());
        }
    }

    /// Stops routing the events of `watch`; what is queued for its processor still runs.
    pub fn unregister(&mut self, watch: WatchId) {
        self.ready.remove_watch(watch);
        self.routes.remove(&watch);
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
        for mut event in batch {
            let routes: Vec<Arc<Route>> = event
                .watches
                .iter()
                .filter_map(|watch| self.routes.get(watch))
                .filter(|route| wants(route.events, event.mask))
                .cloned()
                .collect();
            if routes.is_empty() {
                continue;
            }
            event.id = self.next_id;
            self.next_id += 1;
            self.stats.seen(1);
            router.dispatch(event, routes);
        }
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
/// `IN_Q_OVERFLOW` and `IN_IGNORED`, and so do we: a processor must know events were lost or
/// that its watch is gone.
fn wants(wanted: Mask, mask: Mask) -> bool {
    mask.intersects(
        wanted
            .union(Mask::IN_Q_OVERFLOW)
            .union(Mask::IN_IGNORED)
            .union(Mask::IN_UNMOUNT),
    )
}

pub fn lock(pipeline: &SharedPipeline) -> MutexGuard<'_, Pipeline> {
    pipeline.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the pipeline until the engine's channel closes.
pub fn spawn(
    pipeline: SharedPipeline,
    batches: Receiver<Batch>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("inotifier-pipeline".into())
        .spawn(move || {
            loop {
                let timeout = lock(&pipeline)
                    .next_deadline()
                    .map(|deadline| deadline.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_secs(3600));
                match batches.recv_timeout(timeout) {
                    Ok(batch) => lock(&pipeline).process(batch, Instant::now()),
                    Err(RecvTimeoutError::Timeout) => lock(&pipeline).poll(Instant::now()),
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            // Files still settling when reading stopped cannot be known to be ready: nothing
            // watched them for their whole settle time. Say so rather than guess.
            let pending = lock(&pipeline).ready.pending_count();
            if pending > 0 {
                tracing::info!(
                    "{pending} file(s) were still settling when reading stopped: no ready event \
                     for them"
                );
            }
        })
}
