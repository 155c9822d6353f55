//! How often and how long to retry a failed event.
//!
//! Attempts are counted from 1: attempt 1 is the first call of [`Processor::process`]. When
//! attempt `n` fails with a retryable error and `n < attempts`, the caller waits
//! [`RetryPolicy::delay`]`(n)` and makes attempt `n + 1`. [`RetryPolicy::run`] is that loop.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use inotifier_core::Event;

use crate::{ProcessError, Processor};

/// Exponential backoff with jitter: the wait after failed attempt `n` (1-based) is a random
/// time in `[delay/2, delay]`, where `delay = min(initial * multiplier^(n-1), max)`.
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

/// An event that failed for good: permanently, or on its last attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error} (after {attempts} attempt{})", if *.attempts == 1 { "" } else { "s" })]
pub struct RetryFailure {
    /// The error of the last attempt.
    pub error: ProcessError,
    /// How many attempts were made.
    pub attempts: u32,
}

impl RetryPolicy {
    /// The upper bound of the wait after failed attempt `attempt` (1-based), before jitter:
    /// `min(initial * multiplier^(attempt-1), max)`. A multiplier below 1 (or NaN) counts as 1.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let multiplier = if self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let seconds = self.initial.as_secs_f64() * multiplier.powi(exponent);
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// How long to wait after failed attempt `attempt` (1-based) before the next: a random
    /// time in `[backoff/2, backoff]` (see [`RetryPolicy::backoff`]), so that the retries of
    /// many events failing together spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let backoff = self.backoff(attempt);
        let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        let spread = nanos - half;
        let jitter = match spread.checked_add(1) {
            Some(range) => random() % range,
            None => random(),
        };
        Duration::from_nanos(half + jitter)
    }

    /// Whether to try again after `failures` attempts failed on the event itself (outages
    /// not counted), the last try having failed with `error`: the error is retryable and
    /// fewer than `attempts` attempts failed, or the destination is down
    /// ([`ProcessError::outage`]), which is waited out however long it lasts.
    pub fn should_retry(&self, failures: u32, error: &ProcessError) -> bool {
        error.retryable && (error.outage || failures < self.attempts)
    }

    /// Processes `event` with `processor` until it succeeds, fails permanently, or the
    /// attempts run out, calling `sleep` with each [`RetryPolicy::delay`] in between; `sleep`
    /// returns false to give up early (the daemon is stopping). Every failure is logged with
    /// its event: a warning when it will be retried, an error when it is final.
    ///
    /// Returns the number of attempts made.
    pub fn run(
        &self,
        processor: &dyn Processor,
        event: &Event,
        sleep: impl FnMut(Duration) -> bool,
    ) -> Result<u32, RetryFailure> {
        match processor.process(event) {
            Ok(()) => Ok(1),
            Err(error) => self.retry_failed(processor, event, error, sleep),
        }
    }

    /// Goes on where a first attempt that failed with `error` left off (as in a batch): the
    /// same logging, delays and limits as [`RetryPolicy::run`].
    pub fn retry_failed(
        &self,
        processor: &dyn Processor,
        event: &Event,
        mut error: ProcessError,
        mut sleep: impl FnMut(Duration) -> bool,
    ) -> Result<u32, RetryFailure> {
        // `tries` sets the backoff; `failures` counts only the failures of the event itself,
        // not those of an outage, against the policy's attempts.
        let mut tries = 1;
        let mut failures = u32::from(!error.outage);
        loop {
            let pathname = event.pathname();
            let pathname = String::from_utf8_lossy(pathname.as_os_str().as_bytes());
            if self.should_retry(failures, &error) {
                let delay = self.delay(tries);
                tracing::warn!(
                    event.id = event.id,
                    event.maskname = %event.maskname(),
                    event.pathname = %pathname,
                    attempt = tries,
                    outage = error.outage,
                    retry_in_ms = delay.as_millis() as u64,
                    "{error}"
                );
                if sleep(delay) {
                    tries += 1;
                    match processor.process(event) {
                        Ok(()) => return Ok(tries),
                        Err(next) => {
                            failures += u32::from(!next.outage);
                            error = next;
                        }
                    }
                    continue;
                }
            } else {
                tracing::error!(
                    event.id = event.id,
                    event.maskname = %event.maskname(),
                    event.pathname = %pathname,
                    attempt = tries,
                    retryable = error.retryable,
                    "{error}; giving up on the event"
                );
            }
            return Err(RetryFailure {
                error,
                attempts: tries,
            });
        }
    }
}

/// A xorshift64* generator per thread, seeded from the random keys std draws from the
/// operating system for hash maps: enough for jitter, no dependency.
fn random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish() | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
        }
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let policy = policy();
        let ms: Vec<u128> = (1..=6).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(1));
        let flat = RetryPolicy {
            multiplier: f64::NAN,
            ..policy.clone()
        };
        assert_eq!(flat.backoff(9), Duration::from_millis(100));
        let huge = RetryPolicy {
            initial: Duration::from_secs(60),
            ..policy
        };
        assert_eq!(
            huge.backoff(1),
            Duration::from_secs(1),
            "capped from the start"
        );
    }

    #[test]
    fn delays_are_jittered_within_half_and_full_backoff() {
        let policy = policy();
        for attempt in 1..=6 {
            let backoff = policy.backoff(attempt);
            let delays: Vec<Duration> = (0..200).map(|_| policy.delay(attempt)).collect();
            for delay in &delays {
                assert!(
                    *delay >= backoff / 2 && *delay <= backoff,
                    "{delay:?} outside [{:?}, {backoff:?}]",
                    backoff / 2
                );
            }
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(distinct.len() > 150, "jitter spreads the delays");
        }
        let zero = RetryPolicy {
            initial: Duration::ZERO,
            ..policy
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
        let forever = RetryPolicy {
            initial: Duration::MAX,
            max: Duration::MAX,
            ..RetryPolicy::default()
        };
        assert!(forever.delay(1) >= Duration::from_nanos(u64::MAX / 2));
    }

    #[test]
    fn only_retryable_errors_are_retried_and_only_while_attempts_remain() {
        let policy = policy();
        let retryable = ProcessError::retryable("503");
        let permanent = ProcessError::permanent("404");
        assert!(policy.should_retry(1, &retryable));
        assert!(policy.should_retry(3, &retryable));
        assert!(!policy.should_retry(4, &retryable), "4 attempts in all");
        assert!(!policy.should_retry(1, &permanent));
        let once = RetryPolicy {
            attempts: 1,
            ..policy
        };
        assert!(!once.should_retry(1, &retryable));
    }

    #[test]
    fn an_outage_is_retried_without_counting_against_the_attempts() {
        let policy = policy();
        let outage = ProcessError::outage("broker down");
        assert!(policy.should_retry(0, &outage));
        assert!(policy.should_retry(u32::MAX, &outage));

        /// Down for `outages` calls, then fails on the event itself once, then succeeds.
        struct Flaky {
            calls: std::sync::atomic::AtomicU32,
            outages: u32,
        }
        impl Processor for Flaky {
            fn process(&self, _: &Event) -> Result<(), ProcessError> {
                let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match call {
                    n if n < self.outages => Err(ProcessError::outage("down")),
                    n if n == self.outages => Err(ProcessError::retryable("500")),
                    _ => Ok(()),
                }
            }
        }
        let event = Event {
            id: 1,
            mask: inotifier_core::Mask::IN_CREATE,
            cookie: 0,
            wd: 1,
            path: std::sync::Arc::from(std::path::Path::new("/srv")),
            name: "a".into(),
            src_pathname: None,
            origin: inotifier_core::Origin::Kernel,
            time_ns: 0,
            watches: std::sync::Arc::from([]),
        };
        let two = RetryPolicy {
            attempts: 2,
            initial: Duration::ZERO,
            ..policy
        };
        let flaky = Flaky {
            calls: 0.into(),
            outages: 20,
        };
        let first = flaky.process(&event).unwrap_err();
        assert_eq!(two.retry_failed(&flaky, &event, first, |_| true), Ok(22));
        let once = RetryPolicy { attempts: 1, ..two };
        let flaky = Flaky {
            calls: 0.into(),
            outages: 3,
        };
        let first = flaky.process(&event).unwrap_err();
        let failure = once
            .retry_failed(&flaky, &event, first, |_| true)
            .unwrap_err();
        assert_eq!((failure.error.outage, failure.attempts), (false, 4));
    }

    #[test]
    fn threads_draw_different_jitter() {
        let policy = policy();
        let draws: Vec<Duration> = (0..4)
            .map(|_| {
                let policy = policy.clone();
                std::thread::spawn(move || policy.delay(6)).join().unwrap()
            })
            .collect();
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 1, "{draws:?}");
    }
}
