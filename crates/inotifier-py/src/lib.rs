//! `inotifier._native`: the Rust side of the Django app (the distribution `django-inotifier`).
//!
//! - the event mask constants and parsing (`parse_mask`, `mask_name`, `valid_mask_names`);
//! - `run_daemon`: the daemon of `manage.py inotifier_start`, in this process, with Python
//!   processors called on the router's worker threads;
//! - `stop` and `status`: the daemon from outside, through its pid file;
//! - `Watcher`: the engine read from Python without the daemon (`inotifier.watch`/`awatch`);
//! - the daemon's log lines as Python log records when `LOGGING` handles them (`log_bridge`).
//!
//! Built by maturin (`pyproject.toml` at the repository root) as an abi3 module for Python 3.10
//! and later. The Python package `inotifier` wraps it; see `python/inotifier/`.

mod config;
mod doctor;
mod event;
mod journal;
mod log_bridge;
mod processor;
mod thread_state;
mod watcher;

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inotifier_core::{Glob, Mask};
use inotifier_daemon::control::{self, StatusReport, StopOutcome};
use inotifier_daemon::lifecycle::{self, RunOptions};
use inotifier_daemon::notify::Notifier;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use processor::PythonProcessors;

pyo3::create_exception!(
    _native,
    DaemonError,
    PyRuntimeError,
    "The daemon could not start or stopped on an error."
);

/// `"IN_CREATE|IN_DELETE"`, `"create,delete"`, `"ALL_EVENTS"`, `"0x100"` -> the mask's value.
/// A ValueError names the bad word and lists the valid names.
#[pyfunction]
fn parse_mask(text: &str) -> PyResult<u32> {
    text.parse::<Mask>()
        .map(Mask::bits)
        .map_err(|error| PyValueError::new_err(error.to_string()))
}

/// The names of the bits of `mask` as pyinotify writes them: `IN_CREATE|IN_ISDIR`.
#[pyfunction]
fn mask_name(mask: u32) -> String {
    Mask(mask).name()
}

/// Every event name `parse_mask` accepts (with the `IN_` prefix).
#[pyfunction]
fn valid_mask_names() -> Vec<&'static str> {
    inotifier_core::valid_names().collect()
}

/// The names of the processors the daemon runs natively (`log`, `jsonl`, `exec`, `webhook`,
/// `celery`, `redis_stream`, `jetstream`).
#[pyfunction]
fn native_processors() -> Vec<&'static str> {
    inotifier_daemon::processors::native_processors().to_vec()
}

/// Why the native processor `kind` cannot be built from `options_json` (relative paths taken
/// from `base_dir`; the variables of `environment` read instead of the process's), or None
/// when it can: `("invalid", message)` for a mistake in the options, `("unavailable",
/// message)` when only this machine lacks what they name (a file, an environment variable).
/// Creates and opens nothing.
#[pyfunction]
#[pyo3(signature = (kind, options_json, base_dir, environment=None))]
fn native_processor_error(
    kind: &str,
    options_json: &str,
    base_dir: PathBuf,
    environment: Option<std::collections::BTreeMap<String, String>>,
) -> Option<(&'static str, String)> {
    let options =
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(options_json) {
            Ok(options) => options,
            Err(error) => {
                return Some((
                    "invalid",
                    format!("the options are not a JSON object: {error}"),
                ));
            }
        };
    let environment: Vec<_> = environment.unwrap_or_default().into_iter().collect();
    inotifier_sinks::environment::with_given(&environment, || {
        inotifier_daemon::processors::validate(kind, &options, &base_dir)
    })
    .err()
    .map(|error| {
        let kind = if error.is_unavailable() {
            "unavailable"
        } else {
            "invalid"
        };
        (kind, error.to_string())
    })
}

/// The Python logger the daemon's bridge gives an event of the Rust `target`, in a delivery by
/// a processor of kind `processor` when given (see docs/django.md, Logging).
#[pyfunction]
#[pyo3(signature = (target, processor=None))]
fn logger_name(target: &str, processor: Option<&str>) -> String {
    log_bridge::logger_name(target, processor).into_owned()
}

/// The `extra` key (the log record's attribute) of an event's field `name`.
#[pyfunction]
fn log_extra_key(name: &str) -> String {
    log_bridge::extra_key(name).into_owned()
}

/// Why `text` is not an address and port (`127.0.0.1:9464`, `[::1]:9464`), or None when it is.
#[pyfunction]
fn socket_address_error(text: &str) -> Option<String> {
    text.parse::<std::net::SocketAddr>().err().map(|_| {
        format!(
            "{text:?} is not an address and port such as \"127.0.0.1:9464\" (IPv6: \"[::1]:9464\")"
        )
    })
}

/// The status of the daemon of `pid_file` as the JSON document of `inotifier status --json`
/// (docs/metrics.md).
#[pyfunction]
fn status_json(py: Python<'_>, pid_file: PathBuf) -> PyResult<String> {
    py.detach(|| {
        let report =
            control::status(&pid_file).map_err(|error| DaemonError::new_err(error.to_string()))?;
        let document = inotifier_daemon::report::document(&pid_file, &report);
        serde_json::to_string_pretty(&document)
            .map_err(|error| PyValueError::new_err(error.to_string()))
    })
}

/// Why `pattern` is not a valid glob, or None when it is.
#[pyfunction]
fn glob_error(pattern: &str) -> Option<String> {
    Glob::new(pattern).err().map(|error| error.to_string())
}

/// Runs the daemon in this process until SIGTERM or SIGINT, then delivers what was read (up to
/// the drain timeout) and returns. `build(kind, options_json)` makes the processor object of a
/// watch, which is called with each `inotifier.Event`.
///
/// `readiness_fd`, when given, is the write end of a pipe this function takes ownership of (it
/// is closed when the function returns, whatever happened):
/// `READY <pid> <kernel watches>` or `ERROR <message>` is written to it once the start's
/// outcome is known (how `inotifier_start` learns whether its daemonized child came up).
///
/// No thread of this process may run when it is called (other than threads it starts itself):
/// SIGTERM is blocked and taken by the calling thread, and a thread that does not block it
/// would be killed by it instead.
#[pyfunction]
#[pyo3(signature = (config_json, build, readiness_fd=None, systemd_notify=false))]
fn run_daemon(
    py: Python<'_>,
    config_json: &str,
    build: Py<PyAny>,
    readiness_fd: Option<i32>,
    systemd_notify: bool,
) -> PyResult<()> {
    // SAFETY: the caller owns the descriptor and hands it over (documented above). Taken
    // first, so that every error from here on is reported through it.
    let mut readiness_pipe = readiness_fd.map(|fd| unsafe { File::from_raw_fd(fd) });
    let (config, native) = match config::from_json(config_json) {
        Ok(parsed) => parsed,
        Err(error) => {
            if let Some(pipe) = readiness_pipe.as_mut() {
                let _ = writeln!(pipe, "ERROR {}", error.to_string().replace('\n', " "));
            }
            return Err(PyValueError::new_err(error.to_string()));
        }
    };
    log_bridge::init(config.daemon.log_level);
    let notifier = if systemd_notify {
        // SAFETY: the documented contract of this function: no other thread runs yet (the
        // logging bridge's starts below).
        unsafe { Notifier::from_env() }
    } else {
        Notifier::disabled()
    };
    // Decided once: a project whose LOGGING handles `inotifier` gets the daemon's messages as
    // Python log records, any other keeps the standalone daemon's lines on stderr.
    let bridge = if log_bridge::python_logging_configured(py) {
        match log_bridge::Bridge::start(py) {
            Ok(bridge) => Some(bridge),
            Err(error) => {
                tracing::error!("{error}; logging to stderr");
                None
            }
        }
    } else {
        None
    };
    let factory = Arc::new(PythonProcessors { build, native });
    // The workers take the GIL for every batch: it must not be held while the daemon runs.
    py.detach(move || {
        let options = RunOptions {
            notifier,
            readiness_pipe,
            // The settings live in the Django process that started the daemon; a reload
            // would need a new process, so SIGHUP only logs that it does nothing.
            reload: None,
        };
        let result = lifecycle::run(config, factory, options);
        if let Some(bridge) = bridge {
            bridge.close();
        }
        result
    })
    .map_err(|error| DaemonError::new_err(error.to_string()))
}

/// Sends SIGTERM to the daemon holding `pid_file` (only to the process the kernel says holds its
/// lock) and waits up to `timeout` seconds. Returns `("stopped", pid)`,
/// `("still_running", pid)` or `("not_running", stale_pid_or_None)`.
#[pyfunction]
fn stop(py: Python<'_>, pid_file: PathBuf, timeout: f64) -> PyResult<(&'static str, Option<i32>)> {
    let timeout = Duration::try_from_secs_f64(timeout)
        .map_err(|_| PyValueError::new_err(format!("timeout {timeout} is not >= 0 seconds")))?;
    let outcome = py
        .detach(|| control::stop(&pid_file, timeout))
        .map_err(|error| DaemonError::new_err(error.to_string()))?;
    Ok(match outcome {
        StopOutcome::Stopped { pid } => ("stopped", Some(pid)),
        StopOutcome::StillRunning { pid } => ("still_running", Some(pid)),
        StopOutcome::NotRunning { stale_pid } => ("not_running", stale_pid),
    })
}

/// What the daemon of `pid_file` reports: a dict with `running` and, when it runs, `pid`,
/// `uptime` (seconds) and its counters when its status file could be read; `stale_pid` when it
/// does not run but its pid file names a process.
#[pyfunction]
fn status<'py>(py: Python<'py>, pid_file: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let report =
        control::status(&pid_file).map_err(|error| DaemonError::new_err(error.to_string()))?;
    let result = PyDict::new(py);
    match report {
        StatusReport::NotRunning { stale_pid, .. } => {
            result.set_item("running", false)?;
            result.set_item("stale_pid", stale_pid)?;
        }
        StatusReport::Running {
            pid,
            status,
            uptime,
        } => {
            result.set_item("running", true)?;
            result.set_item("pid", pid)?;
            result.set_item("uptime", uptime.map(|uptime| uptime.as_secs_f64()))?;
            if let Some(status) = status {
                result.set_item("state", status.state)?;
                result.set_item("watches", status.watches)?;
                result.set_item("kernel_watches", status.kernel_watches)?;
                result.set_item("events_seen", status.events_seen)?;
                result.set_item("delivered", status.delivered)?;
                result.set_item("failed", status.failed)?;
                result.set_item("retried", status.retried)?;
                result.set_item("batches", status.batches)?;
                result.set_item("behind", status.behind)?;
                result.set_item("problems", status.problems)?;
            }
        }
    }
    Ok(result)
}

const MASK_CONSTANTS: &[(&str, Mask)] = &[
    ("IN_ACCESS", Mask::IN_ACCESS),
    ("IN_MODIFY", Mask::IN_MODIFY),
    ("IN_ATTRIB", Mask::IN_ATTRIB),
    ("IN_CLOSE_WRITE", Mask::IN_CLOSE_WRITE),
    ("IN_CLOSE_NOWRITE", Mask::IN_CLOSE_NOWRITE),
    ("IN_OPEN", Mask::IN_OPEN),
    ("IN_MOVED_FROM", Mask::IN_MOVED_FROM),
    ("IN_MOVED_TO", Mask::IN_MOVED_TO),
    ("IN_CREATE", Mask::IN_CREATE),
    ("IN_DELETE", Mask::IN_DELETE),
    ("IN_DELETE_SELF", Mask::IN_DELETE_SELF),
    ("IN_MOVE_SELF", Mask::IN_MOVE_SELF),
    ("IN_UNMOUNT", Mask::IN_UNMOUNT),
    ("IN_Q_OVERFLOW", Mask::IN_Q_OVERFLOW),
    ("IN_IGNORED", Mask::IN_IGNORED),
    ("IN_READY", Mask::IN_READY),
    ("IN_ONLYDIR", Mask::IN_ONLYDIR),
    ("IN_DONT_FOLLOW", Mask::IN_DONT_FOLLOW),
    ("IN_EXCL_UNLINK", Mask::IN_EXCL_UNLINK),
    ("IN_MASK_CREATE", Mask::IN_MASK_CREATE),
    ("IN_MASK_ADD", Mask::IN_MASK_ADD),
    ("IN_ISDIR", Mask::IN_ISDIR),
    ("IN_ONESHOT", Mask::IN_ONESHOT),
    ("IN_CLOSE", Mask::IN_CLOSE),
    ("IN_MOVE", Mask::IN_MOVE),
    ("ALL_EVENTS", Mask::ALL_EVENTS),
];

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    for (name, mask) in MASK_CONSTANTS {
        module.add(*name, mask.bits())?;
    }
    module.add("DaemonError", module.py().get_type::<DaemonError>())?;
    module.add_function(wrap_pyfunction!(parse_mask, module)?)?;
    module.add_function(wrap_pyfunction!(mask_name, module)?)?;
    module.add_function(wrap_pyfunction!(valid_mask_names, module)?)?;
    module.add_function(wrap_pyfunction!(glob_error, module)?)?;
    module.add_function(wrap_pyfunction!(native_processors, module)?)?;
    module.add_function(wrap_pyfunction!(native_processor_error, module)?)?;
    module.add_function(wrap_pyfunction!(logger_name, module)?)?;
    module.add_function(wrap_pyfunction!(log_extra_key, module)?)?;
    module.add_function(wrap_pyfunction!(run_daemon, module)?)?;
    module.add_function(wrap_pyfunction!(stop, module)?)?;
    module.add_function(wrap_pyfunction!(status, module)?)?;
    module.add_function(wrap_pyfunction!(status_json, module)?)?;
    module.add_function(wrap_pyfunction!(socket_address_error, module)?)?;
    module.add_function(wrap_pyfunction!(doctor::doctor, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_summary, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_list, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_retry, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_purge, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_replay, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_check, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_recover, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_reset, module)?)?;
    module.add_function(wrap_pyfunction!(journal::journal_import, module)?)?;
    module.add_class::<watcher::Watcher>()?;
    module.add_class::<event::PyEvent>()?;
    Ok(())
}
