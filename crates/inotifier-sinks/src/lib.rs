//! The processors inotifier runs natively, and the contract every processor follows.
//!
//! | kind | does | module |
//! | --- | --- | --- |
//! | `log` | one human-readable line per event on the daemon's stdout | [`log`] |
//! | `jsonl` | appends each event as a JSON line to a file | [`jsonl`] |
//! | `exec` | runs a program per event, from an argv template, never through a shell | [`exec`] |
//! | `webhook` | POSTs each event as JSON, optionally signed with HMAC-SHA256 | [`webhook`] |
//!
//! Each module documents its options. A processor is made by [`build`] from its kind and
//! options (a table of the configuration), and [`validate`] checks them without side effects
//! for `inotifier check`:
//!
//! ```
//! use std::path::Path;
//! use serde_json::json;
//!
//! let options = json!({"argv": ["true", "{pathname}"], "timeout": "5s"});
//! let processor = inotifier_sinks::build("exec", options.as_object().unwrap(), Path::new("/etc"))?;
//! let error = inotifier_sinks::validate("exec", json!({"argvv": []}).as_object().unwrap(), Path::new("/"))
//!     .unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "unknown option `argvv` for processor exec: expected one of argv, cwd, env, clear_env, timeout, max_concurrent"
//! );
//! # drop(processor);
//! # Ok::<(), inotifier_sinks::BuildError>(())
//! ```
//!
//! # Options common to all
//! - Durations are strings such as `"30s"`, `"500ms"`, `"2m"`, `"1h"`, or numbers of seconds
//!   (`30`, `0.5`); they must be more than zero.
//! - Relative paths are taken from `base_dir`: the directory of the configuration file.
//! - An unknown option is an error that lists the valid ones; so is an option of the wrong
//!   type, naming it.
//!
//! # Failures and retries
//! The daemon's router calls [`Processor::process`] from its worker threads: events of one
//! file in order, different files concurrently. A processor reports a failure as a
//! [`ProcessError`], retryable or permanent; the router logs it with the event and retries it
//! per the watch's [`RetryPolicy`] (exponential backoff with jitter), as
//! [`RetryPolicy::run`] does. A processor never panics on a failure and never stops the
//! daemon.

mod child;
pub mod environment;
mod error;
pub mod exec;
pub mod identity;
pub mod jsonl;
pub mod log;
pub mod options;
mod retry;
mod semaphore;
pub mod template;
mod text;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;

pub use error::BuildError;
pub use retry::{RetryFailure, RetryPolicy};

use inotifier_core::Event;
use serde_json::{Map, Value};

/// A kind of processor: its name, how it is made from its options, and how its options are
/// checked without making it (no file opened for writing, no connection). The crates that
/// provide processors each list theirs in a table of these (this crate's [`KINDS`]); the daemon
/// joins the tables into the one registry that running, `inotifier check` and the Django
/// checks all read.
#[derive(Clone, Copy)]
pub struct ProcessorKind {
    pub name: &'static str,
    pub build: BuildFn,
    pub validate: ValidateFn,
}

/// Makes a processor from its options.
pub type BuildFn =
    fn(&Map<String, Value>, BuildContext<'_>) -> Result<Arc<dyn Processor>, BuildError>;

/// Checks a processor's options, relative to the configuration's directory.
pub type ValidateFn = fn(&Map<String, Value>, &Path) -> Result<(), BuildError>;

impl std::fmt::Debug for ProcessorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProcessorKind").field(&self.name).finish()
    }
}

/// This crate's processors: `log`, `jsonl`, `exec`, `webhook`.
pub const KINDS: &[ProcessorKind] = &[
    ProcessorKind {
        name: log::NAME,
        build: |options, _| Ok(Arc::new(log::LogProcessor::build(options)?)),
        validate: |options, _| log::LogProcessor::validate(options),
    },
    ProcessorKind {
        name: jsonl::NAME,
        build: |options, context| {
            Ok(Arc::new(jsonl::JsonlProcessor::build(
                options,
                context.base_dir,
            )?))
        },
        validate: jsonl::JsonlProcessor::validate,
    },
    ProcessorKind {
        name: exec::NAME,
        build: |options, context| {
            Ok(Arc::new(exec::ExecProcessor::build(
                options,
                context.base_dir,
            )?))
        },
        validate: exec::ExecProcessor::validate,
    },
    ProcessorKind {
        name: webhook::NAME,
        build: |options, context| {
            Ok(Arc::new(
                webhook::WebhookProcessor::build(options, context.base_dir)?
                    .with_journal(context.journal),
            ))
        },
        validate: webhook::WebhookProcessor::validate,
    },
];

/// The kind named `name` in `kinds`, or the error listing those there are.
pub fn find_kind<'k>(
    kinds: &[&'k ProcessorKind],
    name: &str,
) -> Result<&'k ProcessorKind, BuildError> {
    kinds
        .iter()
        .copied()
        .find(|kind| kind.name == name)
        .ok_or_else(|| BuildError::UnknownProcessor {
            kind: name.to_string(),
            expected: kinds.iter().map(|kind| kind.name).collect(),
        })
}

/// Something that does the work for the events of a watch.
pub trait Processor: Send + Sync {
    /// Handles one event. Called concurrently for different files, in order for one file.
    fn process(&self, event: &Event) -> Result<(), ProcessError>;

    /// Handles `events` in order, all for the same watch, and stops at the first failure, or
    /// before any event when `go_on(done)` says false (a stopping daemon out of time).
    /// `go_on(done)` also tells the caller that the first `done` events are handled for good:
    /// they are acknowledged in the journal then, not only once the whole batch is through,
    /// so that a crash mid-batch delivers again only what was not done. Processors whose cost
    /// is per call rather than per event (one Python GIL acquisition, one broker round trip)
    /// override it; the default calls [`Processor::process`] for each.
    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn(usize) -> bool) -> BatchOutcome {
        for (done, event) in events.iter().enumerate() {
            if !go_on(done) {
                return BatchOutcome::stopped(done);
            }
            if let Err(error) = self.process(event) {
                return BatchOutcome::failed(done, error);
            }
        }
        BatchOutcome::all(events.len())
    }

    /// Flushes whatever the processor buffers; called once when the daemon stops or the watch is
    /// removed, after the last `process`.
    fn close(&self) {}
}

/// What [`Processor::process_batch`] did: the first `processed` events succeeded; the next one,
/// if any, failed with `failure` and none after it was tried (without a failure, the batch was
/// stopped there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub processed: usize,
    pub failure: Option<ProcessError>,
}

impl BatchOutcome {
    pub fn all(count: usize) -> BatchOutcome {
        BatchOutcome {
            processed: count,
            failure: None,
        }
    }

    pub fn stopped(processed: usize) -> BatchOutcome {
        BatchOutcome {
            processed,
            failure: None,
        }
    }

    pub fn failed(processed: usize, failure: ProcessError) -> BatchOutcome {
        BatchOutcome {
            processed,
            failure: Some(failure),
        }
    }
}

/// Why a processor failed on an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProcessError {
    pub message: String,
    /// Whether trying again may succeed (a connection refused, a 5xx, a timeout); a bad request
    /// or a missing program will not.
    pub retryable: bool,
    /// Whether the destination itself is unreachable (a broker that is down), rather than
    /// this event failing there: such a failure is retried for as long as it lasts, without
    /// counting against the event's attempts, so an outage never dead-letters events.
    pub outage: bool,
}

impl ProcessError {
    pub fn retryable(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: true,
            outage: false,
        }
    }

    /// The destination cannot be reached at all (see [`ProcessError::outage`]).
    pub fn outage(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: true,
            outage: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: false,
            outage: false,
        }
    }
}

/// What building a processor takes besides its options.
#[derive(Clone, Copy, Debug)]
pub struct BuildContext<'a> {
    /// Where relative paths in the options start: the config file's directory (Django's
    /// `PROJECT_PATH`).
    pub base_dir: &'a Path,
    /// The instance id of the journal the events come from ([`identity`]); `None` without one.
    pub journal: Option<u64>,
}

impl<'a> BuildContext<'a> {
    /// No journal.
    pub fn at(base_dir: &'a Path) -> BuildContext<'a> {
        BuildContext {
            base_dir,
            journal: None,
        }
    }
}

impl<'a> From<&'a Path> for BuildContext<'a> {
    fn from(base_dir: &'a Path) -> BuildContext<'a> {
        BuildContext::at(base_dir)
    }
}

/// Makes the processor `kind` of this crate from its `options`. Opens what the processor needs
/// (the `jsonl` file); see each module for its options.
pub fn build<'a>(
    kind: &str,
    options: &Map<String, Value>,
    context: impl Into<BuildContext<'a>>,
) -> Result<Arc<dyn Processor>, BuildError> {
    let kinds: Vec<&ProcessorKind> = KINDS.iter().collect();
    (find_kind(&kinds, kind)?.build)(options, context.into())
}

/// Checks what [`build`] checks, without its side effects: no file is created or opened for
/// writing, no connection made.
pub fn validate(
    kind: &str,
    options: &Map<String, Value>,
    base_dir: &Path,
) -> Result<(), BuildError> {
    let kinds: Vec<&ProcessorKind> = KINDS.iter().collect();
    (find_kind(&kinds, kind)?.validate)(options, base_dir)
}
