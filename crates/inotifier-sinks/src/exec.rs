//! The `exec` processor: runs a program for each event, never through a shell.
//!
//! The program and its arguments come from the `argv` template. Placeholders in the
//! arguments are replaced by the event's fields, each argument staying one argument whatever
//! the file name holds (spaces, quotes, `;`, `$(...)`, newlines, bytes that are not UTF-8):
//! there is no shell to interpret them. Run a shell only if you need one, and then pass the
//! name as a positional parameter, never inside the script:
//! `argv = ["/bin/sh", "-c", "gzip -- \"$1\"", "sh", "{pathname}"]`.
//!
//! # Options
//! | option | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `argv` | list of strings | required | The program and its arguments. The program (first item) is looked up in `PATH` when it has no `/` (in the `PATH` of `env` if given, else the daemon's), or taken relative to the configuration file's directory; it must exist and be executable when the processor is built. It may not hold placeholders. |
//! | `cwd` | string | the daemon's | Working directory of the program; relative to the configuration file's directory; must exist. |
//! | `env` | table | `{}` | Extra environment variables (values may be strings, numbers or booleans). |
//! | `clear_env` | boolean | `false` | Start from an empty environment instead of the daemon's: the program sees only `env` and the `INOTIFIER_*` variables. |
//! | `timeout` | duration | `"60s"` | How long the program may run; then its whole process group is killed with `SIGKILL`. A string such as `"30s"`, `"500ms"`, `"2m"`, or a number of seconds. |
//! | `max_concurrent` | integer | number of CPUs | At most this many programs of this processor run at once; workers wait for a free slot. |
//!
//! ```toml
//! processor = "exec"
//! options = { argv = ["convert", "{pathname}", "-resize", "50%", "{path}/small/{name}"], timeout = "2m", max_concurrent = 2 }
//! ```
//!
//! # Placeholders
//! | placeholder | value |
//! | --- | --- |
//! | `{pathname}` | `path/name`, the full path of the file the event is about |
//! | `{path}` | the watched directory the event happened in |
//! | `{name}` | the entry's name in `{path}`; empty for events about `{path}` itself |
//! | `{maskname}` | such as `IN_CLOSE_WRITE` or `IN_CREATE\|IN_ISDIR` |
//! | `{src_pathname}` | where a moved entry came from (`IN_MOVED_TO` paired with its `IN_MOVED_FROM`); empty otherwise |
//! | `{id}` | the event's id, a number increasing with every event |
//! | `{mask}` | the mask as a decimal number |
//! | `{origin}` | `kernel`, `scan`, `rescan` or `catchup` |
//!
//! A placeholder may be part of an argument (`--file={pathname}`); `{{` and `}}` are literal
//! braces. Values are inserted byte for byte, so a name that is not UTF-8 reaches the program
//! unchanged. An unknown placeholder, or a lone brace, is an error when the processor is
//! built.
//!
//! # Environment
//! Besides its environment (the daemon's, or none with `clear_env`, plus `env`), the program
//! gets the event in variables, which override `env`:
//! `INOTIFIER_EVENT_ID`, `INOTIFIER_MASK`, `INOTIFIER_MASKNAME`, `INOTIFIER_PATH`,
//! `INOTIFIER_NAME`, `INOTIFIER_PATHNAME`, `INOTIFIER_SRC_PATHNAME` (empty when none),
//! `INOTIFIER_COOKIE`, `INOTIFIER_DIR` (`1` for a directory, else `0`), `INOTIFIER_ORIGIN`,
//! and `INOTIFIER_TIME` (RFC 3339, UTC).
//!
//! # How it runs
//! Standard input is `/dev/null`; standard output and error are the daemon's. The program
//! runs in a process group of its own, so a timeout kills it together with whatever it
//! started, and it is always waited for: no zombie is left.
//!
//! # Failures
//! - Exiting with a non-zero status, being killed by a signal, or running past `timeout` is a
//!   retryable failure; the message names the program, the status and the event's pathname.
//! - A program that is gone or not executable when the event comes is a permanent failure.
//! - A missing `cwd`, or a failure to start for want of resources (`EAGAIN`, `ENOMEM`,
//!   `EMFILE`), is retryable.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use inotifier_core::Event;
use inotifier_core::duration::format_duration;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::child::{kill_group, signal_name, wait_timeout};
use crate::error::BuildError;
use crate::semaphore::Semaphore;
use crate::template::Template;
use crate::text::{pathname_bytes, rfc3339};
use crate::{ProcessError, Processor, options};

pub(crate) const NAME: &str = "exec";

/// The `PATH` searched when neither `env` nor the daemon has one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecOptions {
    argv: Vec<String>,
    cwd: Option<PathBuf>,
    #[serde(default, deserialize_with = "options::string_table")]
    env: BTreeMap<String, String>,
    #[serde(default)]
    clear_env: bool,
    #[serde(default = "default_timeout", deserialize_with = "options::duration")]
    timeout: Duration,
    max_concurrent: Option<usize>,
}

/// Runs a program per event; see the [module docs](self).
pub struct ExecProcessor {
    /// The program as written in `argv`, for messages and the child's `argv[0]`.
    program_name: String,
    /// The program found when the processor was built.
    program: PathBuf,
    args: Vec<Template>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    clear_env: bool,
    timeout: Duration,
    slots: Semaphore,
    max_concurrent: usize,
}

impl std::fmt::Debug for ExecProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcessor")
            .field("program", &self.program)
            .field("timeout", &self.timeout)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl ExecProcessor {
    pub(crate) fn build(
        options: &Map<String, Value>,
        base_dir: &Path,
    ) -> Result<ExecProcessor, BuildError> {
        let parsed: ExecOptions = options::parse(NAME, options)?;
        let Some((program_name, arguments)) = parsed.argv.split_first() else {
            return Err(BuildError::invalid(
                NAME,
                "argv",
                "the list is empty: give the program and its arguments, as in \
                 [\"gzip\", \"--\", \"{pathname}\"]",
            ));
        };
        if program_name.contains(['{', '}']) {
            return Err(BuildError::invalid(
                NAME,
                "argv",
                format!(
                    "the program {program_name:?} may not hold placeholders or braces: an event \
                     must not choose what runs"
                ),
            ));
        }
        let args = arguments
            .iter()
            .enumerate()
            .map(|(i, argument)| {
                Template::parse(argument).map_err(|error| {
                    BuildError::invalid(NAME, "argv", format!("argument {}: {error}", i + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (name, value) in &parsed.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(BuildError::invalid(
                    NAME,
                    "env",
                    format!("{name:?} is not a variable name: it may not be empty or hold `=`"),
                ));
            }
            if value.contains('\0') {
                return Err(BuildError::invalid(
                    NAME,
                    "env",
                    format!("the value of {name} holds a NUL byte"),
                ));
            }
        }
        let cwd = match &parsed.cwd {
            Some(cwd) => {
                let cwd = options::resolve(base_dir, cwd);
                if !cwd.is_dir() {
                    return Err(BuildError::invalid(
                        NAME,
                        "cwd",
                        format!("{} is not a directory", cwd.display()),
                    ));
                }
                Some(cwd)
            }
            None => None,
        };
        let search_path = match parsed.env.get("PATH") {
            Some(path) => OsString::from(path),
            None => std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        };
        let program = find_program(program_name, base_dir, &search_path)
            .map_err(|error| BuildError::invalid(NAME, "argv", error))?;
        let max_concurrent = match parsed.max_concurrent {
            Some(0) => {
                return Err(BuildError::invalid(
                    NAME,
                    "max_concurrent",
                    "it must be at least 1",
                ));
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        Ok(ExecProcessor {
            program_name: program_name.clone(),
            program,
            args,
            cwd,
            env: parsed.env.into_iter().collect(),
            clear_env: parsed.clear_env,
            timeout: parsed.timeout,
            slots: Semaphore::new(max_concurrent),
            max_concurrent,
        })
    }

    pub fn validate(options: &Map<String, Value>, base_dir: &Path) -> Result<(), BuildError> {
        // Building has no side effect: it only reads the options and looks at the disk.
        ExecProcessor::build(options, base_dir).map(drop)
    }

    /// The program that runs, as found when the processor was built.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn command(&self, event: &Event) -> Command {
        let mut command = Command::new(&self.program);
        command.arg0(&self.program_name);
        command.args(self.args.iter().map(|arg| arg.render(event)));
        if self.clear_env {
            command.env_clear();
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        for (name, value) in event_variables(event) {
            command.env(name, value);
        }
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command.stdin(Stdio::null());
        command.process_group(0);
        command
    }

    fn failure(&self, event: &Event, what: impl std::fmt::Display) -> String {
        format!(
            "exec {} {what} for {}",
            self.program_name,
            event.pathname().display()
        )
    }
}

impl Processor for ExecProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        let _slot = self.slots.acquire();
        if let Some(cwd) = &self.cwd
            && !cwd.is_dir()
        {
            return Err(ProcessError::retryable(self.failure(
                event,
                format_args!("cannot start: the directory {} is missing", cwd.display()),
            )));
        }
        let mut child = self.command(event).spawn().map_err(|error| {
            let message = self.failure(
                event,
                format_args!("cannot start ({}): {error}", self.program.display()),
            );
            match error.raw_os_error() {
                Some(libc::ENOENT | libc::EACCES | libc::ENOEXEC | libc::ENOTDIR | libc::ELOOP) => {
                    ProcessError::permanent(message)
                }
                _ => ProcessError::retryable(message),
            }
        })?;
        let status = match wait_timeout(&mut child, self.timeout) {
            Ok(Some(status)) => status,
            Ok(None) => {
                let pid = child.id();
                if let Err(error) = kill_group(&mut child) {
                    tracing::error!(pid, "exec: cannot kill and reap a timed-out child: {error}");
                }
                return Err(ProcessError::retryable(self.failure(
                    event,
                    format_args!(
                        "timed out after {} and was killed (pid {pid})",
                        format_duration(self.timeout)
                    ),
                )));
            }
            Err(error) => {
                let _ = kill_group(&mut child);
                return Err(ProcessError::retryable(
                    self.failure(event, format_args!("could not be waited for: {error}")),
                ));
            }
        };
        check_status(status).map_err(|what| ProcessError::retryable(self.failure(event, what)))
    }
}

fn check_status(status: ExitStatus) -> Result<(), String> {
    if status.success() {
        return Ok(());
    }
    Err(match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by {}", signal_name(signal)),
        _ => format!("failed: {status}"),
    })
}

/// The `INOTIFIER_*` variables of `event`.
fn event_variables(event: &Event) -> Vec<(&'static str, OsString)> {
    let mut pathname = Vec::new();
    pathname_bytes(event, &mut pathname);
    let mut time = Vec::new();
    rfc3339(&mut time, event.time_ns);
    let text = |s: String| OsString::from(s);
    vec![
        ("INOTIFIER_EVENT_ID", text(event.id.to_string())),
        ("INOTIFIER_MASK", text(event.mask.bits().to_string())),
        ("INOTIFIER_MASKNAME", text(event.maskname())),
        ("INOTIFIER_PATH", event.path.as_os_str().to_os_string()),
        ("INOTIFIER_NAME", event.name.clone()),
        ("INOTIFIER_PATHNAME", OsString::from_vec(pathname)),
        (
            "INOTIFIER_SRC_PATHNAME",
            event
                .src_pathname
                .as_ref()
                .map(|src| src.as_os_str().to_os_string())
                .unwrap_or_default(),
        ),
        ("INOTIFIER_COOKIE", text(event.cookie.to_string())),
        (
            "INOTIFIER_DIR",
            text(if event.dir() { "1" } else { "0" }.into()),
        ),
        ("INOTIFIER_ORIGIN", text(event.origin.as_str().into())),
        ("INOTIFIER_TIME", OsString::from_vec(time)),
    ]
}

/// The program to run: `name` itself if it has a `/` (relative to `base_dir`), else the first
/// executable file called `name` in `search_path`.
fn find_program(name: &str, base_dir: &Path, search_path: &OsStr) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("the program (first item) is empty".into());
    }
    if name.contains('/') {
        let path = options::resolve(base_dir, Path::new(name));
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(why) => Err(format!("cannot run {}: {why}", path.display())),
        };
    }
    for dir in search_path.as_bytes().split(|&b| b == b':') {
        // An empty entry is the current directory in POSIX; a daemon should not run what
        // happens to be there, so it is skipped.
        if dir.is_empty() {
            continue;
        }
        let candidate = Path::new(OsStr::from_bytes(dir)).join(name);
        if executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "program {name:?} not found in PATH ({}): install it or give its full path",
        search_path.to_string_lossy()
    ))
}

fn executable(path: &Path) -> Result<(), &'static str> {
    let metadata = std::fs::metadata(path).map_err(|_| "no such file")?;
    if !metadata.is_file() {
        return Err("not a regular file");
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err("not executable (no x permission)");
    }
    Ok(())
}
