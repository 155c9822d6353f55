//! inotifier's journal: a durable record of every event routed to a processor, so that each
//! processor receives each event at least once, across crashes, restarts and outages.
//!
//! One SQLite file (SQLite compiled in, nothing to install), in WAL mode with
//! `synchronous = FULL`, mode 0600 (as are its `-wal` and `-shm`), never opened through a
//! symlink.
//!
//! # Guarantees: what is durable when
//!
//! - [`Journal::append`] returns once its whole batch is committed and the WAL fsynced: one
//!   transaction per call, so a batch of 4096 events costs one fsync (group commit). The
//!   daemon appends before it delivers, so a crash after `append` loses nothing.
//! - [`Journal::ack`] and [`Journal::dead_letter`] only queue. A writer thread commits the
//!   queue every `commit_interval` (10 ms by default), and the next `append` commits it in
//!   its own transaction. A crash loses at most the last interval's acknowledgements: those
//!   events are delivered again after the restart (at least once, never lost). Each keeps its
//!   id, so a consumer can deduplicate. [`Journal::flush`] waits for the queue to be
//!   committed (at stop).
//! - After a restart, [`Journal::pending`] (or [`Journal::pending_from`], a page at a time)
//!   gives each processor what it had not acknowledged; while the daemon runs,
//!   [`Journal::take_requeued`] gives it what `inotifier journal retry` and `replay` made
//!   pending again.
//! - Ids are never reused: [`Journal::next_event_id`] is above every id ever appended, even
//!   once those events are pruned or purged.
//! - Pending and dead-lettered deliveries are never pruned. Acknowledged events stay for
//!   [`Journal::replay`]: the newest `retain` events are kept, older ones go once every
//!   processor has acknowledged them.
//!
//! # Schema (version [`SCHEMA_VERSION`], in `PRAGMA user_version`)
//!
//! - `meta(key, value)`: `next_event_id`, the high-water mark of ids.
//! - `processors(id, key, last_acked)`: one row per processor key (`jsonl@/srv/in`), with
//!   the highest id it acknowledged.
//! - `events(id, mask, cookie, wd, path, name, src, origin, time_ns)`: the events; `path`,
//!   `name` and `src` are the raw bytes of the names, `origin` the text of
//!   `Origin::as_str`.
//! - `deliveries(event, processor, state, attempts, error, requeued)`: one row per event and
//!   processor it is routed to; `state` 0 pending, 1 dead, 2 acknowledged; `requeued` marks
//!   rows made pending again by `retry` or `replay` for the running daemon to pick up. A
//!   partial index covers only the open (pending, dead) rows.
//! - `snapshot_roots(watch, saved_ns)` and `snapshot(watch, path, inode, size, mtime_ns,
//!   kind)`: each watched tree as last seen, for the catch-up after downtime.
//!
//! A journal with a larger `user_version` was written by a newer inotifier: opening it is a
//! [`JournalError::Version`] error.
//!
//! # Errors and recovery
//!
//! A full disk ([`JournalError::Full`]), a read-only file or filesystem
//! ([`JournalError::ReadOnly`]) and a lock held too long ([`JournalError::Busy`]) are
//! transient ([`JournalError::is_transient`]): the daemon stops reading and retries, and the
//! kernel's queue (then the overflow rescan) holds the events meanwhile.
//!
//! A corrupt journal is [`JournalError::Corrupt`], never reset silently. Opening checks
//! SQLite's header, the schema and the last page of the events, which stays fast however
//! large the journal; damage elsewhere shows as `Corrupt` on the first read that meets it,
//! or on [`Journal::check`], which reads the whole file.
//! The recovery is
//!
//! ```text
//! inotifier journal recover --journal PATH
//! ```
//!
//! ([`Journal::recover`]), with the daemon stopped: it moves the damaged file to
//! `PATH.corrupt-<unix time>` (with its `-wal`), reads every table it can (row by row, up to
//! the first damaged page of each; the events of open deliveries also one by one), and writes
//! a fresh journal with what it read. Its report says what was salvaged and what was lost.

mod acks;
mod admin;
mod backlog;
mod codec;
mod error;
mod file;
mod inspect;
mod journal;
mod lock;
mod recover;
mod schema;
mod snapshot;

pub use admin::{Entry, ProcessorSummary, State};
pub use backlog::{Backlog, BacklogReader};
pub use error::{JournalError, Result};
pub use inspect::Inspection;
pub use journal::{Journal, JournalOptions, ProcessorId};
pub use lock::JournalLock;
pub use recover::RecoverReport;
pub use schema::VERSION as SCHEMA_VERSION;
pub use snapshot::{EntryKind, SnapshotChange, SnapshotEntry};
