//! The inotify engine of inotifier.
//!
//! One inotify instance for all watches, read by a dedicated thread into a large buffer. The
//! engine turns the kernel's stream into complete events: it watches directories as they
//! appear and reports what was created in them before their watch landed, pairs moves by
//! cookie (a paired `IN_MOVED_TO` carries `src_pathname`), keeps paths right when directories
//! move, and recovers from a kernel queue overflow by rescanning and diffing against its index.
//!
//! ```no_run
//! use inotifier_core::{Engine, EngineOptions, Mask, WatchSpec};
//!
//! let (engine, events) = Engine::start(EngineOptions::default())?;
//! engine.add_watch(WatchSpec::new("/srv/uploads", Mask::IN_CLOSE_WRITE).recursive(true))?;
//! for batch in events {
//!     for event in batch {
//!         println!("{} {}", event.maskname(), event.pathname().display());
//!     }
//! }
//! # Ok::<(), inotifier_core::Error>(())
//! ```
//!
//! # Synthesized events
//! Events the kernel could not send are synthesized, marked with [`Origin::Scan`] or
//! [`Origin::Rescan`] (and [`Origin::CatchUp`], below):
//! - a directory that appears inside a recursive watch (created or moved in) is watched, then
//!   listed recursively; every entry found gets an `IN_CREATE` (with `IN_ISDIR` for directories)
//!   and every regular file also an `IN_CLOSE_WRITE`, since it was most likely written before the
//!   watch landed. A creation both found by the scan and later reported by the kernel is
//!   reported once.
//! - after `IN_Q_OVERFLOW` (delivered first), every watched directory is listed again and
//!   compared with the index: new entries get `IN_CREATE` (+ `IN_CLOSE_WRITE` for files, and new
//!   directories are watched and scanned), vanished ones `IN_DELETE` (contents before their
//!   directory), files whose size or mtime changed `IN_MODIFY` + `IN_CLOSE_WRITE`, and entries
//!   whose ctime alone changed `IN_ATTRIB`. An entry replaced by another inode is reported as
//!   deleted and created. A file changed within two scheduler ticks of its last event may be
//!   reported modified once more: a spurious report is preferred to a lost one. A file whose
//!   creation or writes were reported but whose close was dropped gets `IN_CLOSE_WRITE`.
//!
//! # Catch-up after downtime
//! [`Engine::snapshot`] and [`Engine::snapshot_changes`] export what the engine knows of a
//! watched tree as [`SnapshotEntry`]s (path, inode, size, mtime, kind), in full once and then
//! incrementally, for a journal to persist. Given back to [`Engine::add_watch_with_baseline`] on
//! the next start, they let the engine report what changed while nobody watched, marked
//! [`Origin::CatchUp`]: creations (with `IN_CLOSE_WRITE` for files, so they become ready),
//! deletions, modifications, and renames recognised by inode as paired moves. See
//! [`snapshot`] and [`Engine::add_watch_with_baseline`].
//!
//! # The ready event
//! [`Mask::IN_READY`] is ours: a regular file is completely written (settled after its last close,
//! or renamed into place from a temporary name). A watch asking for it gets the events the
//! detector needs; a [`ready::ReadyStage`] between the engine and the consumer turns them into
//! ready events. See [`ready`].

pub mod duration;
mod engine;
mod error;
mod event;
pub mod filesystem;
pub mod glob;
pub mod json;
mod mask;
pub mod progress;
pub mod ready;
pub mod snapshot;
mod sys;
pub mod text;
mod tree;
mod wake;

pub use engine::{Batch, Engine, EngineOptions, Flow, RescanObserver, Sink, Stopper};
pub use error::{Error, Result};
pub use event::{Event, Origin, WatchId};
pub use glob::{Filters, Glob, GlobError};
pub use mask::{Mask, MaskParseError, valid_names, value_of_name};
pub use snapshot::{EntryKind, SnapshotChange, SnapshotEntry};
pub use sys::coarse_lag_ns as coarse_clock_lag_ns;
pub use tree::{Backend, BackendChoice, DEFAULT_POLL_INTERVAL, Gaps, PolledMount, WatchSpec};
