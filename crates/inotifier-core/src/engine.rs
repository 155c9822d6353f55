//! The engine: one inotify instance read by a dedicated thread, which owns the watch tree and
//! sends events in batches over a bounded channel. A consumer that falls behind blocks the
//! reader instead of growing memory; the kernel queue then overflows, and the tree recovers by
//! rescanning.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::{Event, WatchId};
use crate::sys::{self, EventFd, Inotify, RawEvents};
use crate::tree::{Tree, WatchSpec};

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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            read_buffer_size: 256 * 1024,
            channel_batches: 16,
            max_batch_events: 8192,
            move_window: Duration::from_millis(20),
        }
    }
}

/// A batch of events; each is the result of one read from the kernel (or part of a large scan).
pub type Batch = Vec<Event>;

enum Command {
    Add(WatchSpec, mpsc::Sender<Result<WatchId>>),
    Remove(WatchId, mpsc::Sender<Result<()>>),
    Count(mpsc::Sender<usize>),
}

/// Stops the engine from any thread, e.g. a signal handler thread.
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    waker: Arc<EventFd>,
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
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Creates the inotify instance and starts the reader thread. Events arrive on the returned
    /// receiver, which closes once the engine has stopped.
    pub fn start(options: EngineOptions) -> Result<(Engine, Receiver<Batch>)> {
        let inotify = Inotify::new().map_err(instance_error)?;
        let waker = Arc::new(EventFd::new().map_err(|e| Error::io("cannot create an eventfd", e))?);
        let stopper = Stopper {
            stop: Arc::new(AtomicBool::new(false)),
            waker: waker.clone(),
        };
        let (command_tx, command_rx) = mpsc::channel();
        let (batch_tx, batch_rx) = mpsc::sync_channel(options.channel_batches.max(1));
        let reader = Reader {
            tree: Tree::new(inotify, options.move_window),
            commands: command_rx,
            batches: batch_tx,
            stopper: stopper.clone(),
            buffer: vec![0; options.read_buffer_size.max(4096)],
            max_batch_events: options.max_batch_events.max(1),
        };
        let thread = std::thread::Builder::new()
            .name("inotifier-reader".into())
            .spawn(move || reader.run())
            .map_err(|e| Error::io("cannot start the reader thread", e))?;
        Ok((
            Engine {
                commands: command_tx,
                stopper,
                thread: Some(thread),
            },
            batch_rx,
        ))
    }

    /// Adds a watch; returns once every directory of it is watched and indexed.
    pub fn add_watch(&self, spec: WatchSpec) -> Result<WatchId> {
        self.call(|reply| Command::Add(spec, reply))?
    }

    /// Removes a watch; directories no other watch covers stop being watched.
    pub fn remove_watch(&self, id: WatchId) -> Result<()> {
        self.call(|reply| Command::Remove(id, reply))?
    }

    /// How many kernel watches (directories and files) are in place.
    pub fn watch_count(&self) -> Result<usize> {
        self.call(Command::Count)
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
    tree: Tree,
    commands: mpsc::Receiver<Command>,
    batches: SyncSender<Batch>,
    stopper: Stopper,
    buffer: Vec<u8>,
    max_batch_events: usize,
}

impl Reader {
    fn run(mut self) {
        if let Err(error) = self.read_loop() {
            tracing::error!("inotify reader stopped: {error}");
        }
        // Moves still waiting for their pair are final now.
        self.tree.expire_moves(Instant::now(), true);
        self.send_batch();
    }

    fn read_loop(&mut self) -> io::Result<()> {
        let inotify_fd = self.tree.inotify().as_raw_fd();
        let waker_fd = self.stopper.waker.as_raw_fd();
        loop {
            let timeout = match self.tree.next_move_deadline() {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Round up so the deadline has passed when poll returns.
                    left.as_millis().min(i32::MAX as u128) as i32 + 1
                }
                None => -1,
            };
            let ready = sys::poll_two(inotify_fd, waker_fd, timeout)?;
            if ready.second {
                self.stopper.waker.clear();
                if self.stopper.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                if !self.run_commands() {
                    return Ok(());
                }
            }
            if ready.first {
                self.drain_kernel_queue()?;
            }
            self.tree.expire_moves(Instant::now(), false);
            self.send_batch();
            if self.stopper.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
        }
    }

    /// Reads until the kernel queue is empty, sending one batch per read.
    fn drain_kernel_queue(&mut self) -> io::Result<()> {
        loop {
            let length = self.tree.inotify().read(&mut self.buffer)?;
            if length == 0 {
                return Ok(());
            }
            self.tree.tick();
            for raw in RawEvents::new(&self.buffer[..length]) {
                self.tree.handle(raw);
                if self.tree.out.len() >= self.max_batch_events {
                    send_batch(&mut self.tree, &self.batches);
                }
            }
            self.send_batch();
            if self.stopper.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }

    /// Runs queued commands; false once every handle to the engine is gone.
    fn run_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Add(spec, reply)) => {
                    let result = self.tree.add_watch(spec);
                    let _ = reply.send(result);
                }
                Ok(Command::Remove(id, reply)) => {
                    let _ = reply.send(self.tree.remove_watch(id));
                }
                Ok(Command::Count(reply)) => {
                    let _ = reply.send(self.tree.watch_count());
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn send_batch(&mut self) {
        send_batch(&mut self.tree, &self.batches);
    }
}

fn send_batch(tree: &mut Tree, batches: &SyncSender<Batch>) {
    if tree.out.is_empty() {
        return;
    }
    let batch = std::mem::take(&mut tree.out);
    // A consumer that hung up just stops receiving; the reader goes on until stopped.
    let _ = batches.send(batch);
}
