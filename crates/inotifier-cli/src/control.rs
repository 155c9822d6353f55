//! `inotifier stop` and `inotifier status`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use inotifier_core::duration::{format_duration, parse_duration};
use inotifier_daemon::control::{self, StatusReport, StopOutcome};

use crate::config_file;

/// LSB: "program is not running".
const NOT_RUNNING: u8 = 3;

/// Which daemon: the one of a config file, or of a pid file.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The daemon's config file (its [daemon] pid_file is used; the rest is not checked).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The daemon's pid file.
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
}

impl Target {
    fn pid_file(&self) -> anyhow::Result<PathBuf> {
        match (&self.pid_file, &self.config) {
            (Some(pid_file), _) => Ok(pid_file.clone()),
            (None, Some(config)) => config_file::pid_file(config),
            (None, None) => unreachable!("clap requires one of them"),
        }
    }
}

#[derive(Args)]
#[command(
    about = "Stop a running daemon",
    long_about = "Stop a running daemon: send SIGTERM to the process holding the pid file's lock \
(never to a pid merely written in the file), then wait until it has delivered what it read and \
released the pid file.\n\n\
Exit status: 0 stopped, 1 still running after --timeout (or an error), 3 not running."
)]
pub struct StopArgs {
    #[command(flatten)]
    target: Target,

    /// How long to wait for the daemon to finish (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
#[command(
    about = "Tell whether the daemon runs, with its counters",
    long_about = "Tell whether the daemon runs: pid, uptime, watches, events seen, delivered and \
failed. With --json, one JSON object with the same figures per watch and in total, and what the \
journal holds for each (pending, dead letters, the oldest pending event's age): a stable \
format, described in docs/metrics.md.\n\nExit status (LSB): 0 running, 3 not running, 1 on an \
error."
)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,

    /// Print one JSON object (the format of docs/metrics.md) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let pid_file = args.target.pid_file()?;
    match control::stop(&pid_file, args.timeout)? {
        StopOutcome::Stopped { pid } => {
            println!("inotifier (pid {pid}) stopped");
            Ok(ExitCode::SUCCESS)
        }
        StopOutcome::NotRunning { stale_pid } => {
            eprintln!("{}", not_running_message(&pid_file, stale_pid));
            Ok(ExitCode::from(NOT_RUNNING))
        }
        StopOutcome::StillRunning { pid } => {
            eprintln!(
                "inotifier (pid {pid}) was sent SIGTERM but is still running after {}: it is \
                 delivering what it had read; wait longer (--timeout), or kill -KILL {pid} to \
                 give those events up",
                format_duration(args.timeout)
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let pid_file = args.target.pid_file()?;
    let report = control::status(&pid_file)?;
    if args.json {
        let document = inotifier_daemon::report::document(&pid_file, &report);
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(if document.running {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(NOT_RUNNING)
        });
    }
    match report {
        StatusReport::NotRunning {
            pid_file,
            stale_pid,
        } => {
            println!("{}", not_running_message(&pid_file, stale_pid));
            Ok(ExitCode::from(NOT_RUNNING))
        }
        StatusReport::Running {
            pid,
            status,
            uptime,
        } => {
            println!("inotifier is running");
            println!("pid:            {pid}");
            if let Some(uptime) = uptime {
                println!("uptime:         {}", human_duration(uptime));
            }
            match status {
                Some(status) => {
                    if status.problems.is_empty() {
                        println!("state:          {}", status.state);
                    } else {
                        println!(
                            "state:          {} ({})",
                            status.state,
                            status.problems.join("; ")
                        );
                    }
                    if let Some(config) = &status.config {
                        println!("config:         {}", config.display());
                    }
                    println!(
                        "watches:        {} ({} directories and files)",
                        status.watches, status.kernel_watches
                    );
                    println!("events seen:    {}", status.events_seen);
                    println!("delivered:      {}", status.delivered);
                    println!("failed:         {}", status.failed);
                    println!("retries:        {}", status.retried);
                    println!("batches:        {}", status.batches);
                    println!("behind:         {}", status.behind);
                }
                None => println!("(its status file could not be read)"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn not_running_message(pid_file: &std::path::Path, stale_pid: Option<i32>) -> String {
    match stale_pid {
        Some(pid) => format!(
            "inotifier is not running (stale pid file {} names pid {pid}, which no longer holds it; the next start takes it over)",
            pid_file.display()
        ),
        None => format!(
            "inotifier is not running (no pid file at {})",
            pid_file.display()
        ),
    }
}

fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, (seconds % 3600) / 60),
    }
}
