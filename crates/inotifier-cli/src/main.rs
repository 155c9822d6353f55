//! `inotifier`: Linux file events that are never lost.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod config_file;
mod control;
mod daemon;
mod doctor;
mod journal;
mod output;
mod progress_line;
mod signals;
mod watch;
mod watch_state;

#[derive(Parser)]
#[command(
    name = "inotifier",
    version,
    about = "Linux file events that are never lost: ad-hoc watches (watch), and a daemon that hands every event to a processor (check, doctor, run, start, stop, status), and the inspection of its durable journal (journal)",
    propagate_version = true
)]
struct Cli {
    /// Log level for messages on stderr: error, warn, info, debug or trace. Also from the
    /// INOTIFIER_LOG environment variable. Default: warn for `watch`, the config file's
    /// [daemon] log_level for `run` and `start`.
    #[arg(long, global = true, value_name = "LEVEL", env = "INOTIFIER_LOG")]
    log_level: Option<tracing::Level>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Watch(watch::WatchArgs),
    Check(check::CheckArgs),
    Doctor(doctor::DoctorArgs),
    Run(daemon::RunArgs),
    Start(daemon::StartArgs),
    Stop(control::StopArgs),
    Status(control::StatusArgs),
    Journal(journal::JournalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Stop(_)
            | Command::Status(_)
            | Command::Journal(_)
            | Command::Check(_)
            | Command::Doctor(_)
    ) {
        end_quietly_when_stdout_closes();
    }
    let result = match cli.command {
        Command::Watch(args) => {
            init_logging(cli.log_level.unwrap_or(tracing::Level::WARN), false);
            watch::run(args)
        }
        Command::Run(args) => daemon::run(args, cli.log_level),
        Command::Start(args) => daemon::start(args, cli.log_level),
        Command::Stop(args) => {
            init_logging(cli.log_level.unwrap_or(tracing::Level::WARN), false);
            control::stop(args)
        }
        Command::Status(args) => {
            init_logging(cli.log_level.unwrap_or(tracing::Level::WARN), false);
            control::status(args)
        }
        Command::Journal(args) => {
            init_logging(cli.log_level.unwrap_or(tracing::Level::WARN), false);
            journal::run(args)
        }
        Command::Check(args) => {
            init_logging(cli.log_level.unwrap_or(tracing::Level::WARN), false);
            check::run(args)
        }
        Command::Doctor(args) => {
            init_logging(cli.log_level.unwrap_or(tracing::Level::WARN), false);
            doctor::run(args)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("inotifier: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command that only prints (`status --json | grep -q running`, `journal list | head`) ends
/// quietly when its reader goes away, as Unix tools do, instead of panicking on the failed
/// write: SIGPIPE back to its default. Not for `run`, `start` and `watch`, whose processors and
/// output handle a closed pipe or socket themselves (Rust ignores SIGPIPE for that).
fn end_quietly_when_stdout_closes() {
    // SAFETY: sets this process's disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs go to stderr; a daemon writing to a file wants timestamps, a terminal or the systemd
/// journal (which adds its own) does not.
fn init_logging(level: tracing::Level, with_time: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    if with_time {
        builder.init();
    } else {
        builder.without_time().init();
    }
}
