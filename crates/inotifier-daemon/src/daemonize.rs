//! Turning `inotifier start` into a background daemon the classic way: fork, `setsid`, fork
//! again, output to files. The first process waits on a pipe until the daemon reports that its
//! watches are in place (or why it failed), so its exit status tells the truth.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Which side of the fork this is.
pub enum Role {
    /// The process the user started; the daemon's outcome is known.
    Starter(StartOutcome),
    /// The daemon: report readiness on the pipe (see `RunOptions::readiness_pipe`).
    Daemon(File),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Ready { pid: i32, kernel_watches: usize },
    Failed(String),
}

/// Opens a daemon output file: appended to, created with mode 0640, never through a symlink.
pub fn open_output(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))
}

/// Forks the daemon. Must be called before this process starts any thread: only the calling
/// thread survives a fork.
pub fn daemonize(stdout: Option<&Path>, stderr: Option<&Path>) -> io::Result<Role> {
    let stdout = stdout.map(open_output).transpose()?;
    let stderr = stderr.map(open_output).transpose()?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and belong to nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: fork with no other thread running (the caller's contract).
    let first = unsafe { libc::fork() };
    if first < 0 {
        return Err(io::Error::last_os_error());
    }
    if first > 0 {
        drop(write_end);
        let mut status = 0;
        // SAFETY: reaping the intermediate child we just forked.
        unsafe { libc::waitpid(first, &mut status, 0) };
        return Ok(Role::Starter(read_outcome(File::from(read_end))));
    }

    // The intermediate child: a new session without a controlling terminal, then a second
    // fork so that the daemon is not a session leader and can never acquire one.
    drop(read_end);
    // SAFETY: setsid/fork/_exit in the single-threaded child.
    unsafe {
        if libc::setsid() < 0 {
            libc::_exit(1);
        }
        match libc::fork() {
            -1 => libc::_exit(1),
            0 => {}
            _ => libc::_exit(0),
        }
        libc::umask(0o027);
        let root = CString::new(Path::new("/").as_os_str().as_bytes()).expect("no NUL");
        libc::chdir(root.as_ptr());
    }
    let null_fd = null.into_raw_fd();
    let out_fd = stdout.map(IntoRawFd::into_raw_fd).unwrap_or(null_fd);
    let err_fd = stderr.map(IntoRawFd::into_raw_fd).unwrap_or(null_fd);
    // SAFETY: dup2 onto the standard descriptors of this (single-threaded) process.
    unsafe {
        libc::dup2(null_fd, 0);
        libc::dup2(out_fd, 1);
        libc::dup2(err_fd, 2);
    }
    Ok(Role::Daemon(keep_only_standard_and(write_end)))
}

/// Closes every descriptor but 0, 1, 2 and `kept`, which becomes descriptor 3: whatever the
/// caller had open (a pipe `inotifier start 5>&1 | cat` waits on, a socket, a lock) is not held
/// for the daemon's whole life.
fn keep_only_standard_and(kept: OwnedFd) -> File {
    const KEPT: i32 = 3;
    let fd = kept.into_raw_fd();
    // SAFETY: dup2/fcntl/close_range on descriptors of this single-threaded process; `fd` is
    // ours, and 3 is either `fd` itself or taken over (anything there is the caller's).
    unsafe {
        if fd != KEPT {
            libc::dup2(fd, KEPT);
        }
        libc::fcntl(KEPT, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::close_range(KEPT as u32 + 1, u32::MAX, 0);
        File::from_raw_fd(KEPT)
    }
}

fn read_outcome(mut pipe: File) -> StartOutcome {
    let mut text = String::new();
    let _ = pipe.read_to_string(&mut text);
    let line = text.lines().next().unwrap_or("");
    if let Some(rest) = line.strip_prefix("READY ") {
        let mut fields = rest.split_whitespace();
        let pid = fields.next().and_then(|f| f.parse().ok());
        let kernel_watches = fields.next().and_then(|f| f.parse().ok());
        if let (Some(pid), Some(kernel_watches)) = (pid, kernel_watches) {
            return StartOutcome::Ready {
                pid,
                kernel_watches,
            };
        }
    }
    match line.strip_prefix("ERROR ") {
        Some(message) => StartOutcome::Failed(message.to_string()),
        None => StartOutcome::Failed(
            "the daemon exited before its watches were in place; see its stderr file".into(),
        ),
    }
}
