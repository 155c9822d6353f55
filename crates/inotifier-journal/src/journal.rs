//! The journal: opening it, appending, acknowledging, and what a restart redelivers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotifier_core::Event;
use rusqlite::{Connection, ErrorCode, TransactionBehavior, params};

use crate::acks::{self, Op, Pruning};
use crate::codec::{self, Decoder, EVENT_COLUMNS};
use crate::error::{JournalError, Result};
use crate::{file, schema};

/// Bytes of a dead letter's error kept.
const MAX_ERROR_LEN: usize = 4096;

/// Where the journal lives and how it behaves.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub path: PathBuf,
    /// Acknowledged events kept for `replay`: the newest `retain` events stay; older ones go
    /// once every processor has acknowledged them.
    pub retain: usize,
    /// How long acknowledgements gather before the background writer commits them together.
    pub commit_interval: Duration,
}

impl JournalOptions {
    pub fn new(path: impl Into<PathBuf>) -> JournalOptions {
        JournalOptions {
            path: path.into(),
            retain: 100_000,
            commit_interval: Duration::from_millis(10),
        }
    }
}

/// A processor's stable number in this journal, from [`Journal::processor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessorId(pub(crate) u32);

impl ProcessorId {
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The durable journal. `Send + Sync`: share it with `Arc<Journal>`. Dropping it commits the
/// queued acknowledgements and stops its writer thread.
pub struct Journal {
    pub(crate) shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    /// One connection for every write of this process: a mutex hands it over without the
    /// sleeps of SQLite's busy handler, which two connections of one process would suffer.
    /// Lock order: `conn`, then `queue`.
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    wake: Condvar,
    next_id: AtomicU64,
    instance: u64,
    retain: usize,
    commit_interval: Duration,
    pruning: Pruning,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    stop: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere left the data consistent (SQLite rolls back an unfinished transaction).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// Opens the journal at `options.path`, creating it (mode 0600) if it does not exist.
    pub fn open(options: &JournalOptions) -> Result<Journal> {
        let path = options.path.clone();
        if file::prepare(&path)? == file::Found::Missing {
            create(&path)?;
        }
        let mut conn = schema::connect(&path)?;
        schema::ensure(&path, &mut conn, false)?;
        let next_id = read_next_id(&path, &conn)?;
        let instance = schema::instance(&path, &conn)?;
        let shared = Arc::new(Shared {
            path,
            conn: Mutex::new(conn),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            next_id: AtomicU64::new(next_id),
            instance,
            retain: options.retain,
            commit_interval: options.commit_interval,
            pruning: Pruning::default(),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || shared.write_loop())
                .map_err(|e| JournalError::io(&options.path, e))?
        };
        Ok(Journal {
            shared,
            writer: Some(writer),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A random number drawn when the journal was made. Event ids are numbered per journal, so
    /// a journal made anew (reset, or recovered with nothing salvaged) numbers from 1 again:
    /// message ids join this to the event id, so that they never repeat.
    pub fn instance(&self) -> u64 {
        self.shared.instance
    }

    /// One more than the largest id ever appended: ids are never reused, even once their
    /// events are pruned or purged.
    pub fn next_event_id(&self) -> u64 {
        self.shared.next_id.load(Ordering::Acquire)
    }

    /// The id of the processor named `key` (e.g. `jsonl@/srv/in`), registered on first use;
    /// the same key gets the same id after a restart.
    pub fn processor(&self, key: &str) -> Result<ProcessorId> {
        self.shared.with_conn(|conn| {
            conn.prepare_cached("INSERT OR IGNORE INTO processors (key) VALUES (?1)")?
                .execute([key])?;
            let id: u32 = conn
                .prepare_cached("SELECT id FROM processors WHERE key = ?1")?
                .query_row([key], |row| row.get(0))?;
            Ok(ProcessorId(id))
        })
    }

    /// Appends `batch`, each event with the processors it must reach, in one transaction:
    /// when this returns, the events are on disk. Events routed to no processor are not
    /// stored (their ids still count for [`Journal::next_event_id`]). Acknowledgements queued
    /// meanwhile are committed in the same transaction.
    ///
    /// Ids must be unique (number the engine from [`Journal::next_event_id`], and give
    /// derived events such as `IN_READY`, which the engine leaves at 0, ids of their own): an
    /// id appended before is [`JournalError::DuplicateId`]. On any error nothing of the batch
    /// is stored; a transient one ([`JournalError::is_transient`]) can be retried with the
    /// same batch.
    pub fn append(&self, batch: &[(&Event, &[ProcessorId])]) -> Result<()> {
        let shared = &*self.shared;
        let mut conn = lock(&shared.conn);
        let ops = shared.take_ops();
        let mut current = 0u64;
        let mut max = 0u64;
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert_event = tx.prepare_cached(
                    "INSERT INTO events (id, mask, cookie, wd, path, name, src, origin, time_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                // OR IGNORE: a processor listed twice for one event is one delivery.
                let mut insert_delivery = tx.prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (event, processor) VALUES (?1, ?2)",
                )?;
                for (event, processors) in batch {
                    max = max.max(event.id);
                    if processors.is_empty() {
                        continue;
                    }
                    current = event.id;
                    insert_event.execute(params![
                        event.id as i64,
                        event.mask.0,
                        event.cookie,
                        event.wd,
                        codec::bytes(&event.path),
                        event.name_bytes(),
                        event.src_pathname.as_deref().map(codec::bytes),
                        event.origin.as_str(),
                        event.time_ns,
                    ])?;
                    for processor in *processors {
                        insert_delivery.execute(params![event.id as i64, processor.0])?;
                    }
                }
                if max > 0 {
                    tx.prepare_cached(
                        "UPDATE meta SET value = max(value, ?1) WHERE key = 'next_event_id'",
                    )?
                    .execute([max as i64 + 1])?;
                }
                acks::apply(&tx, &ops, &shared.pruning)?;
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                if max > 0 {
                    shared.next_id.fetch_max(max + 1, Ordering::AcqRel);
                }
                Ok(())
            }
            Err(e) => {
                shared.restore_ops(ops);
                if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
                    return Err(JournalError::DuplicateId {
                        path: shared.path.clone(),
                        id: current,
                    });
                }
                Err(JournalError::sqlite(&shared.path, e, schema::errno(&conn)))
            }
        }
    }

    /// Appends `events` as pending for the processor `key`, renumbered from
    /// [`Journal::next_event_id`] (their own ids belong to another journal or none), in
    /// batches. Returns the first and last ids given, `None` for no event. A running daemon
    /// delivers them at its next start.
    pub fn import(&self, key: &str, mut events: Vec<Event>) -> Result<Option<(u64, u64)>> {
        const BATCH: usize = 4096;
        let processors = [self.processor(key)?];
        let first = self.next_event_id();
        for (offset, event) in events.iter_mut().enumerate() {
            event.id = first + offset as u64;
        }
        for chunk in events.chunks(BATCH) {
            let batch: Vec<(&Event, &[ProcessorId])> =
                chunk.iter().map(|event| (event, &processors[..])).collect();
            self.append(&batch)?;
        }
        Ok(events.last().map(|last| (first, last.id)))
    }

    /// Records that `processor` handled `event_id`. Does not block: the writer thread commits
    /// acknowledgements every `commit_interval` (or the next `append` does). One lost in a
    /// crash means a redelivery, never a loss.
    pub fn ack(&self, processor: ProcessorId, event_id: u64) {
        self.shared.push(Op::Ack {
            processor: processor.0,
            event: event_id,
        });
    }

    /// Records that `processor` gave up on `event_id` after `attempts` attempts: it is no
    /// longer pending, and waits in the dead-letter list for `retry_dead` or `purge`.
    pub fn dead_letter(&self, processor: ProcessorId, event_id: u64, attempts: u32, error: &str) {
        // An error can quote a whole response body; the list shows what matters.
        let mut end = error.len().min(MAX_ERROR_LEN);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        self.shared.push(Op::Dead {
            processor: processor.0,
            event: event_id,
            attempts,
            error: error[..end].to_owned(),
        });
    }

    /// Reads the whole file (`PRAGMA quick_check`): slow on a large journal, so not done on
    /// open; for `inotifier journal check`. A damaged file is [`JournalError::Corrupt`].
    pub fn check(&self) -> Result<()> {
        let problems: Vec<String> = self.shared.with_conn(|conn| {
            conn.prepare("PRAGMA quick_check(20)")?
                .query_map([], |row| row.get(0))?
                .collect()
        })?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(JournalError::Corrupt {
            path: self.shared.path.clone(),
            detail: problems.join("; "),
        })
    }

    /// Copies the WAL into the journal file and truncates it to nothing, giving its disk
    /// space back: what a daemon on a full disk does before it tries again.
    pub fn shrink_wal(&self) -> Result<()> {
        self.shared
            .with_conn(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
    }

    /// Returns once every `ack` and `dead_letter` made before the call is committed.
    pub fn flush(&self) -> Result<()> {
        let mut conn = lock(&self.shared.conn);
        self.shared.commit_queued(&mut conn)
    }

    /// The events `processor` has not acknowledged and that are not dead, in id order: what a
    /// restart redelivers. They count as handed over: [`Journal::take_requeued`] does not
    /// return them again. Their `watches` are empty: the journal routes by processor.
    pub fn pending(&self, processor: ProcessorId) -> Result<Vec<Event>> {
        self.pending_from(processor, 0, usize::MAX)
    }

    /// How many events `processor` has not acknowledged and are not dead.
    pub fn pending_count(&self, processor: ProcessorId) -> Result<u64> {
        self.shared.with_conn(|conn| {
            conn.prepare_cached(&format!(
                "SELECT count(*) FROM deliveries WHERE processor = ?1 AND state < 2 AND state = {}",
                schema::PENDING
            ))?
            .query_row([processor.0], |row| row.get::<_, i64>(0))
            .map(|count| count as u64)
        })
    }

    /// The events routed to `processor` that were read from `since_ns` on (their `time_ns`),
    /// pending or acknowledged (not dead: those were never delivered), as long as retained: what a restart's catch-up
    /// need not report again where the disk has not changed since.
    pub fn journaled_since(&self, processor: ProcessorId, since_ns: i64) -> Result<Vec<Event>> {
        self.shared.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event
                 WHERE d.processor = ?1 AND d.state <> {} AND e.time_ns >= ?2",
                schema::DEAD
            ))?;
            let mut decoder = Decoder::default();
            stmt.query_map(params![processor.0, since_ns], |row| decoder.event(row, 0))?
                .collect()
        })
    }

    /// [`Journal::pending`] a page at a time: at most `limit` events with ids from `from` on.
    /// After a long outage a processor can have millions pending; the daemon need not hold
    /// them all in memory.
    pub fn pending_from(
        &self,
        processor: ProcessorId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let from = from.min(i64::MAX as u64) as i64;
        let limit = limit.min(i64::MAX as usize) as i64;
        self.shared.with_tx(|tx| {
            let events = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event
                     WHERE d.processor = ?1 AND d.state < 2 AND d.state = {}
                     AND d.event >= ?2 ORDER BY d.event LIMIT ?3",
                    schema::PENDING
                ))?;
                let mut decoder = Decoder::default();
                stmt.query_map(params![processor.0, from, limit], |row| {
                    decoder.event(row, 0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            if let Some(last) = events.last() {
                tx.prepare_cached(
                    "UPDATE deliveries SET requeued = 0
                     WHERE processor = ?1 AND requeued <> 0 AND event BETWEEN ?2 AND ?3",
                )?
                .execute(params![processor.0, from, last.id as i64])?;
            }
            Ok(events)
        })
    }

    /// The events `inotifier journal retry` or `replay` made pending again since the last
    /// call, each returned once, in id order. The daemon polls this while it runs.
    pub fn take_requeued(&self) -> Result<Vec<(ProcessorId, Event)>> {
        // Polled every second: a read (on an empty partial index) most of the time, not a
        // write transaction that would contend with the admin commands.
        let any = self.shared.with_conn(|conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM deliveries WHERE requeued <> 0)")?
                .query_row([], |row| row.get::<_, bool>(0))
        })?;
        if !any {
            return Ok(Vec::new());
        }
        self.shared.with_tx(|tx| {
            let events = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT d.processor, {EVENT_COLUMNS}
                     FROM deliveries d JOIN events e ON e.id = d.event
                     WHERE d.requeued <> 0 AND d.state = {}
                     ORDER BY d.event, d.processor",
                    schema::PENDING
                ))?;
                let mut decoder = Decoder::default();
                stmt.query_map([], |row| {
                    Ok((ProcessorId(row.get(0)?), decoder.event(row, 1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.prepare_cached("UPDATE deliveries SET requeued = 0 WHERE requeued <> 0")?
                .execute([])?;
            Ok(events)
        })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Makes a new journal at `path`, whole: its tables are written under a temporary name, then
/// linked into place (which fails if something appeared there meanwhile). A file at `path`
/// therefore always was a journal, and one without tables lost its content.
fn create(path: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let companion = file::companion(path, suffix);
        if std::fs::symlink_metadata(&companion).is_ok() {
            return Err(JournalError::Lost {
                path: path.to_path_buf(),
                detail: format!(
                    "the journal file is missing but {} is there",
                    companion.display()
                ),
            });
        }
    }
    let making = file::companion(path, &format!(".new-{}", std::process::id()));
    let cleanup = |making: &Path| {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(file::companion(making, suffix));
        }
    };
    cleanup(&making);
    let made = (|| {
        file::create_new(&making)?;
        let mut conn = schema::connect(&making)?;
        schema::ensure(&making, &mut conn, true)?;
        // Closing the only connection checkpoints the WAL into the file and removes it.
        conn.close()
            .map_err(|(conn, e)| JournalError::sqlite(&making, e, schema::errno(&conn)))?;
        match std::fs::hard_link(&making, path) {
            // A filesystem without hard links: a rename, which would replace a file that
            // appeared meanwhile, checked for just before.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(JournalError::io(path, e));
                }
                std::fs::rename(&making, path).map_err(|e| JournalError::io(path, e))
            }
            linked => linked.map_err(|e| JournalError::io(path, e)),
        }
    })();
    cleanup(&making);
    made?;
    tracing::info!(path = %path.display(), "journal: created");
    Ok(())
}

fn read_next_id(path: &Path, conn: &Connection) -> Result<u64> {
    // The last page of `events` is read here: part of the cheap corruption check on open.
    conn.query_row(
        "SELECT max((SELECT value FROM meta WHERE key = 'next_event_id'),
                    coalesce((SELECT max(id) FROM events), 0) + 1)",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|id| id.max(1) as u64)
    .map_err(|e| JournalError::sqlite(path, e, schema::errno(conn)))
}

impl Shared {
    fn push(&self, op: Op) {
        let mut queue = lock(&self.queue);
        let was_empty = queue.ops.is_empty();
        queue.ops.push(op);
        drop(queue);
        // Only the first op of a group wakes the writer: a notify is a syscall.
        if was_empty {
            self.wake.notify_one();
        }
    }

    fn take_ops(&self) -> Vec<Op> {
        std::mem::take(&mut lock(&self.queue).ops)
    }

    /// Puts back ops whose commit failed, ahead of any queued since: order matters (an ack
    /// after a dead letter of the same event must win).
    fn restore_ops(&self, mut ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let mut queue = lock(&self.queue);
        ops.append(&mut queue.ops);
        queue.ops = ops;
    }

    /// Commits the queued ops. Called with the connection locked, which makes every op queued
    /// before the lock was taken either committed or in the queue.
    fn commit_queued(&self, conn: &mut Connection) -> Result<()> {
        let ops = self.take_ops();
        if ops.is_empty() {
            return Ok(());
        }
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            acks::apply(&tx, &ops, &self.pruning)?;
            tx.commit()
        })();
        result.map_err(|e| {
            self.restore_ops(ops);
            JournalError::sqlite(&self.path, e, schema::errno(conn))
        })
    }

    /// Runs `f` on the connection, after committing the queued ops so that it sees them (a
    /// failure to commit them is left to the writer thread to retry).
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = lock(&self.conn);
        let _ = self.commit_queued(&mut conn);
        f(&mut conn).map_err(|e| JournalError::sqlite(&self.path, e, schema::errno(&conn)))
    }

    /// [`Shared::with_conn`] inside one write transaction, so that other processes' writes
    /// do not interleave.
    pub(crate) fn with_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// The writer thread: commits queued ops at most every `commit_interval`, prunes, and on
    /// stop commits what is left.
    fn write_loop(&self) {
        let mut last_commit = Instant::now();
        let mut last_prune = Instant::now();
        let mut failures = 0u32;
        loop {
            let stop = {
                let mut queue = lock(&self.queue);
                // Wait for the first op of a group (waking each second to prune).
                while queue.ops.is_empty() && !queue.stop && !self.prune_due(last_prune) {
                    queue = self
                        .wake
                        .wait_timeout(queue, Duration::from_secs(1))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                // Then let the group gather until the interval since the last commit is over;
                // a failing disk stretches it (up to a second) so as not to spin.
                let wait = if failures == 0 {
                    self.commit_interval
                } else {
                    (self.commit_interval * 2u32.saturating_pow(failures.min(10)))
                        .min(Duration::from_secs(1))
                        .max(self.commit_interval)
                };
                let deadline = last_commit + wait;
                while !queue.stop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    queue = self
                        .wake
                        .wait_timeout(queue, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                queue.stop
            };
            let mut conn = lock(&self.conn);
            match self.commit_queued(&mut conn) {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "journal: committing acknowledgements failed; retrying");
                    }
                }
            }
            last_commit = Instant::now();
            if failures == 0 && self.prune_due(last_prune) {
                last_prune = Instant::now();
                if let Err(e) = self.prune(&mut conn) {
                    tracing::warn!(error = %e, "journal: pruning acknowledged events failed");
                }
            }
            drop(conn);
            if stop {
                break;
            }
        }
    }

    /// Pruning reads back `retain` ids to find the cut: worth it after a good share of that
    /// many acknowledgements, or a second after the last pass.
    fn prune_due(&self, last_prune: Instant) -> bool {
        let acked = self.pruning.acked_since.load(Ordering::Relaxed);
        acked > 0
            && (acked >= (self.retain as u64 / 8).max(4096)
                || last_prune.elapsed() >= Duration::from_secs(1))
    }

    fn prune(&self, conn: &mut Connection) -> Result<()> {
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let floor = acks::prune(&tx, self.retain, &self.pruning)?;
            tx.commit()?;
            Ok(floor)
        })();
        match result {
            Ok(Some(floor)) => {
                self.pruning.floor.store(floor, Ordering::Relaxed);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(JournalError::sqlite(&self.path, e, schema::errno(conn))),
        }
    }
}
