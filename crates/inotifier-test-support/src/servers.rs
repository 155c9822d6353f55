//! Broker servers that a test starts itself, on a port of its own, and ends by PID: Redis
//! (standalone or with Sentinel), NATS (with JetStream), over TLS with certificates of a
//! [`crate::tls::TestCa`] or in plain text. Unlike the machine's services of
//! [`crate::services`], such a server can be configured per test (TLS, passwords, ACL users),
//! stopped, restarted on the same port, or killed to make Sentinel fail over.
//!
//! Every server is a [`ServerProcess`] guard: dropping it ends the process (SIGTERM, then
//! SIGKILL after 5 s) and reaps it, even when the test panics. Should the test process itself
//! be killed, the kernel kills its servers too (`PR_SET_PDEATHSIG`), so that no broker is left
//! holding a port after an aborted `cargo test`. Everything waits on conditions with deadlines
//! (the port accepting connections, Sentinel reporting a master), never on a fixed sleep.
//!
//! One server per directory: each writes its configuration, log and data under the `dir` it
//! is given, with fixed names (`redis.log`, `nats.conf`, ...).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::tls::{CertPair, TestCa};

mod nats;
mod rabbitmq;
mod redis;

pub use nats::{NatsAuth, NatsOptions, NatsServer};
pub use rabbitmq::RabbitMqNode;
pub use redis::{RedisSentinelSet, RedisServer};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(20);
/// How long a server may take to listen after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS side of a server: its certificate, the CA it trusts for client certificates, and
/// whether a client must present one (mutual TLS).
#[derive(Debug, Clone, Copy)]
pub struct TlsServerOptions<'a> {
    pub ca: &'a TestCa,
    pub cert: &'a CertPair,
    pub require_client_cert: bool,
}

/// A port of 127.0.0.1 that nothing listens on now: bound to port 0, read, released. Another
/// process could take it before the server does (the server then fails to start, with a clear
/// message); within this process, no port is handed out twice.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .unwrap_or_else(|e| panic!("cannot bind a port of 127.0.0.1: {e}"))
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn accepts_connections(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// Polls `condition` every [`POLL`] until it returns `Some`, or `timeout` passes (`None`).
pub fn poll_until<T>(timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// A server process of the test, listening on 127.0.0.1:[`port`](Self::port); ended and
/// reaped by its PID when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    program: String,
    args: Vec<OsString>,
    port: u16,
    log: PathBuf,
    // Standard output and error: where a server that fails before opening its log says why.
    output: PathBuf,
    child: Option<Child>,
    /// Variables set for the server, beside the test's own environment.
    env: Vec<(OsString, OsString)>,
    /// How long it may take to listen.
    start_timeout: Duration,
}

impl ServerProcess {
    /// Runs `program args`, which is to listen on 127.0.0.1:`port` and write its log to `log`
    /// (its standard output and error go to `log` with the extension `out`); returns once the
    /// port accepts connections. Panics, with the log, when the server exits first or does not
    /// listen within [`START_TIMEOUT`].
    pub fn start(program: &str, args: Vec<OsString>, port: u16, log: &Path) -> ServerProcess {
        ServerProcess::start_with(program, args, Vec::new(), START_TIMEOUT, port, log)
    }

    /// [`ServerProcess::start`] with variables `env` set for the server, and `start_timeout`
    /// to listen (a RabbitMQ node takes about 10 s).
    pub fn start_with(
        program: &str,
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
        start_timeout: Duration,
        port: u16,
        log: &Path,
    ) -> ServerProcess {
        let mut server = ServerProcess {
            program: program.to_string(),
            args,
            port,
            log: log.to_path_buf(),
            output: log.with_extension("out"),
            child: None,
            env,
            start_timeout,
        };
        server.spawn();
        server
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's PID while it runs (not after [`stop`](Self::stop) or [`kill`](Self::kill)).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The path of the server's log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The server's log so far, and what it wrote to its standard output and error: for the
    /// message of a failed assertion.
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(no log at {}: {e})\n", self.log.display()));
        let output = std::fs::read(&self.output).unwrap_or_default();
        if !output.is_empty() {
            text.push_str(&format!(
                "--- standard output and error of {} ---\n{}",
                self.program,
                String::from_utf8_lossy(&output)
            ));
        }
        text
    }

    /// Whether the process still runs (one that exited is reaped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Ends the server: SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`];
    /// returns once it is reaped. Nothing happens when it is not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            // SAFETY: signalling our own child, which is not reaped yet, by its PID.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let exited = poll_until(STOP_TIMEOUT, || child.try_wait().ok().flatten());
            if exited.is_none() {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }

    /// Kills the server with SIGKILL (a crash: no shutdown, nothing saved) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server (when it runs) and starts it again with the same arguments, on the
    /// same port; returns once it accepts connections again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the server [`stopped`](ServerProcess::stop) or killed before, with the same
    /// arguments, on the same port; returns once it accepts connections again.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is running already", self.program);
        let output = File::options()
            .create(true)
            .append(true)
            .open(&self.output)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.output.display()));
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(
                output
                    .try_clone()
                    .expect("a second descriptor of the output file"),
            )
            .stderr(output);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec the closure makes only async-signal-safe calls and
        // allocates nothing.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The test process died before prctl took effect: nobody would end us.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            })
        };
        let child = spawn_from_a_lasting_thread(command)
            .unwrap_or_else(|e| panic!("cannot run {} (install it): {e}", self.program));
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let start_timeout = self.start_timeout;
        let listening = poll_until(start_timeout, || {
            if !self.is_running() {
                return Some(false);
            }
            accepts_connections(self.port).then_some(true)
        });
        match listening {
            Some(true) => {}
            Some(false) => panic!(
                "{} exited before listening on port {}; its log:\n{}",
                self.program,
                self.port,
                self.log()
            ),
            None => {
                self.stop();
                panic!(
                    "{} did not listen on port {} within {start_timeout:?}; its log:\n{}",
                    self.program,
                    self.port,
                    self.log()
                )
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `command` from one thread that lasts as long as the process. `PR_SET_PDEATHSIG`
/// fires when the *thread* that forked the child ends, not the process: spawned from a test's
/// own thread, a server shared by several tests (in a `static`) would be killed when the first
/// test finished.
fn spawn_from_a_lasting_thread(command: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("test-server-spawner".into())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("a thread to spawn the test servers from");
        Mutex::new(sender)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .expect("the spawner thread runs");
    answer.recv().expect("the spawner thread answers")
}

/// `value` as a double-quoted string of a Redis or NATS configuration file.
fn quoted(value: &Path) -> String {
    let text = value.to_str().unwrap_or_else(|| {
        panic!(
            "{} is not UTF-8: unusable in a configuration file",
            value.display()
        )
    });
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Creates `dir` (and its parents) or panics.
fn create_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
}
