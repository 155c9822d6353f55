//! The journal's housekeeping thread of a running daemon, four times a second:
//! - hands the workers the events that `inotifier journal retry` or `replay` put back (from
//!   another process);
//! - saves what changed in each watched tree to the journal's snapshot, which the next start's
//!   catch-up diffs against the disk.
//!
//! A snapshot change is saved only once its event is journaled (the engine sees to that) and,
//! for a file whose ready event is still to come, only once it came: otherwise a crash while
//! the file settles would leave a snapshot that already has the file and a journal without
//! its ready event, and nothing would report it. Held-back changes wait for the next round.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotifier_core::{Engine, SnapshotChange, WatchId};
use inotifier_journal::Journal;

use crate::pipeline::{self, SharedPipeline};

/// Four times a second: after a crash, catch-up reports again at most what changed since the
/// last save (each save is one small transaction).
const PERIOD: Duration = Duration::from_millis(250);
/// Several clock ticks (4 ms at 250 Hz).
const LAST_ROUNDS_APART: Duration = Duration::from_millis(15);

/// A watch whose tree the journal keeps a snapshot of.
pub struct Tracked {
    pub id: WatchId,
    /// The watch's key in the journal.
    pub key: String,
    pub root: PathBuf,
    /// Changes held back, in order, for the next round.
    deferred: Vec<SnapshotChange>,
}

impl Tracked {
    pub fn new(id: WatchId, key: String, root: PathBuf) -> Tracked {
        Tracked {
            id,
            key,
            root,
            deferred: Vec::new(),
        }
    }
}

pub type TrackedWatches = Arc<Mutex<Vec<Tracked>>>;

pub fn lock(tracked: &TrackedWatches) -> MutexGuard<'_, Vec<Tracked>> {
    tracked.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Keeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    done: mpsc::Receiver<()>,
    thread: JoinHandle<()>,
}

impl Keeper {
    pub fn start(
        journal: Arc<Journal>,
        pipeline: SharedPipeline,
        engine: Arc<Engine>,
        tracked: TrackedWatches,
    ) -> std::io::Result<Keeper> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (done_tx, done) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("inotifier-journal".into())
                .spawn(move || {
                    let (stopped, wake) = &*stop;
                    loop {
                        let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                        let (guard, _) = wake
                            .wait_timeout_while(guard, PERIOD, |stopped| !*stopped)
                            .unwrap_or_else(|e| e.into_inner());
                        let stopping = *guard;
                        drop(guard);
                        requeue(&journal, &pipeline);
                        save_snapshots(&journal, &engine, &pipeline, &tracked);
                        if stopping {
                            // The export holds back entries changed in the last clock ticks;
                            // a few more rounds once they are past, so that a clean restart
                            // reports nothing twice.
                            for _ in 0..3 {
                                std::thread::sleep(LAST_ROUNDS_APART);
                                save_snapshots(&journal, &engine, &pipeline, &tracked);
                            }
                            let _ = done_tx.send(());
                            return;
                        }
                    }
                })?
        };
        Ok(Keeper { stop, done, thread })
    }

    /// Asks for a last round and waits for it until `deadline`; [`Keeper::join`] then ends the
    /// thread (once the engine has stopped, should the round still wait on it).
    pub fn finish(&self, deadline: Instant) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }
}

fn requeue(journal: &Journal, pipeline: &SharedPipeline) {
    let requeued = match journal.take_requeued() {
        Ok(requeued) => requeued,
        Err(error) => {
            tracing::warn!("cannot read the events put back in the journal: {error}");
            return;
        }
    };
    if requeued.is_empty() {
        return;
    }
    let pipeline = pipeline::lock(pipeline);
    let mut unknown = 0;
    // In id order already; one dispatch per processor keeps each one's order.
    let mut by_processor: Vec<(inotifier_journal::ProcessorId, Vec<_>)> = Vec::new();
    for (processor, event) in requeued {
        match by_processor
            .iter_mut()
            .find(|(known, _)| *known == processor)
        {
            Some((_, events)) => events.push(event),
            None => by_processor.push((processor, vec![event])),
        }
    }
    for (processor, events) in by_processor {
        match pipeline.route_of(processor) {
            Some(route) => {
                tracing::info!(
                    "{} event(s) put back in the journal redelivered to {}",
                    events.len(),
                    route.processor_name
                );
                pipeline.redeliver(&route, events);
            }
            // Stays pending in the journal: the watch's next start delivers it.
            None => unknown += events.len(),
        }
    }
    if unknown > 0 {
        tracing::warn!(
            "{unknown} event(s) put back for processors no watch of this daemon runs: they stay \
             pending until one does"
        );
    }
}

fn save_snapshots(
    journal: &Journal,
    engine: &Engine,
    pipeline: &SharedPipeline,
    tracked: &TrackedWatches,
) {
    let mut tracked = lock(tracked);
    for watch in tracked.iter_mut() {
        let changes = match engine.snapshot_changes(watch.id) {
            Ok(changes) => changes,
            Err(inotifier_core::Error::Stopped) => return,
            Err(error) => {
                tracing::warn!("cannot export the snapshot of {}: {error}", watch.key);
                continue;
            }
        };
        let mut all = std::mem::take(&mut watch.deferred);
        all.extend(changes);
        if all.is_empty() {
            continue;
        }
        let (save, deferred) = {
            let pipeline = pipeline::lock(pipeline);
            hold_back_settling(all, &watch.root, |path| {
                pipeline.is_settling(watch.id, path)
            })
        };
        if let Err(error) = journal.save_snapshot(&watch.key, &save) {
            tracing::warn!(
                "cannot save the snapshot of {} ({error}); trying again in a second",
                watch.key
            );
            watch.deferred = save;
            watch.deferred.extend(deferred);
        } else {
            watch.deferred = deferred;
        }
    }
}

/// Splits `changes` (of the tree at `root`) into what can be saved now and what waits: the
/// changes of files whose ready event is still to come (`settling(pathname)`), and every later
/// change of the same paths (order per path).
pub fn hold_back_settling(
    changes: Vec<SnapshotChange>,
    root: &Path,
    settling: impl Fn(&Path) -> bool,
) -> (Vec<SnapshotChange>, Vec<SnapshotChange>) {
    let mut held: HashSet<Vec<u8>> = HashSet::new();
    let (mut save, mut deferred) = (Vec::new(), Vec::new());
    for change in changes {
        let path = match &change {
            SnapshotChange::Upsert(entry) => &entry.path,
            SnapshotChange::Remove(path) => path,
        };
        let settling = matches!(change, SnapshotChange::Upsert(_))
            && settling(&root.join(std::ffi::OsStr::from_bytes(path)));
        if settling || held.contains(path) {
            held.insert(path.clone());
            deferred.push(change);
        } else {
            save.push(change);
        }
    }
    (save, deferred)
}
