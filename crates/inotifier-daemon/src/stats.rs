//! Counters a running daemon keeps and `status` shows.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    seen: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    abandoned: AtomicU64,
    batches: AtomicU64,
    behind: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Events read from the kernel or synthesized, after each watch's mask.
    pub seen: u64,
    /// Successful deliveries (one event to one processor).
    pub delivered: u64,
    /// Deliveries given up: not retryable, or out of attempts.
    pub failed: u64,
    /// Attempts that failed and were tried again.
    pub retried: u64,
    /// Deliveries dropped because a stopping daemon ran out of drain time.
    pub abandoned: u64,
    /// Calls of processors, each with a batch of events: `delivered / batches` is how many
    /// events a call carried on average.
    pub batches: u64,
    /// Processors that fell behind and are catching up from the journal.
    pub behind: u64,
}

impl Stats {
    pub fn seen(&self, count: usize) {
        self.seen.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub fn delivered(&self, count: usize) {
        self.delivered.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub fn abandoned(&self, count: usize) {
        self.abandoned.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub fn batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fell_behind(&self) {
        self.behind.fetch_add(1, Ordering::Relaxed);
    }

    pub fn caught_up(&self) {
        self.behind.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            seen: self.seen.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            behind: self.behind.load(Ordering::Relaxed),
        }
    }
}
