//! How often and how long to retry a failed event.

use std::time::Duration;

/// Exponential backoff with jitter: attempt `n` (1-based) waits a random time in
/// `[delay/2, delay]`, where `delay = min(initial * multiplier^(n-1), max)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
        }
    }
}
