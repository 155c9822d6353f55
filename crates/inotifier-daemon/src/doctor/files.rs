//! The files of a configuration: the watch paths, the journal, the pid file.

use std::io;
use std::path::Path;

use inotifier_journal::{Journal, JournalError};

use super::{Finding, bytes, filesystem};
use crate::Config;
use crate::config::{PathProblem, check_watch_path};
use crate::pidfile::{self, Holder, Location};

/// Below this much free space, the journal's disk is a problem: a burst of events fills it.
const JOURNAL_SPACE_PROBLEM: u64 = 64 * 1024 * 1024;
/// Below this much, a warning.
const JOURNAL_SPACE_WARNING: u64 = 1024 * 1024 * 1024;

/// The watch path exists and can be read (the rule `inotifier check` and the daemon apply).
pub(super) fn watch_path(path: &Path) -> Finding {
    match check_watch_path(path) {
        Ok(()) => Finding::ok("path", format!("{} exists and is readable", path.display())),
        Err(PathProblem::Missing) => Finding::problem(
            "path",
            format!("{} does not exist", path.display()),
            "create it, or correct the watch's path",
        ),
        Err(problem @ PathProblem::Unreadable { .. }) => {
            let text = problem.to_string();
            let (what, hint) = text.split_once(": ").unwrap_or((&text, ""));
            Finding::problem("path", format!("{} {what}", path.display()), hint)
        }
    }
}

/// The pid of a daemon that holds `pid_file` now, if one does.
pub(super) fn running_daemon(pid_file: &Path) -> Option<i32> {
    match pidfile::probe(pid_file) {
        Ok(Holder::Running { pid }) => Some(pid),
        _ => None,
    }
}

/// The pid file's directory passes the daemon's own rule ([`pidfile::check_location`]), and
/// whether a daemon holds the file now.
pub(super) fn check_pid_file(pid_file: &Path) -> Vec<Finding> {
    let shown = pid_file.display();
    let mut findings = vec![match pidfile::check_location(pid_file) {
        Ok(Location::Safe) => Finding::ok(
            "pid file",
            format!("{shown}: its directory is safe (only this user or root can write it)"),
        ),
        Ok(Location::DirectoryMissing) => Finding::ok(
            "pid file",
            format!("{shown}: its directory does not exist yet; the daemon creates it (mode 0700)"),
        ),
        Err(pidfile::PidFileError::Insecure { why, .. }) => Finding::problem(
            "pid file",
            format!("{shown}: the daemon refuses it: {why}"),
            "put the pid file in a directory only this user can write, such as \
             $XDG_RUNTIME_DIR or /run/inotifier (pid_file in [daemon])",
        ),
        Err(error) => Finding::problem(
            "pid file",
            error.to_string(),
            "give this user access to the pid file's directory, or choose another pid_file",
        ),
    }];
    if let Some(pid) = running_daemon(pid_file) {
        findings.push(Finding::ok(
            "pid file",
            format!("a daemon runs with this config now (pid {pid})"),
        ));
    }
    findings
}

/// The journal opens and passes SQLite's check, read-only, and its disk has room.
pub(super) fn check_journal(config: &Config) -> Vec<Finding> {
    let Some(path) = &config.journal.path else {
        return vec![Finding::warning(
            "journal",
            "disabled: events not yet delivered when the daemon stops are lost, and changes \
             made while it is down are not reported",
            "enable it ([journal] enabled = true) unless losing events is acceptable",
        )];
    };
    let shown = path.display();
    let mut findings = Vec::new();
    match Journal::inspect(path) {
        Ok(inspection) => findings.push(Finding::ok(
            "journal",
            format!(
                "{shown} opens and passes the integrity check ({}, {} deliveries open)",
                bytes(inspection.bytes),
                inspection.open_deliveries
            ),
        )),
        Err(JournalError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            let dir = parent(path);
            let created_with_pid_file = config.daemon.pid_file.parent() == Some(dir);
            if dir.is_dir() || created_with_pid_file {
                findings.push(Finding::ok(
                    "journal",
                    format!("{shown} does not exist yet; the daemon creates it"),
                ));
            } else {
                findings.push(Finding::problem(
                    "journal",
                    format!("{shown}: its directory {} does not exist", dir.display()),
                    "create the directory, or correct [journal] path",
                ));
            }
        }
        Err(error @ (JournalError::Corrupt { .. } | JournalError::Lost { .. })) => {
            findings.push(Finding::problem(
                "journal",
                error.to_string(),
                format!(
                    "with the daemon stopped, run `inotifier journal recover --journal {shown}`"
                ),
            ))
        }
        Err(error) => findings.push(Finding::problem(
            "journal",
            error.to_string(),
            "the daemon cannot open it either: correct [journal] path, or move the file aside",
        )),
    }
    findings.push(journal_space(path));
    findings
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn journal_space(path: &Path) -> Finding {
    // The nearest directory that exists: the journal's own may be made at start.
    let mut dir = parent(path);
    while !dir.is_dir() {
        match dir.parent() {
            Some(up) => dir = up,
            None => break,
        }
    }
    match filesystem::free_space(dir) {
        Err(error) => Finding::warning(
            "journal",
            format!("cannot tell the free space of {}: {error}", dir.display()),
            "check the disk of the journal by hand (df)",
        ),
        Ok(free) if free < JOURNAL_SPACE_PROBLEM => Finding::problem(
            "journal",
            format!(
                "only {} free on the journal's disk ({})",
                bytes(free),
                dir.display()
            ),
            "free space there, or move the journal ([journal] path) to a disk with room",
        ),
        Ok(free) if free < JOURNAL_SPACE_WARNING => Finding::warning(
            "journal",
            format!(
                "{} free on the journal's disk ({})",
                bytes(free),
                dir.display()
            ),
            "a backlog of undelivered events needs room: keep at least 1 GiB free",
        ),
        Ok(free) => Finding::ok(
            "journal",
            format!(
                "{} free on the journal's disk ({})",
                bytes(free),
                dir.display()
            ),
        ),
    }
}
