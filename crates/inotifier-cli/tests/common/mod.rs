//! Helpers shared by the integration tests of `inotifier watch`: running the real binary, reading
//! its stdout and stderr on threads, waiting on conditions with deadlines, and looking into its
//! JSON lines.
//!
//! Every process started here lives in a [`ChildGuard`], which kills it by its PID and reaps it
//! when dropped, also when the test panics.

#![allow(dead_code)]

pub mod project;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_inotifier");

/// How long any single expected thing (a line, an exit) may take. Generous: the machine has two
/// cores and tests run in parallel, but a working watcher answers within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A `Command` for `inotifier watch ARGS...` with stdin closed and stdout/stderr piped.
pub fn watch_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(BIN);
    command
        .arg("watch")
        .args(args)
        .env_remove("INOTIFIER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

// ----- processes -------------------------------------------------------------------------------

/// A started process that is killed (SIGKILL, by PID) and reaped when dropped, unless it has
/// already been reaped.
pub struct ChildGuard {
    child: Child,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    pub fn spawn(command: &mut Command) -> ChildGuard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        ChildGuard {
            child,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `signal` to the process by its PID.
    pub fn signal(&self, signal: libc::c_int) {
        assert!(self.status.is_none(), "the process has already exited");
        // SAFETY: plain system call. The child is not reaped yet, so its PID cannot have been
        // reused by another process.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(
            rc,
            0,
            "kill({}, {signal}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// The exit status if the process has exited (reaping it), without blocking.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits for the process to exit, at most `timeout`; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        inotifier_test_support::wait_until(timeout, || self.try_wait().is_some());
        self.status
    }

    /// Waits for the exit; panics (the guard then kills the process) after `timeout`.
    pub fn expect_exit(&mut self, timeout: Duration, what: &str) -> ExitStatus {
        self.wait_timeout(timeout)
            .unwrap_or_else(|| panic!("{what}: the process did not exit within {timeout:?}"))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.try_wait().is_some() {
            return;
        }
        // SAFETY: plain system call on our own, not yet reaped, child.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        self.status = self.child.wait().ok();
    }
}

/// Reads `reader` to its end on a thread; the text arrives on the returned receiver.
fn read_all_on_thread(mut reader: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = reader.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

/// What a process that ran to its end printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end (feeding it `input` on stdin when given), at most `timeout`: a
/// process still running then is killed and the test fails.
pub fn run_to_exit(command: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Finished {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn(command);
    if let Some(input) = input {
        let mut stdin = guard.child_mut().stdin.take().expect("piped stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let stdout = read_all_on_thread(guard.child_mut().stdout.take().expect("piped stdout"));
    let stderr = read_all_on_thread(guard.child_mut().stderr.take().expect("piped stderr"));
    let status = guard.expect_exit(timeout, &format!("{command:?}"));
    let collect = |rx: Receiver<Vec<u8>>| {
        let bytes = rx.recv_timeout(timeout).expect("output closed after exit");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Finished {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

/// `inotifier ARGS...` run to its end with [`DEADLINE`].
pub fn run_inotifier(args: &[&str]) -> Finished {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("INOTIFIER_LOG");
    run_to_exit(&mut command, None, DEADLINE)
}

// ----- a running watcher -----------------------------------------------------------------------

/// One line the child printed, and whether it ended with a newline (only the last line of an
/// output cut short does not).
struct Line {
    text: String,
    terminated: bool,
}

fn lines_on_thread(reader: impl Read + Send + 'static) -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        loop {
            let mut bytes = Vec::new();
            match reader.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let terminated = bytes.last() == Some(&b'\n');
            if terminated {
                bytes.pop();
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if tx.send(Line { text, terminated }).is_err() {
                return;
            }
        }
    });
    rx
}

/// A running `inotifier watch`, its stdout lines read so far and its stderr.
pub struct Watcher {
    pub child: ChildGuard,
    /// Held until [`Watcher::start_reading`] when stdout is not read at once.
    unread_stdout: Option<ChildStdout>,
    stdout: Option<Receiver<Line>>,
    /// Every stdout line received so far, without its newline.
    pub lines: Vec<String>,
    /// Set when stdout ended with a line lacking its newline.
    pub unterminated_last_line: bool,
    /// True once stdout has reached its end.
    pub stdout_closed: bool,
    stderr_lines: Receiver<Line>,
    stderr_text: Arc<Mutex<String>>,
    ready: Option<usize>,
}

impl Watcher {
    /// Starts `inotifier watch ARGS...` and reads its stdout at once.
    pub fn spawn<I, S>(args: I) -> Watcher
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Watcher::spawn_command(&mut watch_command(args), true)
    }

    /// Starts `command` (made by [`watch_command`]); with `read_stdout` false, its stdout stays
    /// unread (so the pipe fills up) until [`Watcher::start_reading`].
    pub fn spawn_command(command: &mut Command, read_stdout: bool) -> Watcher {
        let mut child = ChildGuard::spawn(command);
        let stdout = child.child_mut().stdout.take().expect("piped stdout");
        let stderr = child.child_mut().stderr.take().expect("piped stderr");
        // Stderr is always drained, into a shared text, so the child never blocks on it.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let (stderr_tx, stderr_lines) = mpsc::channel();
        let raw_stderr = lines_on_thread(stderr);
        let text = stderr_text.clone();
        std::thread::spawn(move || {
            for line in raw_stderr {
                {
                    let mut text = text.lock().unwrap();
                    text.push_str(&line.text);
                    text.push('\n');
                }
                if stderr_tx.send(line).is_err() {
                    // Nobody waits for lines any more; keep collecting the text.
                    continue;
                }
            }
        });
        let mut watcher = Watcher {
            child,
            unread_stdout: Some(stdout),
            stdout: None,
            lines: Vec::new(),
            unterminated_last_line: false,
            stdout_closed: false,
            stderr_lines,
            stderr_text,
            ready: None,
        };
        if read_stdout {
            watcher.start_reading();
        }
        watcher
    }

    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// Starts reading stdout (see [`Watcher::spawn_command`]).
    pub fn start_reading(&mut self) {
        if let Some(stdout) = self.unread_stdout.take() {
            self.stdout = Some(lines_on_thread(stdout));
        }
    }

    /// Takes the stdout pipe of a watcher started without reading it, for a test to read (and
    /// close) itself.
    pub fn take_unread_stdout(&mut self) -> Option<ChildStdout> {
        self.unread_stdout.take()
    }

    /// Everything the child has written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr_text.lock().unwrap().clone()
    }

    /// Waits for `inotifier: ready, N watches established` on stderr and returns N. Panics
    /// with the stderr (and exit status) if it does not come.
    pub fn wait_ready(&mut self) -> usize {
        if let Some(count) = self.ready {
            return count;
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(count) = parse_ready(&line.text) {
                        self.ready = Some(count);
                        return count;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no ready line within {DEADLINE:?}; stderr so far:\n{}",
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait_timeout(DEADLINE);
                    panic!(
                        "stderr closed before the ready line (exit status {status:?}); stderr:\n{}",
                        self.stderr()
                    )
                }
            }
        }
    }

    /// Moves one received line (or the end of stdout) into `self.lines`; false at `deadline`
    /// or at the end of stdout.
    fn receive(&mut self, deadline: Instant) -> bool {
        if self.stdout_closed {
            return false;
        }
        let stdout = self
            .stdout
            .as_ref()
            .expect("stdout is read (call start_reading first)");
        let left = deadline.saturating_duration_since(Instant::now());
        match stdout.recv_timeout(left) {
            Ok(line) => {
                if !line.terminated {
                    self.unterminated_last_line = true;
                }
                self.lines.push(line.text);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.stdout_closed = true;
                false
            }
        }
    }

    /// Receives lines until `done(all lines so far)` holds; false if it did not by `timeout`.
    pub fn wait_lines(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.lines) {
                return true;
            }
            if !self.receive(deadline) && (self.stdout_closed || Instant::now() >= deadline) {
                return done(&self.lines);
            }
        }
    }

    /// Waits for a line satisfying `matches` and returns its index in `self.lines`; panics with
    /// the output so far if none comes within [`DEADLINE`].
    pub fn expect_line(&mut self, what: &str, mut matches: impl FnMut(&str) -> bool) -> usize {
        let mut found = None;
        let mut checked = 0;
        self.wait_lines(DEADLINE, |lines| {
            while checked < lines.len() {
                if matches(&lines[checked]) {
                    found = Some(checked);
                    return true;
                }
                checked += 1;
            }
            false
        });
        match found {
            Some(index) => index,
            None => panic!(
                "no line for {what} within {DEADLINE:?}.\nstdout:\n{}\nstderr:\n{}",
                self.lines.join("\n"),
                self.stderr()
            ),
        }
    }

    /// Waits for a JSON event satisfying `matches`; returns its index and the parsed event.
    pub fn expect_event(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> (usize, Value) {
        let index = self.expect_line(what, |line| {
            parse(line).is_some_and(|event| matches(&event))
        });
        (index, parse(&self.lines[index]).expect("parsed above"))
    }

    /// Waits for the event `maskname` about `pathname`.
    pub fn expect_mask(&mut self, maskname: &str, pathname: &Path) -> (usize, Value) {
        let want = pathname.to_str().expect("test paths are UTF-8").to_string();
        self.expect_event(&format!("{maskname} {want}"), |event| {
            event["maskname"] == maskname && event["pathname"] == want.as_str()
        })
    }

    /// Every line received so far, parsed; panics on a line that is not a JSON object.
    pub fn events(&self) -> Vec<Value> {
        self.lines
            .iter()
            .map(|line| parse(line).unwrap_or_else(|| panic!("not a JSON object: {line}")))
            .collect()
    }

    /// Sends `signal` to the watcher, by PID.
    pub fn signal(&self, signal: libc::c_int) {
        self.child.signal(signal);
    }

    /// Waits for the exit and reads stdout to its end; panics after [`DEADLINE`].
    pub fn finish(&mut self) -> ExitStatus {
        let status = self.child.expect_exit(DEADLINE, "inotifier watch");
        self.start_reading();
        let closed = self.wait_lines(DEADLINE, |_| false) || self.stdout_closed;
        assert!(closed, "stdout not closed {DEADLINE:?} after the exit");
        status
    }

    /// How many inotify watches the watcher holds in the kernel: the `inotify wd:` lines of its
    /// `/proc/PID/fdinfo/*`.
    pub fn kernel_watches(&self) -> usize {
        kernel_watches(self.pid())
    }
}

/// N from `inotifier: ready, N watches established`.
pub fn parse_ready(line: &str) -> Option<usize> {
    line.strip_prefix("inotifier: ready, ")?
        .strip_suffix(" watches established")?
        .parse()
        .ok()
}

/// The `inotify wd:` lines in `/proc/PID/fdinfo/*`: the kernel watches the process holds on
/// files and directories, less the engine's own wake-up watch (the only one whose mask is
/// `IN_MODIFY` alone, `mask:2`, on a private file without a name).
pub fn kernel_watches(pid: i32) -> usize {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut count = 0;
    for fd in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
    {
        let Ok(info) = std::fs::read_to_string(fd.path()) else {
            continue;
        };
        count += info
            .lines()
            .filter(|l| l.starts_with("inotify wd:") && !l.contains(" mask:2 "))
            .count();
    }
    count
}

// ----- JSON lines ------------------------------------------------------------------------------

/// A line parsed as a JSON object; `None` if it is not one (including lines that serde_json
/// refuses because of lone surrogate escapes, i.e. names that are not UTF-8).
pub fn parse(line: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(Value::is_object)
}

pub fn maskname(event: &Value) -> &str {
    event["maskname"].as_str().expect("maskname is a string")
}

pub fn pathname(event: &Value) -> &str {
    event["pathname"].as_str().expect("pathname is a string")
}

/// The raw text (quotes included) of the top-level string field `key` of a one-line JSON object,
/// e.g. `"caf\udce9"`: for names that serde_json cannot decode.
pub fn raw_string_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let bytes = line.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    // Index just past the string literal starting at `start`.
    let string_end = |start: usize| -> Option<usize> {
        if bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    let mut i = skip_ws(0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(i);
        let key_end = string_end(i)?;
        let this_key = &line[i + 1..key_end - 1];
        i = skip_ws(key_end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(i + 1);
        let value_start = i;
        let value_end = if bytes.get(i) == Some(&b'"') {
            string_end(i)?
        } else {
            // The objects printed are flat: a scalar runs to the next ',' or '}'.
            while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'}' {
                i += 1;
            }
            i
        };
        if this_key == key {
            let value = &line[value_start..value_end];
            return value.starts_with('"').then_some(value);
        }
        i = skip_ws(value_end);
        match bytes.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// The integers appearing in `text`, e.g. to find a limit's value in an error message.
pub fn integers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|word| !word.is_empty())
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// The body of `GET /metrics` from the daemon's endpoint at `address` (host:port), over a
/// plain HTTP/1.0 exchange: what Prometheus fetches.
pub fn scrape_metrics(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: inotifier\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read /metrics");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

/// The value of the unlabelled series `name` in a scrape.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}
