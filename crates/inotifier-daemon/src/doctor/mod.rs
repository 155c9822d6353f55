//! `inotifier doctor` and `manage.py inotifier_doctor`: what this machine lacks for a
//! configuration, found without starting the daemon. Each check is a function returning
//! [`Finding`]s, one line each: ok, warning or problem, with a hint saying what to do.
//!
//! A problem is something the daemon would fail on, or lose events to (a missing path, too
//! few inotify watches, a damaged journal, an unsafe pid file directory, a broker it cannot
//! reach); a warning is something it runs with, worse (changes missed on a network
//! filesystem, a short kernel queue, a disk nearly full).
//!
//! Nothing is changed: the journal is opened read-only, no pid file or directory is created,
//! and a broker or webhook is only connected to (TCP, and the TLS handshake with the
//! certificates the processor would use); no event and no credentials are sent.

mod files;
mod filesystem;
mod inotify;
mod reach;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::Config;

pub use inotifier_core::filesystem::{Filesystem, filesystem_of};
pub use inotify::{InotifyLimits, count_directories, inotify_usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Ok,
    Warning,
    Problem,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Problem => "problem",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// Which check: `path`, `watches`, `queue`, `filesystem`, `journal`, `pid file`,
    /// `processor`, `reach`, `config`.
    pub check: &'static str,
    /// What was found, naming the path, limit or server.
    pub what: String,
    /// What to do about it; always given for a warning or a problem.
    pub hint: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, what: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            check,
            what: what.into(),
            hint: None,
        }
    }

    pub fn warning(
        check: &'static str,
        what: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            level: Level::Warning,
            check,
            what: what.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn problem(
        check: &'static str,
        what: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            level: Level::Problem,
            check,
            what: what.into(),
            hint: Some(hint.into()),
        }
    }
}

/// `LEVEL    CHECK: WHAT (hint: HINT)` on one line.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8} {}: {}", self.level, self.check, self.what)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// How long the slow checks may take.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Connecting to a broker or webhook, TLS handshake included.
    pub connect_timeout: Duration,
    /// Counting the directories below each recursive watch, all watches together; a count cut
    /// short says so.
    pub walk_limit: Duration,
}

impl Default for DoctorOptions {
    /// 5 s per connection, 30 s of directory walking.
    fn default() -> DoctorOptions {
        DoctorOptions {
            connect_timeout: Duration::from_secs(5),
            walk_limit: Duration::from_secs(30),
        }
    }
}

/// Every check of `config`, whose native processors read relative paths from `base_dir`
/// (the config file's directory, or the Django project's). Processor kinds that are not
/// native (the Django app's Python processors) are left to their host.
pub fn examine(config: &Config, base_dir: &Path, options: &DoctorOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Several watches of one path (other processors, other events): one line per path.
    let mut paths: Vec<&Path> = Vec::new();
    for watch in &config.watches {
        if !paths.contains(&watch.path.as_path()) {
            paths.push(&watch.path);
        }
    }
    findings.extend(paths.iter().map(|path| files::watch_path(path)));
    let running = files::running_daemon(&config.daemon.pid_file);
    findings.extend(inotify::check_watches(config, running, options.walk_limit));
    findings.push(inotify::check_queue());
    // One line per path and backend.
    let mut seen = Vec::new();
    for watch in &config.watches {
        let identity = (
            &watch.path,
            watch.backend,
            watch.poll_interval,
            watch.recursive,
        );
        if !seen.contains(&identity) {
            seen.push(identity);
            findings.extend(filesystem::check_filesystem(watch));
        }
    }
    findings.extend(files::check_journal(config));
    findings.extend(files::check_pid_file(&config.daemon.pid_file));
    findings.extend(reach::check_processors(
        config,
        base_dir,
        options.connect_timeout,
    ));
    findings
}

/// How many findings of each level: `(ok, warnings, problems)`.
pub fn tally(findings: &[Finding]) -> (usize, usize, usize) {
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    (
        count(Level::Ok),
        count(Level::Warning),
        count(Level::Problem),
    )
}

/// "12 ok, 1 warning, 0 problems".
pub fn summary(findings: &[Finding]) -> String {
    let (ok, warnings, problems) = tally(findings);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{ok} ok, {}, {}",
        plural(warnings, "warning"),
        plural(problems, "problem")
    )
}

/// "1.5 GiB", for sizes in messages.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_one_line_each() {
        let finding = Finding::problem("path", "/srv/x does not exist", "create it");
        assert_eq!(
            finding.to_string(),
            "problem  path: /srv/x does not exist (hint: create it)"
        );
        assert_eq!(
            Finding::ok("queue", "16384").to_string(),
            "ok       queue: 16384"
        );
        assert_eq!(
            summary(&[finding, Finding::ok("queue", "x")]),
            "1 ok, 0 warnings, 1 problem"
        );
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
