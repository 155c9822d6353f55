//! Waiting for a child process with a deadline, and killing its process group.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits for `child` to exit for at most `timeout`: `Some(status)` once it exited (and was
/// reaped), `None` if it still runs. Sleeps in `poll` on a pidfd where the kernel has them
/// (Linux 5.3), else polls `try_wait`.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    // SAFETY: pidfd_open takes a pid and flags; the child is not reaped yet, so its pid is
    // still ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if fd >= 0 {
        // SAFETY: a new descriptor the kernel just gave us, owned from here on.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Rounded up, so that the last poll does not return early and spin.
            let ms = remaining
                .as_nanos()
                .div_ceil(1_000_000)
                .min(i32::MAX as u128) as i32;
            let mut poll_fd = libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll_fd, 1, ms) };
            if ready > 0 {
                return child.wait().map(Some);
            }
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            if ready == 0 && Instant::now() >= deadline {
                return child.try_wait();
            }
        }
    }
    let mut step = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(step.min(remaining));
        step = (step * 2).min(Duration::from_millis(50));
    }
}

/// Kills the process group `child` leads (it was spawned with `process_group(0)`) with
/// `SIGKILL`, then reaps the child. Processes of the group that outlive the child are killed
/// too and reaped by init, so nothing is left behind.
pub(crate) fn kill_group(child: &mut Child) -> io::Result<ExitStatus> {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill with a negative pid signals that process group; ours since the child, its
    // leader, is not reaped yet.
    if unsafe { libc::kill(-pgid, libc::SIGKILL) } != 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            // The group is there but could not be signalled: at least kill the child.
            let _ = child.kill();
        }
    }
    child.wait()
}

/// The name of a signal number, such as `SIGKILL`.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}
