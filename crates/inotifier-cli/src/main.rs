//! `inotifier`: Linux file events that are never lost.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod output;
mod signals;
mod watch;

#[derive(Parser)]
#[command(
    name = "inotifier",
    version,
    about = "Linux file events that are never lost: recursive inotify watches with move pairing and overflow recovery",
    propagate_version = true
)]
struct Cli {
    /// Log level for messages on stderr: error, warn, info, debug or trace. Also from the
    /// INOTIFIER_LOG environment variable.
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        env = "INOTIFIER_LOG",
        default_value = "warn"
    )]
    log_level: tracing::Level,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Watch(watch::WatchArgs),
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(cli.log_level)
        .with_target(false)
        .without_time()
        .init();
    let result = match cli.command {
        Command::Watch(args) => watch::run(args),
        Command::Check(args) => check::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("inotifier: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
