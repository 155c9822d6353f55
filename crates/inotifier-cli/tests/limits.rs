//! `inotifier watch` against lowered inotify limits in `/proc/sys/fs/inotify`. Each test holds
//! the machine-wide exclusive test lock for its whole duration and changes a limit only through
//! a [`Sysctl`] guard, which restores it when dropped (also on panic). Only root can lower a
//! limit: run by another user, each test is skipped, saying so.

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use common::{
    DEADLINE, Watcher, integers_in, maskname, parse, run_inotifier, run_to_exit, watch_command,
};
use inotifier_test_support::privileges::root_available;
use inotifier_test_support::{Sysctl, inotify_exclusive, inotify_usage};

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inotifier-limits-")
        .tempdir()
        .expect("temporary directory")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn read_limit(name: &str) -> u64 {
    let path = format!("/proc/sys/fs/inotify/{name}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .expect("numeric sysctl")
}

/// How many inotify instances processes running with effective uid 0 hold: the instances
/// charged to root, which `max_user_instances` limits (`inotify_usage` counts every user's).
fn root_inotify_instances() -> u64 {
    let mut instances = 0;
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for process in processes.flatten() {
        let Ok(status) = std::fs::read_to_string(process.path().join("status")) else {
            continue;
        };
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|euid| euid.parse::<u32>().ok());
        if euid != Some(0) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
            {
                instances += 1;
            }
        }
    }
    instances
}

// ----- A. queue overflow -------------------------------------------------------------------------

#[test]
fn a_queue_overflow_is_reported_and_every_creation_recovered() {
    if !root_available(
        "a_queue_overflow_is_reported_and_every_creation_recovered",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let dir = temp_dir();
    let root = dir.path();
    let files = 3000;

    let queue = Sysctl::set("max_queued_events", 64, &exclusive);
    let mut command = watch_command(["-e", "IN_CREATE", s(root)]);
    // Stdout is not read yet: the pipe fills up, the watcher blocks, and the kernel queue
    // (64 events, fixed when the instance was created) overflows.
    let mut watcher = Watcher::spawn_command(&mut command, false);
    watcher.wait_ready();
    let previous = queue.previous();
    drop(queue);
    assert_eq!(read_limit("max_queued_events"), previous, "restored");

    for n in 0..files {
        File::create(root.join(format!("f{n:04}"))).unwrap();
    }
    watcher.start_reading();

    let expected: HashSet<String> = (0..files).map(|n| format!("f{n:04}")).collect();
    let mut created = HashSet::new();
    let mut synthetic = 0;
    let mut overflow = false;
    let mut checked = 0;
    let all_reported = watcher.wait_lines(Duration::from_secs(30), |lines| {
        for line in &lines[checked..] {
            let event = parse(line).unwrap_or_else(|| panic!("not a JSON object: {line}"));
            match maskname(&event) {
                "IN_Q_OVERFLOW" => overflow = true,
                "IN_CREATE" => {
                    created.insert(event["name"].as_str().unwrap().to_string());
                    if event["synthetic"] == true {
                        synthetic += 1;
                    }
                }
                other => panic!("only IN_CREATE was asked for, got {other}: {line}"),
            }
        }
        checked = lines.len();
        overflow && expected.is_subset(&created)
    });
    let missing = expected.difference(&created).count();
    println!(
        "{} lines, {} distinct files created, {synthetic} creations synthesized after the overflow",
        watcher.lines.len(),
        created.len()
    );
    assert!(
        overflow,
        "no IN_Q_OVERFLOW line; stderr:\n{}",
        watcher.stderr()
    );
    assert!(
        all_reported,
        "{missing} of {files} creations never reported after the overflow; stderr:\n{}",
        watcher.stderr()
    );
    assert!(
        synthetic > 0,
        "the files dropped from the queue were found by the rescan"
    );
}

#[test]
fn after_a_queue_overflow_every_file_is_ready_once() {
    if !root_available(
        "after_a_queue_overflow_every_file_is_ready_once",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    let files = 2000;

    let queue = Sysctl::set("max_queued_events", 64, &exclusive);
    // IN_CREATE lines fill the unread stdout pipe; the watcher then blocks, and the kernel queue
    // (64 events) overflows. A settle time longer than the rescan keeps a file whose close the
    // rescan reports again within one completed write.
    let mut command = watch_command(["-e", "IN_CREATE|IN_READY", "--settle", "1s", "-r", s(root)]);
    let mut watcher = Watcher::spawn_command(&mut command, false);
    watcher.wait_ready();
    drop(queue);

    let paths: Vec<String> = (0..files)
        .map(|n| {
            let parent = if n % 2 == 0 {
                root.to_path_buf()
            } else {
                root.join("sub")
            };
            s(&parent.join(format!("f{n:04}"))).to_string()
        })
        .collect();
    for path in &paths {
        std::fs::write(path, b"payload").unwrap();
    }
    watcher.start_reading();

    let expected: HashSet<&str> = paths.iter().map(String::as_str).collect();
    let mut ready: HashSet<String> = HashSet::new();
    let mut rescanned = 0;
    let mut overflow = false;
    let mut checked = 0;
    let all_ready = watcher.wait_lines(Duration::from_secs(60), |lines| {
        for line in &lines[checked..] {
            let event = parse(line).unwrap_or_else(|| panic!("not a JSON object: {line}"));
            match maskname(&event) {
                "IN_Q_OVERFLOW" => overflow = true,
                "IN_READY" => {
                    ready.insert(event["pathname"].as_str().unwrap().to_string());
                    if event["origin"] == "rescan" {
                        rescanned += 1;
                    }
                }
                "IN_CREATE" | "IN_CREATE|IN_ISDIR" => {}
                other => panic!("IN_CREATE|IN_READY was asked for, got {other}: {line}"),
            }
        }
        checked = lines.len();
        overflow && expected.iter().all(|p| ready.contains(*p))
    });
    assert!(
        overflow,
        "no IN_Q_OVERFLOW line; stderr:\n{}",
        watcher.stderr()
    );
    let missing = expected.iter().filter(|p| !ready.contains(**p)).count();
    assert!(
        all_ready,
        "{missing} of {files} files never ready after the overflow; stderr:\n{}",
        watcher.stderr()
    );
    assert!(
        rescanned > 0,
        "files dropped from the queue were found by the rescan"
    );

    // Barrier: a marker closed after everything else is ready after every earlier file (one
    // settle time, timers run out in order).
    let marker = root.join("marker");
    std::fs::write(&marker, b"").unwrap();
    watcher.expect_mask("IN_READY", &marker);
    let mut counts = std::collections::HashMap::new();
    for event in watcher.events() {
        if maskname(&event) == "IN_READY" {
            *counts
                .entry(event["pathname"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "ready more than once: {repeated:?}");
    watcher.signal(libc::SIGTERM);
    assert_eq!(watcher.finish().code(), Some(0));
}

// ----- B. out of watches -------------------------------------------------------------------------

#[test]
fn out_of_watches_exits_1_and_says_which_limit_and_how_many() {
    if !root_available(
        "out_of_watches_exits_1_and_says_which_limit_and_how_many",
        "lowers fs.inotify.max_user_watches",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let dir = temp_dir();
    let root = dir.path();
    for n in 0..10 {
        std::fs::create_dir(root.join(format!("d{n}"))).unwrap();
    }
    let (watches_in_use, _) = inotify_usage();
    let limit = watches_in_use + 3;
    let watches = Sysctl::set("max_user_watches", limit, &exclusive);
    let finished = run_to_exit(&mut watch_command(["-r", s(root)]), None, DEADLINE);
    let previous = watches.previous();
    drop(watches);
    assert_eq!(read_limit("max_user_watches"), previous, "restored");

    let stderr = &finished.stderr;
    assert_eq!(
        finished.status.code(),
        Some(1),
        "exit status; stderr:\n{stderr}"
    );
    assert!(stderr.contains("fs.inotify.max_user_watches"), "{stderr}");
    let numbers = integers_in(stderr);
    assert!(
        numbers.contains(&limit),
        "stderr does not give the limit {limit}:\n{stderr}"
    );
    assert!(
        numbers.contains(&11),
        "stderr does not give the 11 watches needed:\n{stderr}"
    );
    assert!(!stderr.contains("inotifier: ready"), "{stderr}");
    assert!(finished.stdout.is_empty(), "{}", finished.stdout);
}

// ----- C. out of instances -----------------------------------------------------------------------

#[test]
fn out_of_instances_exits_1_and_names_the_limit() {
    if !root_available(
        "out_of_instances_exits_1_and_names_the_limit",
        "lowers fs.inotify.max_user_instances",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let dir = temp_dir();
    // The limit must be at most what root already uses, so the watcher cannot get one more.
    let (_, all_instances) = inotify_usage();
    let limit = root_inotify_instances().min(all_instances);
    println!("inotify instances: {all_instances} in all, limit set to {limit}");
    let instances = Sysctl::set("max_user_instances", limit, &exclusive);
    let finished = run_to_exit(&mut watch_command([dir.path()]), None, DEADLINE);
    let previous = instances.previous();
    drop(instances);
    assert_eq!(read_limit("max_user_instances"), previous, "restored");
    let stderr = &finished.stderr;
    assert_eq!(
        finished.status.code(),
        Some(1),
        "exit status; stderr:\n{stderr}"
    );
    assert!(stderr.contains("fs.inotify.max_user_instances"), "{stderr}");
    assert!(
        integers_in(stderr).contains(&limit),
        "stderr does not give the limit {limit}:\n{stderr}"
    );
    assert!(!stderr.contains("inotifier: ready"), "{stderr}");
    assert!(finished.stdout.is_empty(), "{}", finished.stdout);
}

// ----- D. a daemon that cannot come up ---------------------------------------------------------

/// `inotifier start` must not report success merely because fork worked: here the config is
/// valid (`check` accepts it), but the daemon cannot get an inotify instance after the fork.
#[test]
fn start_exits_1_with_the_daemons_reason_when_it_cannot_come_up() {
    if !root_available(
        "start_exits_1_with_the_daemons_reason_when_it_cannot_come_up",
        "lowers fs.inotify.max_user_instances",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("watched")).unwrap();
    let config = dir.path().join("inotifier.toml");
    std::fs::write(
        &config,
        "[daemon]\npid_file = \"run/inotifier.pid\"\nstderr = \"err.log\"\n\n\
         [[watch]]\npath = \"watched\"\nevents = \"IN_CREATE\"\nprocessor = \"log\"\n",
    )
    .unwrap();
    let check = run_inotifier(&["check", "-c", s(&config)]);
    assert_eq!(check.status.code(), Some(0), "{}", check.stderr);

    let (_, all_instances) = inotify_usage();
    let limit = root_inotify_instances().min(all_instances);
    let instances = Sysctl::set("max_user_instances", limit, &exclusive);
    let started = run_inotifier(&["start", "-c", s(&config)]);
    drop(instances);
    assert_eq!(
        started.status.code(),
        Some(1),
        "{}{}",
        started.stdout,
        started.stderr
    );
    assert!(
        started.stderr.contains("the daemon did not start"),
        "{}",
        started.stderr
    );
    assert!(
        started.stderr.contains("fs.inotify.max_user_instances"),
        "{}",
        started.stderr
    );
    // The same reason is in the daemon's own log, and nothing is left running.
    let log = std::fs::read_to_string(dir.path().join("err.log")).unwrap();
    assert!(log.contains("fs.inotify.max_user_instances"), "{log}");
    let status = run_inotifier(&["status", "-c", s(&config)]);
    assert_eq!(status.status.code(), Some(3), "{}", status.stdout);
}
