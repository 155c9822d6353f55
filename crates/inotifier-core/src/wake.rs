//! How other threads wake the reader (to stop it, or to run a command such as adding a watch).
//!
//! The fast way is in band: the reader watches a private, already unlinked file, and a wake is a
//! one-byte write to it, which the kernel queues as an `IN_MODIFY` in the same inotify queue.
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path: PathBuf = std::env::temp_dir().join(format!(
        ".inotifier-wake-{}-{nanos:09}",
        std::process::id()
    ));
    // O_EXCL and O_NOFOLLOW: never write through a name someone else planted in a shared
    // directory; 0600: nobody else can wake us.
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)?;
    let watched = inotify.add_watch(&path, Mask::IN_MODIFY | Mask::IN_DONT_FOLLOW);
    // The watch and the open descriptor keep the inode; the name is not needed.
    let _ = std::fs::remove_file(&path);
    Ok(Waker::InBand {
        file,
        wd: watched?,
    })
}
