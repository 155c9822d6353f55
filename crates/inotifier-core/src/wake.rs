//! How other threads wake the reader (to stop it, or to run a command such as adding a watch).
//!
//! The fast way is in band: the reader watches a private file without a name (one more kernel
//! watch, with the mask `IN_MODIFY` alone), and a wake is a one-byte write to it, which the
//! kernel queues as an `IN_MODIFY` in the same inotify queue.
//! The reader can then block in `read()` alone, one system call per batch instead of `poll()`
//! plus `read()`, and a wake still always ends that `read()`. Where no such file can be made
//! (no writable temporary directory), an eventfd polled beside the inotify descriptor does it.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::mask::Mask;
use crate::sys::{EventFd, Inotify};

pub(crate) enum Waker {
    InBand { file: File, wd: i32 },
    EventFd(EventFd),
}

impl Waker {
    pub(crate) fn new(inotify: &Inotify) -> io::Result<Waker> {
        match in_band(inotify) {
            Ok(waker) => Ok(waker),
            Err(error) => {
                tracing::debug!("in-band wake-ups unavailable ({error}); polling an eventfd");
                Ok(Waker::EventFd(EventFd::new()?))
            }
        }
    }

    pub(crate) fn wake(&self) {
        match self {
            // A failed write leaves the reader to notice the stop at its next event; there is
            // nothing better to do from here.
            Waker::InBand { file, .. } => drop(file.write_at(b"w", 0)),
            Waker::EventFd(eventfd) => eventfd.wake(),
        }
    }

    /// The watch descriptor whose events are wake-ups, in band.
    pub(crate) fn in_band_wd(&self) -> Option<i32> {
        match self {
            Waker::InBand { wd, .. } => Some(*wd),
            Waker::EventFd(_) => None,
        }
    }

    /// The descriptor to poll beside the inotify one, out of band.
    pub(crate) fn poll_fd(&self) -> Option<RawFd> {
        match self {
            Waker::InBand { .. } => None,
            Waker::EventFd(eventfd) => Some(eventfd.as_raw_fd()),
        }
    }

    pub(crate) fn clear(&self) {
        if let Waker::EventFd(eventfd) = self {
            eventfd.clear();
        }
    }
}

fn in_band(inotify: &Inotify) -> io::Result<Waker> {
    let file = anonymous_file().or_else(|_| named_then_unlinked_file())?;
    // Through /proc, the watch reaches the inode whether or not it has a name.
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let wd = inotify.add_watch(&path, Mask::IN_MODIFY)?;
    Ok(Waker::InBand { file, wd })
}

/// A file with no name at all (O_TMPFILE): nothing in a shared directory to race for.
fn anonymous_file() -> io::Result<File> {
    File::options()
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(std::env::temp_dir())
}

/// Where O_TMPFILE is not supported: a fresh name, never through a link planted by someone
/// else (O_EXCL, O_NOFOLLOW), 0600, unlinked at once.
fn named_then_unlinked_file() -> io::Result<File> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path =
        std::env::temp_dir().join(format!(".inotifier-wake-{}-{nanos:09}", std::process::id()));
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
