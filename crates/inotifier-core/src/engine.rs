//! The engine: one inotify instance read by a dedicated thread, which owns the watch tree and
//! sends events in batches over a bounded channel. A consumer that falls behind blocks the
//! reader instead of growing memory; the kernel queue then overflows, and the tree recovers by
//! rescanning.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::{Event, WatchId};
use crate::snapshot::{SnapshotChange, SnapshotEntry};
use crate::sys::{self, Inotify, RawEvents};
use crate::tree::{Gaps, Tree, WatchSpec};
use crate::wake::Waker;

/// Tuning knobs; the defaults suit almost everyone.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Bytes read from the kernel at once. Larger drains a burst in fewer system calls.
    pub read_buffer_size: usize,
    /// How many batches may wait for the consumer before the reader blocks.
    pub channel_batches: usize,
    /// A batch of synthesized events is sent once it holds this many.
    pub max_batch_events: usize,
    /// How long an `IN_MOVED_FROM` waits for its `IN_MOVED_TO` before it counts as a move out of
    /// the watched area.
    pub move_window: Duration,
    /// Told how long each overflow rescan took (the daemon's metrics).
    pub on_rescan: RescanObserver,
}

/// Called on the reader thread once each overflow rescan is done, with how long it took; it
/// must return at once (add to a counter, no I/O).
#[derive(Clone, Default)]
pub struct RescanObserver(Option<Arc<dyn Fn(Duration) + Send + Sync>>);

impl RescanObserver {
    pub fn new(observe: impl Fn(Duration) + Send + Sync + 'static) -> RescanObserver {
        RescanObserver(Some(Arc::new(observe)))
    }

    pub(crate) fn rescanned(&self, took: Duration) {
        if let Some(observe) = &self.0 {
            observe(took);
        }
    }
}

impl std::fmt::Debug for RescanObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "RescanObserver(set)"
        } else {
            "RescanObserver(none)"
        })
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            read_buffer_size: 256 * 1024,
            channel_batches: 16,
            max_batch_events: 8192,
            move_window: Duration::from_millis(20),
            on_rescan: RescanObserver::default(),
        }
    }
}

/// A batch of events; each is the result of one read from the kernel (or part of a large scan).
pub type Batch = Vec<Event>;

/// What a sink wants after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop the engine, e.g. because the sink's output is gone.
    Stop,
}

/// Receives every batch, on the reader thread. It may keep the events (`std::mem::take`) or
/// only look at them; the engine clears the batch afterwards and reuses its memory. A slow sink
/// holds the reader back: the kernel
/// queue then overflows and the engine recovers by rescanning, so memory stays bounded.
pub type Sink = Box<dyn FnMut(&mut Batch) -> Flow + Send>;

enum Command {
    Add(
        WatchSpec,
        Option<Vec<SnapshotEntry>>,
        mpsc::Sender<Result<WatchId>>,
    ),
    Snapshot(WatchId, mpsc::Sender<Result<Vec<SnapshotEntry>>>),
    SnapshotChanges(WatchId, mpsc::Sender<Result<Vec<SnapshotChange>>>),
    Remove(WatchId, mpsc::Sender<Result<()>>),
}

/// Stops the engine from any thread, e.g. a signal handler thread.
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Asks the reader to finish: it delivers what it holds, then closes the channel.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake();
    }
}

pub struct Engine {
    commands: mpsc::Sender<Command>,
    stopper: Stopper,
    /// Directories and files the kernel watches, as the reader last published it.
    watches: Arc<AtomicUsize>,
    /// What the kernel does not watch, as the reader last published it.
    gaps: Arc<Mutex<Gaps>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Engine {
    /// Creates the inotify instance and starts the reader thread. Events arrive on the returned
    /// receiver, which closes once the engine has stopped. Drain or drop the receiver before
    /// stopping: a reader blocked on a full channel finishes only then.
    pub fn start(options: EngineOptions) -> Result<(Engine, Receiver<Batch>)> {
        let (batch_tx, batch_rx) = mpsc::sync_channel(options.channel_batches.max(1));
        let sink: Sink = Box::new(move |batch| {
            // A consumer that hung up just stops receiving; the reader goes on until stopped.
            let _ = batch_tx.send(std::mem::take(batch));
            Flow::Continue
        });
        Ok((Engine::start_with_sink(options, sink)?, batch_rx))
    }

    /// Like [`Engine::start`], but hands every batch to `sink` on the reader thread itself,
    /// which saves a thread switch per batch: the fastest way to consume events.
    pub fn start_with_sink(options: EngineOptions, sink: Sink) -> Result<Engine> {
        let inotify = Inotify::new().map_err(instance_error)?;
        let waker = Waker::new(&inotify)
            .map_err(|e| Error::io("cannot set up wake-ups of the reader thread", e))?;
        inotify
            .set_blocking(waker.poll_fd().is_none())
            .map_err(|e| Error::io("cannot configure the inotify descriptor", e))?;
        let waker = Arc::new(waker);
        let stopper = Stopper {
            stop: Arc::new(AtomicBool::new(false)),
            waker: waker.clone(),
        };
        let (command_tx, command_rx) = mpsc::channel();
        let watches = Arc::new(AtomicUsize::new(0));
        let gaps = Arc::new(Mutex::new(Gaps::default()));
        let reader = Reader {
            max_queued_events: sys::inotify_limit("max_queued_events").map(|limit| limit as usize),
            watches: watches.clone(),
            gaps: gaps.clone(),
            tree: Tree::new(inotify, options.move_window, options.on_rescan.clone()),
            commands: command_rx,
            sink,
            stopper: stopper.clone(),
            buffer: vec![0; options.read_buffer_size.max(4096)],
            max_batch_events: options.max_batch_events.max(1),
        };
        let thread = std::thread::Builder::new()
            .name("inotifier-reader".into())
            .spawn(move || reader.run())
            .map_err(|e| Error::io("cannot start the reader thread", e))?;
        Ok(Engine {
            commands: command_tx,
            stopper,
            watches,
            gaps,
            thread: Some(thread),
        })
    }

    /// Adds a watch; returns once every directory of it is watched and indexed.
    pub fn add_watch(&self, spec: WatchSpec) -> Result<WatchId> {
        self.call(|reply| Command::Add(spec, None, reply))?
    }

    /// Adds a watch and reports, marked [`Origin::CatchUp`](crate::Origin::CatchUp), what
    /// changed below it since `baseline` was taken (a snapshot a journal persisted from
    /// [`Engine::snapshot`] and [`Engine::snapshot_changes`]). Its snapshot export then starts
    /// from the baseline: the next [`Engine::snapshot_changes`] turns the baseline into what
    /// is on disk.
    ///
    /// The watches are in place before the tree is listed, so nothing that happens after this
    /// call starts is missed; the catch-up events come before every kernel event of the watch.
    /// Each entry on disk is paired with the baseline, parents first, and reported like the
    /// kernel would have (the watch's mask and filters apply; with a recursive watch every
    /// level is compared, otherwise the root's entries only):
    /// - on disk, not in the baseline: `IN_CREATE` (with `IN_ISDIR` for a directory), and for a
    ///   regular file `IN_CLOSE_WRITE` too, so the ready detector finds it ready once settled;
    /// - in the baseline, not on disk: `IN_DELETE`, the content of a directory before it;
    /// - same place, same inode, other size or mtime: `IN_MODIFY`, then `IN_CLOSE_WRITE` for a
    ///   regular file (not for directories, whose times change with their entries);
    /// - an inode of the baseline at another place, of the same kind, found there alone, and
    ///   for a file with the same size and mtime (file systems reuse a deleted file's inode
    ///   number at once; a rename keeps the times): a rename, `IN_MOVED_FROM` at the old place
    ///   and `IN_MOVED_TO` at the new one with a shared nonzero cookie and `src_pathname`. The
    ///   old place need not be empty: `mv log log.1` followed by a new `log` is a rename and a
    ///   creation. A renamed directory's content stays paired with it (each entry still gets its
    ///   own modification or deletion);
    /// - same place, another inode: a deletion and a creation (or a rename, if the old inode
    ///   is found elsewhere).
    ///
    /// The events replay in order: a directory is created or moved before what goes into it, a
    /// place is vacated before it is taken, and paths are those the earlier events lead to
    /// (a file deleted in a renamed directory is deleted at the new place). Only a cycle of
    /// renames (two names swapped) cannot be replayed by path.
    ///
    /// The catch-up events are handed over right after the id is returned, before any kernel
    /// event of the watch; a [`Sink`] may see them before the caller has registered the id
    /// anywhere, so it must hold or wait for events of a watch it does not know yet.
    ///
    /// Guarantees against the kernel's own events, at least once as ever: an entry created
    /// while the catch-up lists the tree is reported created once (the kernel's duplicate
    /// `IN_CREATE` is dropped, as for a scanned directory), though its writes may be reported
    /// by both; an entry changed after it was listed gets the kernel's events and may also get
    /// catch-up ones; one created after its directory was listed gets the kernel's only.
    pub fn add_watch_with_baseline(
        &self,
        spec: WatchSpec,
        baseline: Vec<SnapshotEntry>,
    ) -> Result<WatchId> {
        self.call(|reply| Command::Add(spec, Some(baseline), reply))?
    }

    /// Every entry below the watch's root (every level for a recursive watch, filters
    /// applied), sorted by path. A full export: [`Engine::snapshot_changes`] reports what
    /// changes after it. Costs one `lstat` for each entry whose stat the engine does not hold
    /// yet (all of them the first time).
    pub fn snapshot(&self, id: WatchId) -> Result<Vec<SnapshotEntry>> {
        self.call(|reply| Command::Snapshot(id, reply))?
    }

    /// What changed since the previous [`Engine::snapshot`] or `snapshot_changes` of the watch
    /// (or since it was added with a baseline): applied in order to what was persisted then,
    /// they give what a full snapshot gives now, for every event the engine has processed.
    /// Removals come first, then upserts, parents before their children. Cheap: only the paths
    /// events touched are looked at, and only those whose stat changed are `lstat`ed. An
    /// error, [`Error::NoSnapshot`], before any snapshot or baseline. Between two exports the
    /// engine remembers each changed path once, so its memory grows with the number of
    /// distinct paths changed, not with the number of events.
    pub fn snapshot_changes(&self, id: WatchId) -> Result<Vec<SnapshotChange>> {
        self.call(|reply| Command::SnapshotChanges(id, reply))?
    }

    /// Removes a watch; directories no other watch covers stop being watched.
    pub fn remove_watch(&self, id: WatchId) -> Result<()> {
        self.call(|reply| Command::Remove(id, reply))?
    }

    /// What of the watched trees the kernel does not watch now (see [`Gaps`]), as of the last
    /// batch or command; never waits.
    pub fn gaps(&self) -> Gaps {
        self.gaps.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many kernel watches (directories and files) are in place, as of the last batch or
    /// command: exact once `add_watch` or `remove_watch` returned, and never waiting for a
    /// reader that is busy or blocked in its sink.
    pub fn watch_count(&self) -> Result<usize> {
        Ok(self.watches.load(Ordering::Acquire))
    }

    fn call<T>(&self, command: impl FnOnce(mpsc::Sender<T>) -> Command) -> Result<T> {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.commands
            .send(command(reply_tx))
            .map_err(|_| Error::Stopped)?;
        self.stopper.waker.wake();
        reply_rx.recv().map_err(|_| Error::Stopped)
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until the engine stops: a [`Stopper`] was used or the sink returned [`Flow::Stop`].
    /// An error if the reader failed (reading the inotify descriptor), which no caller should
    /// take for a normal stop.
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take().map(|thread| thread.join()) {
            Some(Ok(Err(error))) => Err(Error::io("reading inotify events failed", error)),
            Some(Err(_)) => Err(Error::io(
                "the inotify reader thread panicked",
                io::Error::other("panic"),
            )),
            _ => Ok(()),
        }
    }

    /// Stops the reader and waits for it. Events it still held have been sent; whatever the
    /// consumer has not received yet stays readable on the receiver.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn instance_error(error: io::Error) -> Error {
    if error.raw_os_error() == Some(libc::EMFILE) {
        let limit = sys::inotify_limit("max_user_instances");
        Error::TooManyInstances {
            limit: limit.map_or_else(|| "unknown".into(), |l| l.to_string()),
            suggested: limit.unwrap_or(128).saturating_mul(2).max(256),
        }
    } else {
        Error::io("cannot create an inotify instance", error)
    }
}

struct Reader {
    /// `fs.inotify.max_queued_events` when this instance was made (its queue's size).
    max_queued_events: Option<usize>,
    watches: Arc<AtomicUsize>,
    gaps: Arc<Mutex<Gaps>>,
    tree: Tree,
    commands: mpsc::Receiver<Command>,
    sink: Sink,
    stopper: Stopper,
    buffer: Vec<u8>,
    max_batch_events: usize,
}

impl Reader {
    /// Returns why the reader stopped, if not because it was asked to.
    fn run(mut self) -> io::Result<()> {
        let ended = self.read_loop();
        if let Err(error) = &ended {
            tracing::error!("inotify reader stopped: {error}");
        }
        // Moves still waiting for their pair are final now.
        self.tree.expire_moves(true);
        self.send_batch();
        ended
    }

    fn read_loop(&mut self) -> io::Result<()> {
        let inotify_fd = self.tree.inotify().as_raw_fd();
        let waker = self.stopper.waker.clone();
        loop {
            let next_poll = self.tree.next_poll();
            let deadline = [
                self.tree.next_move_deadline(),
                self.tree.next_gap_retry(),
                next_poll,
            ]
            .into_iter()
            .flatten()
            .min();
            // In band, a blocking read() waits for events and wake-ups alike; poll only when a
            // move's pairing window must end even if nothing else happens.
            let readable = if waker.poll_fd().is_none() && deadline.is_none() {
                true
            } else {
                let timeout = deadline.map_or(-1, |deadline| {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Rounded up so the deadline has passed when poll returns.
                    left.as_millis().min(i32::MAX as u128 - 1) as i32 + 1
                });
                let ready = sys::poll_two(inotify_fd, waker.poll_fd().unwrap_or(-1), timeout)?;
                if ready.second {
                    waker.clear();
                    if !self.woken() {
                        return Ok(());
                    }
                }
                ready.first
            };
            if readable {
                self.read_batch()?;
            }
            self.tree.expire_moves(false);
            let now = Instant::now();
            self.tree.retry_gaps(now);
            if next_poll.is_some_and(|due| due <= now) {
                // What the kernel has queued goes first: a poll must not find, as another
                // host's, a change of this one whose events are still waiting to be read.
                if self.tree.inotify().queued_bytes().unwrap_or(0) > 0 {
                    self.read_batch()?;
                }
                self.tree.poll_due(now);
            }
            self.send_batch();
            // Also here, not only on a wake-up: a wake-up can be lost in a queue overflow.
            if !self.woken() {
                return Ok(());
            }
        }
    }

    /// Reads once from the kernel and turns what came into events, sending them as one batch
    /// (or several, for a large scan). Wake-ups are skipped: the caller looks at why.
    fn read_batch(&mut self) -> io::Result<()> {
        let length = self.tree.inotify().read(&mut self.buffer)?;
        if length == 0 {
            return Ok(());
        }
        // Every event takes 16 bytes at least: what was read and what is left bound the count
        // the queue held. A full queue (which also holds the overflow marker) fails the test.
        let queue_had_room = self.max_queued_events.is_some_and(|limit| {
            let left = self.tree.inotify().queued_bytes().unwrap_or(usize::MAX);
            (length.saturating_add(left) / 16) < limit.saturating_sub(1)
        });
        self.tree.tick_read(queue_had_room);
        let wake_wd = self.stopper.waker.in_band_wd();
        for raw in RawEvents::new(&self.buffer[..length]) {
            if Some(raw.wd) == wake_wd {
                continue;
            }
            self.tree.handle(raw);
            if self.tree.out.len() >= self.max_batch_events {
                self.publish();
                send_batch(&mut self.tree, &mut self.sink, &self.stopper);
            }
        }
        self.send_batch();
        Ok(())
    }

    /// False if the reader must stop; otherwise runs the queued commands.
    fn woken(&mut self) -> bool {
        !self.stopper.stop.load(Ordering::SeqCst) && self.run_commands()
    }

    /// Runs queued commands; false once every handle to the engine is gone.
    fn run_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Add(spec, baseline, reply)) => {
                    let result = self.tree.add_watch(spec, baseline);
                    self.publish();
                    // The id first: a sink may wait for its caller to register the watch
                    // before it takes the watch's events.
                    let _ = reply.send(result);
                    // Catch-up events go out now: with in-band wake-ups the reader may next
                    // block in read() until the kernel has something.
                    self.send_batch();
                }
                Ok(Command::Snapshot(id, reply)) => {
                    let _ = reply.send(self.tree.snapshot(id));
                }
                Ok(Command::SnapshotChanges(id, reply)) => {
                    let _ = reply.send(self.tree.snapshot_changes(id));
                }
                Ok(Command::Remove(id, reply)) => {
                    let removed = self.tree.remove_watch(id);
                    self.publish();
                    let _ = reply.send(removed);
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn send_batch(&mut self) {
        self.publish();
        send_batch(&mut self.tree, &mut self.sink, &self.stopper);
    }

    /// Makes the watch count known to [`Engine::watch_count`], before each batch goes to a
    /// sink that may block for long (a journal on a full disk), so that it never waits.
    fn publish(&self) {
        self.watches
            .store(self.tree.watch_count(), Ordering::Release);
        *self.gaps.lock().unwrap_or_else(|e| e.into_inner()) = self.tree.gaps();
    }
}

fn send_batch(tree: &mut Tree, sink: &mut Sink, stopper: &Stopper) {
    if tree.out.is_empty() {
        return;
    }
    let flow = sink(&mut tree.out);
    tree.out.clear();
    if flow == Flow::Stop {
        stopper.stop.store(true, Ordering::SeqCst);
    }
}
