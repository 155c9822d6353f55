//! A daemon's life in the foreground: pid file, watches, readiness, signals, drain, exit.
//!
//! SIGTERM and SIGINT stop it (reading stops, what was read is delivered until the drain
//! deadline); SIGHUP reloads the configuration. The signals are blocked in every thread and
//! taken synchronously by the calling thread, which also refreshes the status file.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use inotifier_metrics::{Metrics, MetricsError, MetricsServer};

use crate::config::Config;
use crate::daemon::{Daemon, DaemonError, ProcessorFactory};
use crate::identity::ProcessIdentity;
use crate::notify::Notifier;
use crate::pidfile::{PidFile, PidFileError};
use crate::status::{self, Status};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("cannot block signals: {0}")]
    Signals(#[source] io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Reads the configuration again on SIGHUP; an error message keeps the old one running.
pub type Reloader = Box<dyn FnMut() -> Result<Config, String>>;

pub struct RunOptions {
    pub notifier: Notifier,
    /// Written `READY <pid> <kernel watches>` or `ERROR <message>` once the outcome of the
    /// start is known: how `inotifier start` learns whether its daemon came up.
    pub readiness_pipe: Option<File>,
    pub reload: Option<Reloader>,
}

/// The signals the lifecycle takes synchronously.
pub fn block_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: signal set manipulation on a local set, then pthread_sigmask on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

/// Waits up to `timeout` for one of the signals in `set`.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: sigtimedwait with a valid set and timeout; no siginfo wanted.
    let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
    (signal > 0).then_some(signal)
}

/// Runs a daemon until SIGTERM or SIGINT. Call before this process starts any thread of its
/// own: the signals must be blocked in all of them.
pub fn run(
    config: Config,
    factory: Arc<dyn ProcessorFactory>,
    mut options: RunOptions,
) -> Result<(), RunError> {
    let result = run_inner(config, factory, &mut options);
    if let (Err(error), Some(pipe)) = (&result, options.readiness_pipe.as_mut()) {
        let _ = writeln!(pipe, "ERROR {}", error.to_string().replace('\n', " "));
    }
    result
}

fn run_inner(
    config: Config,
    factory: Arc<dyn ProcessorFactory>,
    options: &mut RunOptions,
) -> Result<(), RunError> {
    inherit_nothing();
    let signals = block_signals().map_err(RunError::Signals)?;
    let pid_file = PidFile::acquire(&config.daemon.pid_file)?;
    let status_path = status::status_path(pid_file.path());
    let metrics = Arc::new(Metrics::new());
    // Before the watches: a port that is taken is a start error, not a daemon without metrics.
    let metrics_server = match config.metrics.listen {
        Some(address) => {
            let refresh = crate::metrics::refresh(config.journal.path.clone());
            match MetricsServer::start(address, metrics.clone(), refresh) {
                Ok(server) => Some(server),
                Err(error) => {
                    pid_file.remove();
                    return Err(error.into());
                }
            }
        }
        None => None,
    };
    let drain_timeout = config.daemon.drain_timeout;
    let mut status = Status {
        pid: std::process::id() as i32,
        state: "starting".into(),
        started: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        config: config.source.clone(),
        watches: config.watches.len(),
        kernel_watches: 0,
        events_seen: 0,
        delivered: 0,
        failed: 0,
        retried: 0,
        abandoned: 0,
        batches: 0,
        behind: 0,
        identity: ProcessIdentity::current(),
        problems: Vec::new(),
        watch_reports: Vec::new(),
        journal: config.journal.path.clone(),
        metrics: metrics_server
            .as_ref()
            .map(|server| server.address().to_string()),
    };
    write_status(&status_path, &status);
    let mut daemon = match Daemon::start_with_metrics(config, factory, metrics.clone()) {
        Ok(daemon) => daemon,
        Err(error) => {
            let _ = std::fs::remove_file(&status_path);
            pid_file.remove();
            return Err(error.into());
        }
    };
    let refresh = |status: &mut Status, daemon: &Daemon, state: &str| {
        status.problems = daemon.problems();
        status.state = match state {
            "running" if !status.problems.is_empty() => "degraded".into(),
            state => state.into(),
        };
        status.watches = daemon.config().watches.len();
        status.kernel_watches = daemon.kernel_watches();
        status.set_counters(daemon.counters());
        status.watch_reports = daemon.watch_reports();
        metrics.set_ready(status.state == "running" || status.state == "degraded");
        metrics.set_degradation(daemon.degradation());
        metrics.set_kernel_watches(status.kernel_watches, crate::metrics::watch_limit());
        write_status(&status_path, status);
    };
    refresh(&mut status, &daemon, "running");
    tracing::info!(
        "ready: {} watches, {} kernel watches, pid {}",
        status.watches,
        status.kernel_watches,
        status.pid
    );
    options.notifier.report(&format!(
        "READY=1\nMAINPID={}\nSTATUS=watching {} paths",
        status.pid, status.watches
    ));
    if let Some(mut pipe) = options.readiness_pipe.take() {
        let _ = writeln!(pipe, "READY {} {}", status.pid, status.kernel_watches);
    }

    let stop_signal = loop {
        match wait_signal(&signals, Duration::from_secs(1)) {
            None => refresh(&mut status, &daemon, "running"),
            Some(libc::SIGHUP) => {
                options
                    .notifier
                    .report(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                refresh(&mut status, &daemon, "reloading");
                reload(&mut daemon, options.reload.as_mut());
                refresh(&mut status, &daemon, "running");
                options.notifier.report(&format!(
                    "READY=1\nSTATUS=watching {} paths",
                    daemon.config().watches.len()
                ));
            }
            Some(signal) => break signal,
        }
    };
    tracing::info!(
        "{} received: stopping; delivering what was read for up to {drain_timeout:?}",
        signal_name(stop_signal)
    );
    options.notifier.report("STOPPING=1");
    refresh(&mut status, &daemon, "stopping");
    let complete = daemon.stop(Instant::now() + drain_timeout);
    if !complete {
        tracing::warn!(
            "the drain deadline ({drain_timeout:?}) passed before every event was delivered"
        );
    }
    drop(metrics_server);
    let _ = std::fs::remove_file(&status_path);
    pid_file.remove();
    tracing::info!("stopped");
    Ok(())
}

fn reload(daemon: &mut Daemon, reloader: Option<&mut Reloader>) {
    let Some(reloader) = reloader else {
        tracing::warn!("SIGHUP received, but this daemon has no configuration to reload");
        return;
    };
    let config = match reloader() {
        Ok(config) => config,
        Err(message) => {
            tracing::error!("reload rejected, the running configuration stays: {message}");
            return;
        }
    };
    match daemon.reload(config) {
        Ok(summary) => tracing::info!(
            "reloaded: {} added, {} removed, {} changed, {} unchanged",
            summary.added,
            summary.removed,
            summary.changed,
            summary.unchanged
        ),
        Err(error) => {
            tracing::error!("reload rejected, the running configuration stays: {error}")
        }
    }
}

/// Marks every descriptor this process was started with (but 0, 1, 2) close-on-exec: the
/// commands the exec processor runs get the standard three only, not a pipe or socket of
/// whoever started the daemon. Descriptors opened from here on are close-on-exec already
/// (Rust's and Python's defaults, and SQLite's).
fn inherit_nothing() {
    // SAFETY: a plain system call; it only sets flags on this process's descriptors.
    let rc = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if rc != 0 {
        tracing::warn!(
            "cannot mark inherited descriptors close-on-exec ({}): commands run by the exec \
             processor may inherit them",
            std::io::Error::last_os_error()
        );
    }
}

fn write_status(path: &std::path::Path, status: &Status) {
    if let Err(error) = status::write(path, status) {
        tracing::warn!("cannot write the status file {}: {error}", path.display());
    }
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
