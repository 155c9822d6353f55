//! `inotifier doctor`: checks this machine for a config file, without starting the daemon.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use inotifier_daemon::config::{self, ConfigError};
use inotifier_daemon::doctor::{self, DoctorOptions, Finding, Level};

#[derive(Args)]
#[command(
    about = "Check this machine for a config file, without starting the daemon",
    long_about = "Check this machine for a config file, without starting the daemon: whether \
the daemon would run there, and run well. One line per check, \"LEVEL  CHECK: what was found \
(hint: what to do)\", LEVEL being ok, warning or problem:\n\n\
  path        each watch path exists and is readable\n\
  watches     the directories the watches need (one inotify watch each; all of them below a \
recursive watch) against fs.inotify.max_user_watches, minus the watches this user's other \
processes hold; the hint gives the sysctl line\n\
  instances   fs.inotify.max_user_instances leaves the daemon one\n\
  queue       fs.inotify.max_queued_events (below 16384: overflows, and rescans, come sooner)\n\
  filesystem  each watch path's filesystem and the backend it gets: inotify, which misses \
the changes other hosts make on NFS, SMB/CIFS, FUSE, 9p, Ceph and other network filesystems\n\
  journal     the journal opens read-only and passes SQLite's integrity check; free space on \
its disk\n\
  pid file    the pid file's directory passes the daemon's safety rule; whether a daemon \
runs\n\
  processor   each processor's options, as the daemon would build it\n\
  reach       each broker and webhook accepts a connection and, for TLS, completes the \
handshake with the certificates the processor would use; no event and no credentials are \
sent\n\n\
Nothing is changed: no file or directory is created, the journal is not written.\n\n\
Exit status: 0 when nothing is a problem (warnings allowed), 1 otherwise (the config file \
invalid or unreadable included), 2 on a usage error.",
    after_help = "Example:\n  inotifier doctor -c /etc/inotifier/inotifier.toml"
)]
pub struct DoctorArgs {
    /// The config file to check the machine for (TOML, as for `run`).
    #[arg(short, long = "config", value_name = "FILE")]
    config: PathBuf,

    /// How long to wait for each broker or webhook to accept a connection and complete its
    /// TLS handshake, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    timeout: f64,

    /// How long counting the directories below recursive watches may take, in seconds, all
    /// watches together; a count cut short says "at least".
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    walk_limit: f64,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let seconds = |value: f64, name: &str| {
        Duration::try_from_secs_f64(value)
            .with_context(|| format!("--{name} {value}: expected a number of seconds >= 0"))
    };
    let options = DoctorOptions {
        connect_timeout: seconds(args.timeout, "timeout")?,
        walk_limit: seconds(args.walk_limit, "walk-limit")?,
    };
    let mut out = io::stdout().lock();
    // Processor options are the doctor's own check, reported with the rest: here only
    // whether the kind exists.
    let known_kind = |kind: &str, _: &serde_json::Map<String, serde_json::Value>, _: &Path| {
        if inotifier_daemon::processors::native_processors().contains(&kind) {
            Ok(())
        } else {
            crate::config_file::validate_processor(kind, &serde_json::Map::new(), Path::new("/"))
        }
    };
    let findings = match config::load_unchecked(&args.config, &known_kind) {
        Ok(config) => {
            let base_dir = std::path::absolute(&args.config)
                .ok()
                .and_then(|file| file.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("/"));
            let mut findings = vec![Finding::ok(
                "config",
                format!(
                    "{} is valid, {} watches",
                    args.config.display(),
                    config.watches.len()
                ),
            )];
            findings.extend(doctor::examine(&config, &base_dir, &options));
            findings
        }
        Err(ConfigError::Invalid(problems)) => problems
            .iter()
            .map(|problem| {
                Finding::problem(
                    "config",
                    problem.to_string(),
                    format!(
                        "`inotifier check -c {}` says the same",
                        args.config.display()
                    ),
                )
            })
            .collect(),
        Err(error) => vec![Finding::problem(
            "config",
            error.to_string(),
            "give the path of a config file this user can read",
        )],
    };
    for finding in &findings {
        writeln!(out, "{finding}")?;
    }
    writeln!(out, "{}", doctor::summary(&findings))?;
    out.flush().context("cannot write to stdout")?;
    Ok(if findings.iter().any(|f| f.level == Level::Problem) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
