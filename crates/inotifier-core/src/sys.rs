//! Thin, safe wrappers over the system calls the engine needs: the inotify instance, an eventfd to
//! wake the reader, `poll`, and reading directories without following symlinks.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::mask::Mask;

pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: plain system call; the returned descriptor is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn add_watch(&self, path: &Path, mask: Mask) -> io::Result<i32> {
        let c_path = c_path(path)?;
        // SAFETY: valid descriptor and NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c_path.as_ptr(), mask.0) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    pub fn rm_watch(&self, wd: i32) -> io::Result<()> {
        // SAFETY: plain system call on our descriptor.
        if unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// In blocking mode a read waits for events; otherwise it returns `Ok(0)` when none are
    /// queued.
    pub fn set_blocking(&self, blocking: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on our own descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if blocking {
            flags & !libc::O_NONBLOCK
        } else {
            flags | libc::O_NONBLOCK
        };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Bytes of events waiting in the kernel's queue.
    pub fn queued_bytes(&self) -> io::Result<usize> {
        let mut bytes: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to the pointer we own.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::FIONREAD, &mut bytes) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(bytes.max(0) as usize)
    }

    /// Reads as many queued events as fit into `buffer`; `Ok(0)` when none are queued.
    pub fn read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: the buffer is valid for writes of its length.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(error),
            }
        }
    }
}

impl AsRawFd for Inotify {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One event as the kernel laid it out in the read buffer.
pub struct RawEvent<'a> {
    pub wd: i32,
    pub mask: Mask,
    pub cookie: u32,
    pub name: &'a [u8],
}

/// Walks the `struct inotify_event` records of one read.
pub struct RawEvents<'a> {
    bytes: &'a [u8],
}

impl<'a> RawEvents<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        RawEvents { bytes }
    }
}

const HEADER: usize = std::mem::size_of::<libc::inotify_event>();

impl<'a> Iterator for RawEvents<'a> {
    type Item = RawEvent<'a>;

    fn next(&mut self) -> Option<RawEvent<'a>> {
        if self.bytes.len() < HEADER {
            return None;
        }
        let field = |at: usize| u32::from_ne_bytes(self.bytes[at..at + 4].try_into().unwrap());
        let wd = field(0) as i32;
        let mask = Mask(field(4));
        let cookie = field(8);
        let len = field(12) as usize;
        let end = (HEADER + len).min(self.bytes.len());
        let padded = &self.bytes[HEADER..end];
        // The kernel pads the name with NULs up to an alignment boundary.
        let name_len = padded.iter().position(|&b| b == 0).unwrap_or(padded.len());
        let event = RawEvent {
            wd,
            mask,
            cookie,
            name: &padded[..name_len],
        };
        self.bytes = &self.bytes[end..];
        Some(event)
    }
}

/// A counter file descriptor other threads write to in order to wake the reader from `poll`.
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain system call; the descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. A full counter (EAGAIN) still leaves it readable,
        // which is all a wake-up needs.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn clear(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN just means it was not set.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Which of the two descriptors are readable after [`poll_two`].
pub struct Ready {
    pub first: bool,
    pub second: bool,
}

/// Waits until `first` or `second` is readable, or `timeout_ms` passes (-1 waits forever).
/// A negative `second` is ignored.
pub fn poll_two(first: RawFd, second: RawFd, timeout_ms: i32) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: first,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: second,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if n >= 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let readable =
        |pfd: &libc::pollfd| pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0;
    Ok(Ready {
        first: readable(&fds[0]),
        second: readable(&fds[1]),
    })
}

/// The kind of a directory entry, from `d_type` when the filesystem gives it, else `lstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A file name: most fit inline, which saves an allocation and a pointer chase per entry of
/// the index.
pub type Name = smallvec::SmallVec<[u8; 24]>;

pub struct DirEntry {
    pub name: Name,
    pub ino: u64,
    pub kind: Kind,
}

/// Lists a directory. Unless `follow` (for a root the user named), a symlink in the last
/// component is refused, so a scan never enters a link (and so never loops through one).
///
/// Reads with `getdents64` straight into a buffer the caller keeps: no `DIR` allocation and no
/// `fstat` per directory, which counts when a tree of many thousands is watched.
pub fn read_dir(path: &Path, follow: bool, buffer: &mut Vec<u8>) -> io::Result<Vec<DirEntry>> {
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let c_path = c_path(path)?;
    // SAFETY: NUL-terminated path; O_DIRECTORY refuses non-directories.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | nofollow | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor, closed when this drops.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if buffer.len() < 32 * 1024 {
        buffer.resize(32 * 1024, 0);
    }
    let mut entries = Vec::new();
    loop {
        // SAFETY: the buffer is valid for writes of its length.
        let length = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buffer.as_mut_ptr(),
                buffer.len(),
            )
        };
        if length < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if length == 0 {
            return Ok(entries);
        }
        let mut at = 0;
        while at < length as usize {
            // struct linux_dirent64: u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, name.
            let record = &buffer[at..];
            let ino = u64::from_ne_bytes(record[0..8].try_into().unwrap());
            let reclen = u16::from_ne_bytes(record[16..18].try_into().unwrap()) as usize;
            let d_type = record[18];
            let name_field = &record[19..reclen];
            let name = &name_field[..name_field
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_field.len())];
            at += reclen;
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match d_type {
                libc::DT_REG => Kind::File,
                libc::DT_DIR => Kind::Dir,
                libc::DT_LNK => Kind::Symlink,
                libc::DT_UNKNOWN => lstat_kind(&path.join(OsStr::from_bytes(name))),
                _ => Kind::Other,
            };
            entries.push(DirEntry {
                name: Name::from_slice(name),
                ino,
                kind,
            });
        }
    }
}

fn lstat_kind(path: &Path) -> Kind {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Kind::Dir,
        Ok(meta) if meta.is_file() => Kind::File,
        Ok(meta) if meta.file_type().is_symlink() => Kind::Symlink,
        _ => Kind::Other,
    }
}

/// What the overflow rescan compares: identity, content and metadata change times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

pub fn lstat(path: &Path) -> io::Result<Stat> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    Ok(Stat {
        ino: meta.ino(),
        kind,
        size: meta.size(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    })
}

/// A directory opened to `lstat` its entries by name: no path lookup of the directory for
/// each, which is most of the cost of an `lstat` by full path.
pub struct DirHandle(OwnedFd);

impl DirHandle {
    pub fn open(path: &Path) -> io::Result<DirHandle> {
        let c_path = c_path(path)?;
        // SAFETY: NUL-terminated path; O_PATH opens without reading anything.
        let fd = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor, closed when this drops.
        Ok(DirHandle(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `lstat` of the entry `name` of this directory.
    pub fn lstat(&self, name: &[u8]) -> io::Result<Stat> {
        if name.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "name contains a NUL byte",
            ));
        }
        // A name is at most NAME_MAX (255) bytes: NUL-terminated on the stack, not allocated,
        // for a poll stats every file of a tree.
        let mut c_name = [0u8; 256];
        if name.len() >= c_name.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        c_name[..name.len()].copy_from_slice(name);
        // SAFETY: zeroed plain-old-data, filled by the kernel.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, NUL-terminated name (the array's zeros), valid out-pointer.
        let rc = unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                c_name.as_ptr().cast(),
                &mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let kind = match stat.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        };
        Ok(Stat {
            ino: stat.st_ino,
            kind,
            size: stat.st_size as u64,
            mtime_ns: stat.st_mtime * 1_000_000_000 + stat.st_mtime_nsec,
            ctime_ns: stat.st_ctime * 1_000_000_000 + stat.st_ctime_nsec,
        })
    }
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec out-pointer.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}

/// Nanoseconds since the epoch.
pub fn realtime_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// The coarse realtime clock: the very clock the kernel stamps mtime and ctime with (outside
/// multigrain filesystems), so "changed after we last looked" is a plain comparison.
pub fn coarse_realtime_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME_COARSE)
}

/// How far the coarse clock may lag the precise one: its resolution, one scheduler tick.
pub fn coarse_lag_ns() -> i64 {
    let mut resolution = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec out-pointer.
    unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &mut resolution) };
    (resolution.tv_sec * 1_000_000_000 + resolution.tv_nsec).max(1_000_000)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Reads one inotify limit, e.g. `max_user_watches`, from `/proc/sys/fs/inotify`.
pub fn inotify_limit(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}
