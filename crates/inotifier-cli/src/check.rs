//! `inotifier check`: validates a config file without starting anything.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use inotifier_daemon::config::{Config, ConfigError};

#[derive(Args)]
#[command(
    about = "Check a config file without starting anything",
    long_about = "Check a config file without starting anything: its TOML syntax, that every key is \
known and has a valid value (event names, globs, durations, log level, counts), that each \
[[watch]] has a path, events and a processor, that the processor is known, and that every watch \
path exists and can be read. Relative paths are resolved against the config file's directory.\n\n\
On success it prints \"FILE: ok, N watches\", then one line per watch: its path, events and \
processor, separated by two spaces.\n\n\
Otherwise it prints every problem found on stderr, one per line, as \
\"FILE:LINE:COLUMN: what is wrong: what is valid\", then \"FILE: invalid, N errors\".\n\n\
Exit status: 0 when the file is valid, 1 when it is not (or cannot be read), 2 on a usage error.",
    after_help = "Example:\n  inotifier check -c /etc/inotifier/inotifier.toml"
)]
pub struct CheckArgs {
    /// The config file to check (TOML; see examples/inotifier.toml for every key).
    #[arg(short, long = "config", value_name = "FILE")]
    config: PathBuf,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    match crate::config_file::load(&args.config) {
        Ok(config) => {
            print_summary(&args.config, &config).context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{error}");
            if let ConfigError::Invalid(problems) = &error {
                eprintln!(
                    "{}: invalid, {} error{}",
                    args.config.display(),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_summary(file: &Path, config: &Config) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{}: ok, {} watches",
        file.display(),
        config.watches.len()
    )?;
    for watch in &config.watches {
        writeln!(
            out,
            "{}  {}  {}",
            watch.path.display(),
            watch.events,
            watch.processor.kind
        )?;
    }
    out.flush()
}
