//! Talking to a daemon from outside through its pid file: `stop` and `status`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::identity::{self, ProcessIdentity};
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
    #[error(
        "the pid file {} is locked by pid {pid} ({}), which is not the inotifier daemon that \
         uses it: it was not signalled. Find out what holds the file (`fuser {}`); once it \
         lets go, inotifier can start again",
        pid_file.display(), exe.as_deref().map_or("its program is unknown".into(),
        |exe| exe.display().to_string()), pid_file.display()
    )]
    NotTheDaemon {
        pid_file: PathBuf,
        pid: i32,
        exe: Option<PathBuf>,
    },
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
    verify_daemon(pid_file, pid)?;
    let identity = ProcessIdentity::of(pid);
    let started = std::time::Instant::now();
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
    if released_rx.recv_timeout(timeout).is_err() {
        return Ok(StopOutcome::StillRunning { pid });
    }
    // The lock goes a moment before the process does: stopped means exited (when its /proc
    // entry could be read to tell).
    let exited = || {
        identity
            .as_ref()
            .is_none_or(|identity| identity.has_exited(pid))
    };
    while !exited() {
        if started.elapsed() >= timeout {
            return Ok(StopOutcome::StillRunning { pid });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(StopOutcome::Stopped { pid })
}

/// What `inotifier status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusReport {
    Running {
        pid: i32,
        /// The daemon's own report; `None` if its status file could not be read.
        status: Option<Box<Status>>,
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
            let status = verify_daemon(pid_file, pid)?;
            let uptime = status.as_ref().and_then(|status| {
                let started = SystemTime::UNIX_EPOCH + Duration::from_secs(status.started);
                SystemTime::now().duration_since(started).ok()
            });
            Ok(StatusReport::Running {
                pid,
                status: status.map(Box::new),
                uptime,
            })
        }
    }
}

/// Checks that `pid`, which holds the lock of `pid_file`, is the daemon: the process that
/// wrote the status file beside it (same pid, executable and start time) or, before the
/// daemon wrote one, a process of this very program. Returns the daemon's status.
fn verify_daemon(pid_file: &Path, pid: i32) -> Result<Option<Status>, ControlError> {
    let holder = ProcessIdentity::of(pid);
    let status = status::read(&status::status_path(pid_file))
        .ok()
        .filter(|status| status.pid == pid);
    let is_daemon = match (&holder, status.as_ref().and_then(|s| s.identity.as_ref())) {
        (Some(holder), Some(recorded)) => {
            holder.start_ticks == recorded.start_ticks
                && identity::same_program(&holder.exe, &recorded.exe)
        }
        // A daemon that has not written its status yet (or one of another user, whose /proc
        // entries cannot be read): the same program as this one.
        _ => match (identity::executable(pid), std::env::current_exe()) {
            (Some(exe), Ok(own)) => identity::same_program(&exe, &own),
            _ => holder.is_none(),
        },
    };
    if !is_daemon {
        return Err(ControlError::NotTheDaemon {
            pid_file: pid_file.to_path_buf(),
            pid,
            exe: identity::executable(pid),
        });
    }
    Ok(status)
}
