//! The inotify limits of `/proc/sys/fs/inotify` against what a configuration needs: one watch
//! per directory of a recursive watch (one for a plain one), out of what this user's
//! processes do not hold already.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use inotifier_core::Filters;

use super::Finding;
use crate::Config;

/// Below the kernel's default queue length, bursts overflow the queue sooner; each overflow
/// costs a rescan of the watched trees.
const QUEUE_DEFAULT: u64 = 16384;

/// Above this share of the watches left, the tree's growth soon reaches the limit.
const WATCHES_MARGIN: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InotifyLimits {
    pub max_user_watches: u64,
    pub max_user_instances: u64,
    pub max_queued_events: u64,
}

impl InotifyLimits {
    pub fn read() -> std::io::Result<InotifyLimits> {
        Ok(InotifyLimits {
            max_user_watches: read_limit("max_user_watches")?,
            max_user_instances: read_limit("max_user_instances")?,
            max_queued_events: read_limit("max_queued_events")?,
        })
    }
}

fn read_limit(name: &str) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))?;
    text.trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("{name} is not a number: {text:?}")))
}

/// Inotify use of one process: `(pid, watches, instances)`.
pub type ProcessUse = (i32, u64, u64);

/// The inotify watches and instances of every process running with this effective user id
/// (what the kernel charges against the user's limits), per process; from
/// `/proc/*/fdinfo`, which shows one `inotify wd:` line per watch.
pub fn inotify_usage() -> Vec<ProcessUse> {
    let euid = {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
    };
    let mut usage = Vec::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return usage;
    };
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if effective_uid(&process.path()) != Some(euid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let (mut watches, mut instances) = (0, 0);
        for fd in fds.flatten() {
            let is_inotify = std::fs::read_link(fd.path())
                .is_ok_and(|target| target.as_os_str().as_bytes() == b"anon_inode:inotify");
            if !is_inotify {
                continue;
            }
            instances += 1;
            let info = process.path().join("fdinfo").join(fd.file_name());
            if let Ok(text) = std::fs::read_to_string(info) {
                watches += text
                    .lines()
                    .filter(|line| line.starts_with("inotify wd:"))
                    .count() as u64;
            }
        }
        if instances > 0 {
            usage.push((pid, watches, instances));
        }
    }
    usage
}

fn effective_uid(process: &Path) -> Option<u32> {
    let status = std::fs::read_to_string(process.join("status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
}

/// The directories at and below `root` that a recursive watch with `filters` watches
/// (symbolic links are not followed, excluded directories not entered), and whether the
/// count was cut short at `deadline`.
pub fn count_directories(root: &Path, filters: &Filters, deadline: Instant) -> (u64, bool) {
    let mut count = 1;
    let mut pending = vec![root.to_path_buf()];
    let root_len = root.as_os_str().len();
    while let Some(dir) = pending.pop() {
        if Instant::now() >= deadline {
            return (count, true);
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let path = entry.path();
            let relative = &path.as_os_str().as_bytes()[root_len..];
            let relative = relative.strip_prefix(b"/").unwrap_or(relative);
            if filters.is_excluded(relative) {
                continue;
            }
            count += 1;
            pending.push(path);
        }
    }
    (count, false)
}

/// `max_user_watches` against the directories the watches need plus what this user's other
/// processes hold (a daemon already running with this config excluded: its watches are the
/// ones counted as needed), and `max_user_instances` against one more instance.
pub(super) fn check_watches(
    config: &Config,
    running: Option<i32>,
    walk_limit: Duration,
) -> Vec<Finding> {
    let limits = match InotifyLimits::read() {
        Ok(limits) => limits,
        Err(error) => {
            return vec![Finding::problem(
                "watches",
                format!("cannot read the inotify limits in /proc/sys/fs/inotify: {error}"),
                "inotify must be available: a Linux kernel with CONFIG_INOTIFY_USER, and /proc \
                 mounted",
            )];
        }
    };
    let deadline = Instant::now() + walk_limit;
    // Watches of one path share the kernel's watches: each path counts once, recursive when
    // one of its watches is.
    let mut paths: Vec<(&Path, Option<&Filters>)> = Vec::new();
    for watch in &config.watches {
        let recursive = (watch.recursive && watch.path.is_dir()).then_some(&watch.filters);
        match paths.iter_mut().find(|(path, _)| *path == watch.path) {
            Some((_, filters)) => *filters = filters.or(recursive),
            None => paths.push((&watch.path, recursive)),
        }
    }
    let mut needed = 0u64;
    let mut cut_short = false;
    for (path, recursive) in paths {
        needed += match recursive {
            Some(filters) => {
                let (count, short) = count_directories(path, filters, deadline);
                cut_short |= short;
                count
            }
            None => 1,
        };
    }
    let usage = inotify_usage();
    let others = usage.iter().filter(|(pid, _, _)| Some(*pid) != running);
    let (used_watches, used_instances) = others.fold((0, 0), |(w, i), (_, watches, instances)| {
        (w + watches, i + instances)
    });
    let available = limits.max_user_watches.saturating_sub(used_watches);
    let at_least = if cut_short { "at least " } else { "" };
    let counted = format!(
        "{at_least}{needed} watches needed (one per watched directory{}), {available} left \
         of max_user_watches {} ({used_watches} held by this user's other processes)",
        if cut_short {
            format!(", counting stopped after {walk_limit:?}")
        } else {
            String::new()
        },
        limits.max_user_watches,
    );
    let suggested = (used_watches + needed).saturating_mul(2).div_ceil(1024) * 1024;
    let sysctl = format!(
        "sysctl fs.inotify.max_user_watches={} (and the same line, without `sysctl`, in a \
         file of /etc/sysctl.d/ to keep it)",
        suggested.max(limits.max_user_watches)
    );
    let mut findings = vec![if needed > available {
        Finding::problem("watches", counted, sysctl)
    } else if needed as f64 > available as f64 * WATCHES_MARGIN {
        Finding::warning(
            "watches",
            counted,
            format!("the trees may grow past the limit: {sysctl}"),
        )
    } else {
        Finding::ok("watches", counted)
    }];
    let instances = format!(
        "{used_instances} inotify instances held by this user's other processes, \
         max_user_instances {}",
        limits.max_user_instances
    );
    findings.push(if used_instances >= limits.max_user_instances {
        Finding::problem(
            "instances",
            instances,
            format!(
                "the daemon needs one: sysctl fs.inotify.max_user_instances={}",
                (limits.max_user_instances * 2).max(128)
            ),
        )
    } else {
        Finding::ok("instances", instances)
    });
    findings
}

/// `max_queued_events`: events the kernel holds for the daemon before it overflows.
pub(super) fn check_queue() -> Finding {
    match read_limit("max_queued_events") {
        Err(error) => Finding::warning(
            "queue",
            format!("cannot read /proc/sys/fs/inotify/max_queued_events: {error}"),
            "check that /proc is mounted",
        ),
        Ok(queue) if queue < QUEUE_DEFAULT => Finding::warning(
            "queue",
            format!(
                "max_queued_events {queue} is below the kernel's default {QUEUE_DEFAULT}: \
                 bursts overflow the queue, and each overflow costs a rescan"
            ),
            format!("sysctl fs.inotify.max_queued_events={QUEUE_DEFAULT}"),
        ),
        Ok(queue) => Finding::ok("queue", format!("max_queued_events {queue}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_counted_without_the_excluded_ones() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a/b/c", "a/d", ".git/objects", "e"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("a/file"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            count_directories(dir.path(), &Filters::default(), far),
            (8, false)
        );
        let filters = Filters {
            exclude: vec![inotifier_core::Glob::new(".git").unwrap()],
            include: vec![],
        };
        assert_eq!(count_directories(dir.path(), &filters, far), (6, false));
        let (_, short) = count_directories(dir.path(), &filters, Instant::now());
        assert!(short);
    }
}
