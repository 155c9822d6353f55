//! A counting semaphore for threads: at most N holders at once.

use std::sync::{Condvar, Mutex, MutexGuard};

pub(crate) struct Semaphore {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A held slot, given back on drop.
pub(crate) struct Permit<'a> {
    semaphore: &'a Semaphore,
}

impl Semaphore {
    pub(crate) fn new(slots: usize) -> Semaphore {
        Semaphore {
            free: Mutex::new(slots),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        // The count stays consistent whatever panicked: it is changed in one statement.
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Blocks until a slot is free, and takes it.
    pub(crate) fn acquire(&self) -> Permit<'_> {
        let mut free = self.lock();
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *free -= 1;
        Permit { semaphore: self }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.semaphore.lock() += 1;
        self.semaphore.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn at_most_n_hold_a_slot() {
        let semaphore = Semaphore::new(3);
        let holding = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        let _permit = semaphore.acquire();
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        holding.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(*semaphore.lock(), 3, "every slot given back");
    }
}
