//! The processors inotifier runs natively, and the contract every processor follows.
//!
//! The daemon's router calls [`Processor::process`] from its worker threads: events of one file
//! in order, different files concurrently. A processor reports a failure as a
//! [`ProcessError`]; the router logs it with the event and retries it per the watch's
//! [`RetryPolicy`] when it is retryable.

mod retry;

pub use retry::RetryPolicy;

use inotifier_core::Event;

/// Something that does the work for the events of a watch.
pub trait Processor: Send + Sync {
    /// Handles one event. Called concurrently for different files, in order for one file.
    fn process(&self, event: &Event) -> Result<(), ProcessError>;

    /// Flushes whatever the processor buffers; called once when the daemon stops or the watch is
    /// removed, after the last `process`.
    fn close(&self) {}
}

/// Why a processor failed on an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProcessError {
    pub message: String,
    /// Whether trying again may succeed (a connection refused, a 5xx, a timeout); a bad request
    /// or a missing program will not.
    pub retryable: bool,
}

impl ProcessError {
    pub fn retryable(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> ProcessError {
        ProcessError {
            message: message.into(),
            retryable: false,
        }
    }
}
