//! Reading the daemon's TOML config file for the subcommands that need it.

use std::path::{Path, PathBuf};

use inotifier_daemon::Config;
use inotifier_daemon::config::{self, ConfigError};
use serde_json::{Map, Value};

/// Reads and checks the whole config file, processor options included.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    config::load(path, &validate_processor)
}

/// Only the pid file of a config file: `stop` and `status` must work even when the rest of
/// the file has become invalid (or a watched path is gone).
pub fn pid_file(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(config::load_pid_file(path)?)
}

/// The processors this binary runs, each checking its own options.
pub fn validate_processor(
    kind: &str,
    options: &Map<String, Value>,
    config_dir: &Path,
) -> Result<(), String> {
    inotifier_daemon::processors::validate(kind, options, config_dir)
        .map_err(|error| error.to_string())
}
