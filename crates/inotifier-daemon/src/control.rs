//! Talking to a daemon from outside through its pid file: `stop` and `status`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::pidfile::{self, Holder, PidFileError};
use crate::status::{self, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The daemon drained, released its pid file and exited.
    Stopped {
        pid: i32,
    },
    NotRunning {
        stale_pid: Option<i32>,
    },
    /// SIGTERM was sent, but the daemon still holds its pid file after the timeout.
    StillRunning {
        pid: i32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error("cannot signal pid {pid}: {source}")]
    Signal {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
}

/// Sends SIGTERM to the daemon holding `pid_file` and waits, up to `timeout`, until it has
/// released it. Only the process the kernel says holds the lock is signalled.
pub fn stop(pid_file: &Path, timeout: Duration) -> Result<StopOutcome, ControlError> {
    let pid = match pidfile::probe(pid_file)? {
        Holder::NotRunning { stale_pid } => return Ok(StopOutcome::NotRunning { stale_pid }),
        Holder::Running { pid } => pid,
    };
    // Start waiting for the lock before signalling, so its release cannot be missed.
    let (released_tx, released_rx) = mpsc::channel();
    let path = pid_file.to_path_buf();
    std::thread::spawn(move || {
        let _ = released_tx.send(pidfile::wait_released(&path));
    });
    // SAFETY: kill(2) of the pid holding our lock.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let source = std::io::Error::last_os_error();
        if source.raw_os_error() != Some(libc::ESRCH) {
            return Err(ControlError::Signal { pid, source });
        }
    }
    match released_rx.recv_timeout(timeout) {
        Ok(_) => Ok(StopOutcome::Stopped { pid }),
        Err(_) => Ok(StopOutcome::StillRunning { pid }),
    }
}

/// What `inotifier status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusReport {
    Running {
        pid: i32,
        /// The daemon's own report; `None` if its status file could not be read.
        status: Option<Status>,
        uptime: Option<Duration>,
    },
    NotRunning {
        pid_file: PathBuf,
        stale_pid: Option<i32>,
    },
}

pub fn status(pid_file: &Path) -> Result<StatusReport, ControlError> {
    match pidfile::probe(pid_file)? {
        Holder::NotRunning { stale_pid } => Ok(StatusReport::NotRunning {
            pid_file: pid_file.to_path_buf(),
            stale_pid,
        }),
        Holder::Running { pid } => {
            let status = status::read(&status::status_path(pid_file))
                .ok()
                .filter(|status| status.pid == pid);
            let uptime = status.as_ref().and_then(|status| {
                let started = SystemTime::UNIX_EPOCH + Duration::from_secs(status.started);
                SystemTime::now().duration_since(started).ok()
            });
            Ok(StatusReport::Running {
                pid,
                status,
                uptime,
            })
        }
    }
}
