//! One daemon per journal: two daemons appending to one journal would each deliver every
//! event the other journaled, so each event would run twice. The daemon holds an exclusive
//! `flock` on a lock file beside the journal (`JOURNAL.lock`) for as long as it runs; the
//! admin commands, which are meant to run beside it, do not take it.
//!
//! A lock file of its own, not the journal: SQLite takes POSIX record locks on the database
//! file, and closing any descriptor of that file would drop them.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{JournalError, Result};
use crate::file;

/// Held for as long as it lives; the kernel releases the lock when the process ends, however
/// it ends.
#[derive(Debug)]
pub struct JournalLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl JournalLock {
    /// Locks the journal at `journal` for this process, or fails with
    /// [`JournalError::InUse`] naming the process that holds it.
    pub fn acquire(journal: &Path) -> Result<JournalLock> {
        let path = file::companion(journal, ".lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| JournalError::io(&path, e))?;
        // A daemon killed while it started a command leaves the lock to that child for the
        // moment between its fork and its exec (close-on-exec): a start right after the kill
        // waits for that rather than failing.
        let patience = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => {
                    let mut text = String::new();
                    let _ = lock.rewind().and_then(|()| lock.read_to_string(&mut text));
                    let pid: Option<i32> = text.trim().parse().ok();
                    let holder_alive = pid
                        .is_some_and(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok());
                    if !holder_alive && std::time::Instant::now() < patience {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                    return Err(JournalError::InUse {
                        path: journal.to_path_buf(),
                        pid,
                    });
                }
                _ => return Err(JournalError::io(&path, error)),
            }
        }
        let written = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()));
        written.map_err(|e| JournalError::io(&path, e))?;
        Ok(JournalLock { _file: lock, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
