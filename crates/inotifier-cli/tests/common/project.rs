//! A daemon under test: `inotifier run` on a config in a temporary directory, its log, and
//! what its processors wrote.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use inotifier_test_support::wait_until;

use super::{BIN, ChildGuard};

pub const LONG: Duration = Duration::from_secs(60);

#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    assert!(
        wait_until(timeout, condition),
        "{what}: not within {timeout:?}"
    );
}

/// A config in a temporary directory: `watched/` is watched, the pid file and the journal are
/// in `run/` (unless the config says otherwise), the daemon's log goes to `daemon.log`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(config: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("watched")).unwrap();
        std::fs::write(dir.path().join("inotifier.toml"), config).unwrap();
        Project { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn watched(&self, name: &str) -> PathBuf {
        self.path("watched").join(name)
    }

    /// `inotifier run` in the foreground, its stderr appended to `daemon.log`; waits until it
    /// says it is ready.
    pub fn run(&self) -> ChildGuard {
        self.run_with(
            Command::new(BIN)
                .args(["run", "-c"])
                .arg(self.path("inotifier.toml")),
        )
    }

    /// [`Project::run`] with a command of the caller's that ends up running the daemon (a
    /// shell that `exec`s it with descriptors of its own, say).
    pub fn run_with(&self, command: &mut Command) -> ChildGuard {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.path("daemon.log"))
            .unwrap();
        let before = self.log().matches("ready: ").count();
        let mut daemon = ChildGuard::spawn(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_for("the daemon to be ready", LONG, || {
            self.log().matches("ready: ").count() > before || daemon.try_wait().is_some()
        });
        if let Some(status) = daemon.try_wait() {
            panic!(
                "the daemon exited ({status}) instead of starting:\n{}",
                self.log()
            );
        }
        daemon
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// The complete lines of a file a processor writes (one it is still writing is left out).
    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter_map(|line| line.strip_suffix('\n'))
            .map(str::to_string)
            .collect()
    }

    pub fn jsonl(&self, name: &str) -> Vec<serde_json::Value> {
        self.lines(name)
            .iter()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

/// Stops a foreground daemon with SIGTERM and expects a clean exit.
pub fn stop(mut daemon: ChildGuard) {
    daemon.signal(libc::SIGTERM);
    let status = daemon.expect_exit(LONG, "the daemon to stop");
    assert!(status.success(), "{status:?}");
}

pub fn kill(mut daemon: ChildGuard) {
    daemon.signal(libc::SIGKILL);
    daemon.expect_exit(LONG, "the killed daemon to be reaped");
}

/// A daemon started in the background; killed by its pid if the test ends without stopping it.
pub struct DaemonGuard {
    pub pid: i32,
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if alive(self.pid) {
            // SAFETY: kill(2) of the daemon this test started.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Whether `pid` runs (a zombie waiting for an init that does not reap counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
