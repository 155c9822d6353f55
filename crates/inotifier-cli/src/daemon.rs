//! `inotifier run` and `inotifier start`: the daemon in the foreground, or in the background.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use inotifier_daemon::daemonize::{self, Role, StartOutcome};
use inotifier_daemon::lifecycle::{self, RunOptions};
use inotifier_daemon::notify::Notifier;
use inotifier_daemon::pidfile::{self, Holder};
use inotifier_daemon::{Config, NativeProcessors};

use crate::config_file;

#[derive(Args)]
#[command(
    about = "Run the daemon in the foreground (for systemd, Docker, supervisord)",
    long_about = "Run the daemon in the foreground: watch what the config file lists and hand every \
event to its processor.\n\n\
Under systemd (Type=notify) READY=1 is sent once every watch is in place. SIGTERM or SIGINT stop \
reading and deliver what was already read, up to [daemon] drain_timeout, then exit 0. SIGHUP \
reloads the config file: watches that did not change keep running without losing an event, added, \
removed and changed ones are applied; an invalid file is rejected with its error in the log and the \
running configuration stays.\n\n\
Logs go to stderr, at [daemon] log_level unless --log-level or INOTIFIER_LOG says otherwise. A long \
initial scan, catch-up or journal replay logs its progress at info (entries, rate, estimated rest) \
every 5 s, or every INOTIFIER_PROGRESS_INTERVAL seconds (docs/operations.md). To check the machine \
for the config first: inotifier doctor.\n\n\
Exit status: 0 after SIGTERM/SIGINT, 1 if the daemon could not start (invalid config, pid file \
held by a running daemon, a path that cannot be watched)."
)]
pub struct RunArgs {
    /// The TOML config file (see `inotifier check --help` and the README's config reference).
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Args)]
#[command(
    about = "Start the daemon in the background",
    long_about = "Start the daemon in the background (double fork, new session) with its stdout and \
stderr appended to [daemon] stdout and stderr (created with mode 0640; /dev/null when unset).\n\n\
Waits until the daemon has every watch in place: exit status 0 means it is running and watching, \
1 that it is not (the reason is printed: invalid config, already running with pid N, a path that \
cannot be watched, ...)."
)]
pub struct StartArgs {
    /// The TOML config file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
}

pub fn run(args: RunArgs, log_level: Option<tracing::Level>) -> anyhow::Result<ExitCode> {
    let config = config_file::load(&args.config)?;
    let under_systemd =
        std::env::var_os("NOTIFY_SOCKET").is_some() || std::env::var_os("JOURNAL_STREAM").is_some();
    // SAFETY: no thread has been started yet.
    let notifier = unsafe { Notifier::from_env() };
    crate::init_logging(log_level.unwrap_or(config.daemon.log_level), !under_systemd);
    run_daemon(config, &args.config, notifier, None)
}

pub fn start(args: StartArgs, log_level: Option<tracing::Level>) -> anyhow::Result<ExitCode> {
    let config = config_file::load(&args.config)?;
    if let Holder::Running { pid } = pidfile::probe(&config.daemon.pid_file)? {
        anyhow::bail!(
            "inotifier is already running with pid {pid} (pid file {}); stop it with `inotifier stop -c {}`",
            config.daemon.pid_file.display(),
            args.config.display()
        );
    }
    // SAFETY: no thread has been started yet; the daemon must not inherit systemd's socket.
    unsafe { Notifier::from_env() };
    let role = daemonize::daemonize(
        config.daemon.stdout.as_deref(),
        config.daemon.stderr.as_deref(),
    )
    .context("cannot start the daemon")?;
    match role {
        Role::Starter(StartOutcome::Ready {
            pid,
            kernel_watches,
        }) => {
            println!(
                "inotifier started: pid {pid}, {} watches ({kernel_watches} directories and files), pid file {}",
                config.watches.len(),
                config.daemon.pid_file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Role::Starter(StartOutcome::Failed(message)) => {
            anyhow::bail!("the daemon did not start: {message}")
        }
        Role::Daemon(pipe) => {
            crate::init_logging(log_level.unwrap_or(config.daemon.log_level), true);
            run_daemon(config, &args.config, Notifier::disabled(), Some(pipe))
        }
    }
}

fn run_daemon(
    config: Config,
    config_path: &Path,
    notifier: Notifier,
    readiness_pipe: Option<std::fs::File>,
) -> anyhow::Result<ExitCode> {
    let config_path = config_path.to_path_buf();
    let reload = Box::new(move || config_file::load(&config_path).map_err(|e| format!("{e:#}")));
    let options = RunOptions {
        notifier,
        readiness_pipe,
        reload: Some(reload),
    };
    lifecycle::run(config, Arc::new(NativeProcessors), options)?;
    Ok(ExitCode::SUCCESS)
}
