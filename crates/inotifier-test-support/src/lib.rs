//! Helpers shared by the tests of every crate.
//!
//! Inotify limits in `/proc/sys/fs/inotify` are per machine (per user), so a test that lowers
//! one would break any inotify test running beside it, in this process or another. Every test
//! that uses inotify holds [`inotify_shared`]; a test that changes a limit holds
//! [`inotify_exclusive`] and changes it through a [`Sysctl`] guard, which restores the old value
//! when dropped, even when the test panics. Only root can change a limit: such a test first
//! asks [`privileges::root_available`], which skips it for anyone else.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod damage;
pub mod fuse;
pub mod hook_server;
pub mod privileges;
pub mod servers;
pub mod services;
pub mod skip;
pub mod tls;
pub mod workloads;

const LOCK_PATH: &str = "/run/inotifier-tests.lock";

/// A held `flock` on the machine-wide test lock; released on drop.
pub struct MachineLock {
    _file: File,
}

fn lock(operation: libc::c_int) -> MachineLock {
    let path = if Path::new("/run").is_dir() {
        LOCK_PATH.to_string()
    } else {
        format!("{}/inotifier-tests.lock", std::env::temp_dir().display())
    };
    let file = open_lock(&path).unwrap_or_else(|e| panic!("cannot open the test lock {path}: {e}"));
    // SAFETY: flock on a descriptor we own; blocks until granted.
    let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
    assert_eq!(rc, 0, "flock {path}: {}", std::io::Error::last_os_error());
    MachineLock { _file: file }
}

/// The lock file at `path`, created when missing. A user other than root cannot create it in
/// `/run`, nor write to root's: flock needs no write access, so root's file, opened read-only,
/// still keeps that user's tests apart from root's limit changes. Only when nobody created it
/// yet does such a user fall back to one in the temporary directory.
fn open_lock(path: &str) -> std::io::Result<File> {
    let created = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path);
    match created {
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => File::open(path)
            .or_else(|_| {
                let fallback = std::env::temp_dir().join("inotifier-tests.lock");
                File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&fallback)
                    .or_else(|_| File::open(&fallback))
            }),
        other => other,
    }
}

/// Held by every test that creates inotify instances or watches.
pub fn inotify_shared() -> MachineLock {
    lock(libc::LOCK_SH)
}

/// Held by a test that changes an inotify limit: no other inotify test runs meanwhile.
pub fn inotify_exclusive() -> MachineLock {
    lock(libc::LOCK_EX)
}

/// Sets `/proc/sys/fs/inotify/<name>` and restores the previous value when dropped.
pub struct Sysctl {
    path: String,
    previous: String,
}

impl Sysctl {
    pub fn set(name: &str, value: u64, _exclusive: &MachineLock) -> Sysctl {
        let path = format!("/proc/sys/fs/inotify/{name}");
        let previous = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
            .trim()
            .to_string();
        std::fs::write(&path, value.to_string())
            .unwrap_or_else(|e| {
                panic!("cannot write {path} (a test that does checks privileges::root_available first): {e}")
            });
        Sysctl { path, previous }
    }

    pub fn previous(&self) -> u64 {
        self.previous.parse().expect("numeric sysctl")
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(error) = std::fs::write(&self.path, &self.previous) {
            eprintln!(
                "could not restore {} to {}: {error}",
                self.path, self.previous
            );
        }
    }
}

/// How many inotify watches and instances this machine's processes hold now, from
/// `/proc/*/fdinfo`: what a lowered limit must leave room for.
pub fn inotify_usage() -> (u64, u64) {
    let (mut watches, mut instances) = (0, 0);
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for process in processes.flatten() {
        let Ok(fds) = std::fs::read_dir(process.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(info) = std::fs::read_to_string(fd.path()) else {
                continue;
            };
            let count = info
                .lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count() as u64;
            // An instance without watches shows no "inotify" line; its link target tells.
            let is_inotify = count > 0
                || std::fs::read_link(process.path().join("fd").join(fd.file_name()))
                    .is_ok_and(|target| target.to_string_lossy().contains("inotify"));
            if is_inotify {
                instances += 1;
                watches += count;
            }
        }
    }
    (watches, instances)
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
