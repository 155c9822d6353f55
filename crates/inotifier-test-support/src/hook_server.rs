//! A webhook receiver in its own process (`fixtures/hook_server.py`, see its docstring): what
//! the webhook processor's tests and the daemon's fault tests post to.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `hook_server.py`, killed by its PID when dropped.
pub struct HookServer {
    child: Child,
    // Held open: the server exits when its stdin closes, should this process die first.
    _stdin: ChildStdin,
    pub port: u16,
    log: PathBuf,
}

impl HookServer {
    /// Starts the server with `args` (`--fail N`, `--port P`, ...) and `env`, recording the
    /// requests in `log`; returns once it listens.
    pub fn start(log: &Path, args: &[&str], env: &[(&str, &str)]) -> HookServer {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hook_server.py");
        let mut child = Command::new("python3")
            .arg(fixture)
            .arg("--log")
            .arg(log)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the test server: install it");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // The port line, read with a deadline.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the server reports its port");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("not a port line: {line:?}"));
        HookServer {
            child,
            _stdin: stdin,
            port,
            log: log.to_path_buf(),
        }
    }

    /// The requests recorded so far, one JSON object per line; a line the server is still
    /// writing is left for the next call.
    pub fn request_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter_map(|line| line.strip_suffix('\n'))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, not reaped yet, by its PID.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
