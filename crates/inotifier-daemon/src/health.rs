//! What makes a running daemon degraded: conditions that last until they heal, such as
//! reading paused on a full journal disk, owed events the journal cannot read, directories
//! that could not be watched, a watch whose root is gone. The part of the daemon that sees a
//! condition sets it, under a key of its own, and clears it once it no longer holds; `status`
//! shows every one held (its state then `degraded`).

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Health {
    problems: Mutex<BTreeMap<String, String>>,
}

impl Health {
    /// Holds `message` under `key` (replacing what that key said); true if the key was not
    /// held before.
    pub fn set(&self, key: impl Into<String>, message: impl Into<String>) -> bool {
        self.lock().insert(key.into(), message.into()).is_none()
    }

    /// Clears `key`; true if it was held.
    pub fn clear(&self, key: &str) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Clears every key that starts with `prefix` (the conditions of one watch, say).
    pub fn clear_prefix(&self, prefix: &str) {
        self.lock().retain(|key, _| !key.starts_with(prefix));
    }

    /// Whether `key` is held.
    pub fn holds(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// How many keys that start with `prefix` are held.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.lock()
            .keys()
            .filter(|key| key.starts_with(prefix))
            .count()
    }

    /// The messages held, in key order.
    pub fn problems(&self) -> Vec<String> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.problems.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_held_until_cleared_each_under_its_key() {
        let health = Health::default();
        assert!(health.set("journal", "reading paused: journal disk full"));
        assert!(!health.set("journal", "reading paused: journal not writable"));
        assert!(health.set("watch:/srv:root", "/srv is gone"));
        assert_eq!(
            health.problems(),
            ["reading paused: journal not writable", "/srv is gone"]
        );
        health.clear_prefix("watch:/srv:");
        assert!(health.clear("journal"));
        assert!(!health.clear("journal"));
        assert!(health.problems().is_empty());
    }
}
