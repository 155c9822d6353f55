//! The environment processors take their secrets from (`broker_url_env`, `token_env`,
//! `secret_env`, ...): the daemon's process environment, except for the variables given for
//! one build with [`with_given`].
//!
//! The Django app gives `settings.CELERY_BROKER_URL` this way: its system checks must not
//! change `os.environ` (a check that exports a variable changes the process it runs in), so
//! both the check and the daemon hand the value over explicitly instead.

use std::cell::RefCell;
use std::env::VarError;
use std::ffi::OsString;

thread_local! {
    static GIVEN: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `build` with `given` in place of the process's values of those variables, on this
/// thread only (processors read their environment while they are built, never later).
pub fn with_given<T>(given: &[(String, String)], build: impl FnOnce() -> T) -> T {
    struct Restore(Vec<(String, String)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            GIVEN.with(|cell| *cell.borrow_mut() = std::mem::take(&mut self.0));
        }
    }
    let previous = GIVEN.with(|cell| cell.replace(given.to_vec()));
    let _restore = Restore(previous);
    build()
}

/// The variable `name`: the given value, else the process environment's.
pub fn var(name: &str) -> Result<String, VarError> {
    match given(name) {
        Some(value) => Ok(value),
        None => std::env::var(name),
    }
}

/// As [`var`], for a value that need not be UTF-8.
pub fn var_os(name: &str) -> Option<OsString> {
    given(name)
        .map(OsString::from)
        .or_else(|| std::env::var_os(name))
}

fn given(name: &str) -> Option<String> {
    GIVEN.with(|cell| {
        cell.borrow()
            .iter()
            .find(|(given, _)| given == name)
            .map(|(_, value)| value.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_value_is_read_instead_of_the_process_environment_and_only_during_the_build() {
        // PATH is set in every test process; this variable is not.
        let name = "INOTIFIER_ENVIRONMENT_TEST_UNSET";
        assert!(std::env::var_os(name).is_none());
        let given = [
            (name.to_string(), "amqp://broker".to_string()),
            ("PATH".to_string(), "/given".to_string()),
        ];
        let seen = with_given(&given, || (var(name), var("PATH"), var_os(name)));
        assert_eq!(seen.0.as_deref(), Ok("amqp://broker"));
        assert_eq!(seen.1.as_deref(), Ok("/given"));
        assert_eq!(seen.2, Some(OsString::from("amqp://broker")));
        assert_eq!(var(name), Err(VarError::NotPresent));
        assert_eq!(var("PATH").ok(), std::env::var("PATH").ok());
    }

    #[test]
    fn the_given_values_are_restored_after_a_panic() {
        let name = "INOTIFIER_ENVIRONMENT_TEST_PANIC";
        let given = [(name.to_string(), "x".to_string())];
        let outcome = std::panic::catch_unwind(|| with_given(&given, || panic!("in the build")));
        assert!(outcome.is_err());
        assert_eq!(var(name), Err(VarError::NotPresent));
    }
}
