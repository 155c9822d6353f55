//! Which program a process is: its executable and when it started (clock ticks since boot,
//! from `/proc/PID/stat`). A pid alone can be reused, and a pid file's lock can be taken by any
//! process that opens the file; before calling a process the daemon, or signalling it, its
//! identity is compared with the one the daemon recorded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub exe: PathBuf,
    pub start_ticks: u64,
}

impl ProcessIdentity {
    /// This process's identity.
    pub fn current() -> Option<ProcessIdentity> {
        ProcessIdentity::of(std::process::id() as i32)
    }

    /// The identity of the live process `pid`, if it can be read (it exists and belongs to a
    /// user whose `/proc` entries this one may read).
    pub fn of(pid: i32) -> Option<ProcessIdentity> {
        Some(ProcessIdentity {
            exe: executable(pid)?,
            start_ticks: start_ticks(pid)?,
        })
    }
}

impl ProcessIdentity {
    /// Whether this process has exited: gone, a zombie, or its pid now another process's.
    /// Not decided from the executable: a process that is exiting loses its `/proc/PID/exe`
    /// before it stops running.
    pub fn has_exited(&self, pid: i32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return true;
        };
        let Some((_, after_name)) = stat.rsplit_once(')') else {
            return true;
        };
        let mut fields = after_name.split_whitespace();
        let state = fields.next();
        let start_ticks = fields.nth(18).and_then(|ticks| ticks.parse::<u64>().ok());
        matches!(state, Some("Z" | "X")) || start_ticks != Some(self.start_ticks)
    }
}

/// The executable of `pid`; a binary replaced on disk while it runs still counts as itself.
pub fn executable(pid: i32) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = link.to_string_lossy();
    Some(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => link,
    })
}

/// Field 22 of `/proc/PID/stat`, counted after the command name, which may hold spaces and
/// parentheses of its own (hence the last `)`).
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `exe` is the program at `other` (the same file, wherever it was reached from).
pub fn same_program(exe: &Path, other: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(exe), std::fs::metadata(other)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => exe == other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_a_child_have_different_start_times_and_known_executables() {
        let me = ProcessIdentity::current().expect("our own /proc entry");
        assert!(same_program(&me.exe, &std::env::current_exe().unwrap()));
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let other = ProcessIdentity::of(child.id() as i32);
        child.kill().unwrap();
        child.wait().unwrap();
        let other = other.expect("the child's /proc entry");
        assert!(!same_program(&other.exe, &me.exe), "{other:?}");
        assert!(other.start_ticks >= me.start_ticks);
        assert_eq!(ProcessIdentity::of(i32::MAX), None);
    }

    #[test]
    fn a_running_child_has_not_exited_and_its_zombie_and_its_reaped_pid_have() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let identity = ProcessIdentity::of(pid).expect("the child's /proc entry");
        assert!(!identity.has_exited(pid));
        child.kill().unwrap();
        // Killed and not reaped: a zombie, which has exited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !identity.has_exited(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "the zombie never showed"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
        assert!(identity.has_exited(pid));
        let me = ProcessIdentity::current().unwrap();
        assert!(!me.has_exited(std::process::id() as i32));
    }
}
