//! The pid file: one daemon per pid file, for as long as it runs.
//!
//! The daemon holds an exclusive `flock` on the file for its whole life, so "is it running" is
//! answered by the lock, not by whether a pid in a file happens to be alive: a pid file left by
//! a crash is simply taken over. The file is opened relative to its directory with
//! `O_NOFOLLOW`, and only in a directory no other user can write, so nobody can point it at
//! another file with a symlink or swap it underneath us.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("inotifier is already running with pid {pid} (pid file {path})")]
    Running { pid: i32, path: PathBuf },
    #[error(
        "refusing to use the pid file {path}: {why}; put the pid file in a directory only this \
         user can write, such as $XDG_RUNTIME_DIR or /run/inotifier"
    )]
    Insecure { path: PathBuf, why: String },
    #[error("pid file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A pid file locked by this process; the lock goes when it is dropped (or the process ends).
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

/// Who holds a pid file, as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A live process holds the lock.
    Running { pid: i32 },
    /// Nobody holds the lock; `stale_pid` is what a dead daemon left in the file, if anything.
    NotRunning { stale_pid: Option<i32> },
}

impl PidFile {
    /// Locks the pid file at `path` (creating it and its directory, mode 0700, if needed) and
    /// writes our pid in it.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let io_error = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (dir_path, name) = split(path)?;
        if !dir_path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir_path)
                .map_err(io_error)?;
        }
        // A daemon killed while it started a command leaves the lock to that child for the
        // moment between its fork and its exec (the descriptor is close-on-exec): a start
        // right after the kill (systemd's restart) waits for that instead of failing.
        let patience = std::time::Instant::now() + std::time::Duration::from_secs(2);
        // A lock on a file that another daemon unlinked while we were opening it protects
        // nothing: after locking, check that the name still leads to our file.
        let mut attempts = 0;
        while attempts < 16 {
            attempts += 1;
            let dir = open_directory(&dir_path).map_err(io_error)?;
            check_directory(&dir, path)?;
            let fd = open_at(&dir, &name, libc::O_RDWR | libc::O_CREAT).map_err(io_error)?;
            let mut file = File::from(fd);
            check_file(&file, path)?;
            if !try_lock(&file, libc::LOCK_EX).map_err(io_error)? {
                let pid = lock_holder(&file)
                    .or_else(|| read_pid(&mut file))
                    .unwrap_or(0);
                let holder_gone = crate::identity::ProcessIdentity::of(pid).is_none();
                if holder_gone && std::time::Instant::now() < patience {
                    attempts -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                return Err(PidFileError::Running {
                    pid,
                    path: path.to_path_buf(),
                });
            }
            if same_file(&dir, &name, &file) {
                let pid = std::process::id();
                file.set_len(0).map_err(io_error)?;
                (&file)
                    .write_all(format!("{pid}\n").as_bytes())
                    .map_err(io_error)?;
                return Ok(PidFile {
                    file,
                    path: path.to_path_buf(),
                });
            }
        }
        Err(io_error(io::Error::other(
            "it keeps being replaced by another process",
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the pid, e.g. after a fork made us another process.
    pub fn rewrite_pid(&mut self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let text = format!("{}\n", std::process::id());
        self.file.set_len(0)?;
        self.file.write_all_at(text.as_bytes(), 0)
    }

    /// Removes the file while still holding its lock, so nobody sees it unlocked with our pid.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What [`check_location`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The directory exists and passes the rules (as does the file, when there is one).
    Safe,
    /// The directory does not exist yet: [`PidFile::acquire`] creates it, mode 0700.
    DirectoryMissing,
}

/// Whether [`PidFile::acquire`] would accept the pid file at `path`, by the same rules
/// (the directory owned by this user or root and writable by nobody else; the file, when
/// there is one, a regular file of this user, not a symbolic link), creating and locking
/// nothing.
pub fn check_location(path: &Path) -> Result<Location, PidFileError> {
    let io_error = |source| PidFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (dir_path, name) = split(path)?;
    let dir = match open_directory(&dir_path) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Location::DirectoryMissing),
        Err(e) => return Err(io_error(e)),
    };
    check_directory(&dir, path)?;
    match open_at(&dir, &name, libc::O_RDONLY) {
        Ok(fd) => check_file(&File::from(fd), path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    Ok(Location::Safe)
}

/// Tells whether a daemon holds the pid file at `path`, without disturbing it.
pub fn probe(path: &Path) -> Result<Holder, PidFileError> {
    let io_error = |source| PidFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (dir_path, name) = split(path)?;
    let dir = match open_directory(&dir_path) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Holder::NotRunning { stale_pid: None });
        }
        Err(e) => return Err(io_error(e)),
    };
    let mut file = match open_at(&dir, &name, libc::O_RDONLY) {
        Ok(fd) => File::from(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Holder::NotRunning { stale_pid: None });
        }
        Err(e) => return Err(io_error(e)),
    };
    match lock_holder(&file) {
        Some(pid) => Ok(Holder::Running { pid }),
        None => Ok(Holder::NotRunning {
            stale_pid: read_pid(&mut file),
        }),
    }
}

/// Blocks until nobody holds the lock of the pid file at `path` (returns at once if there is
/// no such file).
pub fn wait_released(path: &Path) -> io::Result<()> {
    let (dir_path, name) = split(path).map_err(io::Error::other)?;
    let dir = match open_directory(&dir_path) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let file = match open_at(&dir, &name, libc::O_RDONLY) {
        Ok(fd) => File::from(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    loop {
        // SAFETY: flock on a descriptor we own; a shared lock is granted once the daemon's
        // exclusive one is gone.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn split(path: &Path) -> Result<(PathBuf, CString), PidFileError> {
    let invalid = |why: &str| PidFileError::Insecure {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let name = path
        .file_name()
        .ok_or_else(|| invalid("it names no file"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = CString::new(name.as_bytes()).map_err(|_| invalid("it contains a NUL byte"))?;
    Ok((dir, name))
}

fn open_directory(dir: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: plain open(2) of a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_at(dir: &OwnedFd, name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: openat(2) relative to a directory descriptor we own; O_NOFOLLOW refuses a
    // symlink planted at the name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ELOOP) {
            return Err(io::Error::other(
                "it is a symbolic link; pid files are never opened through one",
            ));
        }
        return Err(error);
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check_directory(dir: &OwnedFd, path: &Path) -> Result<(), PidFileError> {
    let stat = fstat(dir.as_raw_fd()).map_err(|source| PidFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let euid = effective_uid();
    refuse(
        path,
        if stat.st_uid != euid && stat.st_uid != 0 {
            Some(format!(
                "its directory is owned by uid {}, not by this user (uid {euid}) or root",
                stat.st_uid
            ))
        } else if stat.st_mode & 0o022 != 0 {
            Some(format!(
                "its directory is writable by other users (mode {:o})",
                stat.st_mode & 0o7777
            ))
        } else {
            None
        },
    )
}

fn check_file(file: &File, path: &Path) -> Result<(), PidFileError> {
    let metadata = file.metadata().map_err(|source| PidFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    refuse(
        path,
        if !metadata.file_type().is_file() {
            Some("it is not a regular file".to_string())
        } else if metadata.uid() != effective_uid() {
            Some(format!(
                "it is owned by uid {}, not by this user",
                metadata.uid()
            ))
        } else {
            None
        },
    )
}

fn refuse(path: &Path, why: Option<String>) -> Result<(), PidFileError> {
    match why {
        Some(why) => Err(PidFileError::Insecure {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

fn effective_uid() -> libc::uid_t {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

fn try_lock(file: &File, operation: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(error),
        }
    }
}

fn same_file(dir: &OwnedFd, name: &CString, file: &File) -> bool {
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat(2) into a zeroed stat buffer we own.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut stat,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match (rc, file.metadata()) {
        (0, Ok(metadata)) => stat.st_ino == metadata.ino() && stat.st_dev == metadata.dev(),
        _ => false,
    }
}

fn fstat(fd: i32) -> io::Result<libc::stat> {
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat(2) into a zeroed stat buffer we own.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat)
}

fn read_pid(file: &mut File) -> Option<i32> {
    use std::io::Seek;
    let mut text = String::new();
    file.seek(io::SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

/// The pid of the process holding an exclusive flock on `file`, from /proc/locks: the kernel's
/// word, so a pid file whose text was tampered with cannot make us name (or signal) a stranger.
fn lock_holder(file: &File) -> Option<i32> {
    let metadata = file.metadata().ok()?;
    let (major, minor) = (libc::major(metadata.dev()), libc::minor(metadata.dev()));
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") || fields.get(3) != Some(&"WRITE") {
            return None;
        }
        let mut device = fields.get(5)?.split(':');
        let lock_major = u32::from_str_radix(device.next()?, 16).ok()?;
        let lock_minor = u32::from_str_radix(device.next()?, 16).ok()?;
        let inode: u64 = device.next()?.parse().ok()?;
        (lock_major == major && lock_minor == minor && inode == metadata.ino())
            .then(|| fields[4].parse().ok())
            .flatten()
    })
}
