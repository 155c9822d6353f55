//! Recovery from a kernel queue overflow, forced by lowering `fs.inotify.max_queued_events`.
//! The limit is per machine, so this test holds the exclusive test lock: no other inotify test
//! runs while it is lowered, and the guard restores it even if the test fails. Only root can
//! lower it: run by another user, each test is skipped, saying so.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotifier_core::{EngineOptions, Mask, Origin};
use inotifier_test_support::privileges::root_available;
use inotifier_test_support::{MachineLock, Sysctl, inotify_exclusive, wait_until};
use support::{Watcher, temp_dir};

fn coarse_now_ns() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}

/// An engine whose kernel queue holds `queue` events, and whose reader blocks as soon as one
/// batch waits for the test: a test that does not read yet makes the queue overflow.
fn watcher_with_small_queue(queue: u64, lock: &MachineLock) -> Watcher {
    let options = EngineOptions {
        read_buffer_size: 4096,
        channel_batches: 1,
        ..EngineOptions::default()
    };
    // The queue size is fixed when the instance is created; the guard restores the sysctl right
    // after.
    let _small_queue = Sysctl::set("max_queued_events", queue, lock);
    Watcher::with_options(options, None)
}

fn files(dir: &Path, prefix: &str, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|n| dir.join(format!("{prefix}{n:04}")))
        .collect()
}

#[test]
fn overflow_is_reported_then_exactly_the_missed_changes_are_synthesized() {
    if !root_available(
        "overflow_is_reported_then_exactly_the_missed_changes_are_synthesized",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    let untouched: Vec<PathBuf> = files(root, "keep", 20)
        .into_iter()
        .chain(files(&root.join("sub"), "keep", 20))
        .collect();
    let modified = files(root, "modify", 20);
    let deleted = files(root, "delete", 20);
    let chmodded = files(root, "chmod", 5);
    let doomed_dir = root.join("doomed");
    std::fs::create_dir(&doomed_dir).unwrap();
    let doomed = files(&doomed_dir, "inner", 5);
    for file in untouched
        .iter()
        .chain(&modified)
        .chain(&deleted)
        .chain(&chmodded)
        .chain(&doomed)
    {
        std::fs::write(file, b"original").unwrap();
    }
    // Let the clock tick past the files' change times, so "changed since the watch" is exact.
    let newest = untouched
        .iter()
        .chain(&doomed)
        .map(|f| {
            std::fs::metadata(f).unwrap().ctime_nsec()
                + std::fs::metadata(f).unwrap().ctime() * 1_000_000_000
        })
        .max()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || coarse_now_ns() > newest));

    let lock = inotify_exclusive();
    let mut watcher = watcher_with_small_queue(16, &lock);
    let mask = Mask::IN_CREATE
        | Mask::IN_DELETE
        | Mask::IN_MODIFY
        | Mask::IN_CLOSE_WRITE
        | Mask::IN_ATTRIB
        | Mask::IN_MOVE;
    watcher.watch(root, mask, true);

    // Nobody reads the events yet: the reader blocks on the full channel and the kernel queue
    // (16 events) overflows.
    let created = files(root, "new", 1000);
    for file in &created {
        std::fs::write(file, b"n").unwrap();
    }
    let new_dir = root.join("newdir");
    std::fs::create_dir(&new_dir).unwrap();
    let created_in_new_dir = files(&new_dir, "f", 50);
    for file in &created_in_new_dir {
        std::fs::write(file, b"n").unwrap();
    }
    for file in &modified {
        std::fs::write(file, b"changed content").unwrap();
    }
    for file in &deleted {
        std::fs::remove_file(file).unwrap();
    }
    for file in &chmodded {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::remove_dir_all(&doomed_dir).unwrap();

    let all_new: Vec<&PathBuf> = created.iter().chain(&created_in_new_dir).collect();
    let complete = watcher.wait_for(|seen| {
        let by_path = index(seen);
        let has = |path: &PathBuf, mask: Mask| {
            by_path
                .get(path)
                .is_some_and(|masks| masks.iter().any(|m| m.contains(mask)))
        };
        seen.iter().any(|e| e.mask.contains(Mask::IN_Q_OVERFLOW))
            && all_new.iter().all(|f| has(f, Mask::IN_CREATE))
            && deleted
                .iter()
                .chain(&doomed)
                .all(|f| has(f, Mask::IN_DELETE))
            && modified.iter().all(|f| has(f, Mask::IN_CLOSE_WRITE))
            && chmodded.iter().all(|f| has(f, Mask::IN_ATTRIB))
            && has(&doomed_dir, Mask::IN_DELETE)
    });
    assert!(complete, "missing events; {} seen", watcher.seen.len());
    let overflow = watcher
        .seen
        .iter()
        .find(|e| e.mask.contains(Mask::IN_Q_OVERFLOW))
        .unwrap();
    assert_eq!(overflow.wd, -1);
    let synthetic = watcher
        .seen
        .iter()
        .filter(|e| e.origin == Origin::Rescan)
        .count();
    assert!(synthetic > 0, "the rescan synthesized the dropped events");

    // The new directory is watched now.
    std::fs::write(new_dir.join("after"), b"").unwrap();
    watcher.expect("file in the directory found by the rescan", |e| {
        e.pathname() == new_dir.join("after") && e.origin == Origin::Kernel
    });
    assert_eq!(
        watcher.engine().watch_count().unwrap(),
        3,
        "root, sub and newdir"
    );

    // Exactly: one creation per new file, one deletion per deleted file, nothing else.
    let by_path = index(&watcher.seen);
    let count = |path: &PathBuf, mask: Mask| {
        by_path
            .get(path)
            .map_or(0, |masks| masks.iter().filter(|m| m.contains(mask)).count())
    };
    for file in &all_new {
        assert_eq!(count(file, Mask::IN_CREATE), 1, "{}", file.display());
    }
    for file in deleted.iter().chain(&doomed) {
        assert_eq!(count(file, Mask::IN_DELETE), 1, "{}", file.display());
    }
    for file in &untouched {
        assert_eq!(
            by_path.get(file),
            None,
            "untouched {} got events",
            file.display()
        );
    }
    for file in &chmodded {
        assert_eq!(
            count(file, Mask::IN_MODIFY),
            0,
            "a chmod is not a modification: {}",
            file.display()
        );
    }
}

fn index(seen: &[inotifier_core::Event]) -> HashMap<PathBuf, Vec<Mask>> {
    let mut by_path: HashMap<PathBuf, Vec<Mask>> = HashMap::new();
    for event in seen {
        by_path
            .entry(event.pathname())
            .or_default()
            .push(event.mask);
    }
    by_path
}

/// With ALL_EVENTS, listing a directory is itself an event (open, access, close). The initial
/// walk and the rescan of a large tree must not flood the queue with their own reads, or a
/// rescan would overflow the queue again, forever.
#[test]
fn the_engines_own_listings_neither_flood_the_queue_nor_reach_the_consumer() {
    if !root_available(
        "the_engines_own_listings_neither_flood_the_queue_nor_reach_the_consumer",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let dir = temp_dir();
    let root = dir.path();
    let mut leaves = Vec::new();
    for a in 0..60 {
        for b in 0..50 {
            let leaf = root.join(format!("d{a}/e{b}"));
            std::fs::create_dir_all(&leaf).unwrap();
            leaves.push(leaf);
        }
    }
    // Over 2048, so the watches get their read events back on two threads.
    let directories = 1 + 60 + leaves.len();

    let lock = inotify_exclusive();
    // 64 events: a walk that read-notified itself (six events per directory) would overflow it
    // many times over.
    let mut watcher = watcher_with_small_queue(64, &lock);
    watcher.watch(root, Mask::ALL_EVENTS, true);
    assert_eq!(watcher.engine().watch_count().unwrap(), directories);
    watcher.barrier(root);
    let own_reads = |seen: &[inotifier_core::Event]| {
        seen.iter()
            .filter(|e| {
                e.mask.contains(Mask::IN_ISDIR)
                    && e.mask.intersects(Mask::IN_OPEN | Mask::IN_CLOSE_NOWRITE)
            })
            .count()
    };
    assert_eq!(
        own_reads(&watcher.seen),
        0,
        "the initial walk's own reads were reported"
    );
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.mask.contains(Mask::IN_Q_OVERFLOW))
    );

    // The consumer is not reading: one file per leaf overflows the queue.
    let files: Vec<PathBuf> = leaves
        .iter()
        .step_by(5)
        .map(|leaf| leaf.join("f"))
        .collect();
    for file in &files {
        std::fs::write(file, b"x").unwrap();
    }
    let recovered = watcher.wait_for(|seen| {
        let by_path = index(seen);
        files.iter().all(|f| {
            by_path
                .get(f)
                .is_some_and(|m| m.iter().any(|m| m.contains(Mask::IN_CREATE)))
        })
    });
    assert!(recovered, "not every file was reported after the overflow");
    // How many overflows the burst caused depends on when the reader got the processor; what
    // matters is that, once nothing else happens, the engine's rescans cause none by themselves
    // (a rescan that read-notified itself would overflow again, and again).
    let overflows = |seen: &[inotifier_core::Event]| {
        seen.iter()
            .filter(|e| e.mask.contains(Mask::IN_Q_OVERFLOW))
            .count()
    };
    watcher.barrier(root);
    let after_burst = overflows(&watcher.seen);
    assert!(
        after_burst >= 1,
        "the burst did not overflow a {directories}-directory watch"
    );
    for _ in 0..3 {
        watcher.barrier(root);
    }
    assert_eq!(
        overflows(&watcher.seen),
        after_burst,
        "the rescan of {directories} directories overflowed the queue by itself"
    );
    assert_eq!(
        own_reads(&watcher.seen),
        0,
        "the rescan's own reads were reported"
    );
    // Read events are still delivered once the engine is done listing, on every watch (the
    // first and the last restored are on different threads).
    for leaf in [
        &leaves[0],
        &leaves[leaves.len() / 2],
        leaves.last().unwrap(),
        &root.to_path_buf(),
    ] {
        std::fs::read_dir(leaf).unwrap().for_each(drop);
        watcher.expect("someone else's listing", |e| {
            e.mask == (Mask::IN_OPEN | Mask::IN_ISDIR) && e.pathname() == *leaf
        });
    }
}

/// Directories renamed while the queue overflowed: whatever order the rescan visits the old and
/// the new places in, each ends up watched at its new place.
#[test]
fn directories_moved_during_an_overflow_stay_watched_at_their_new_place() {
    if !root_available(
        "directories_moved_during_an_overflow_stay_watched_at_their_new_place",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let dir = temp_dir();
    let root = dir.path();
    let names: Vec<String> = (0..20).map(|n| format!("d{n:02}")).collect();
    for name in &names {
        std::fs::create_dir_all(root.join("a").join(name).join("inner")).unwrap();
    }
    std::fs::create_dir(root.join("b")).unwrap();
    let lock = inotify_exclusive();
    let mut watcher = watcher_with_small_queue(16, &lock);
    watcher.watch(
        root,
        Mask::IN_CREATE | Mask::IN_MOVE | Mask::IN_DELETE,
        true,
    );

    // Not reading: the queue overflows, and the moves' events are lost among others.
    for n in 0..200 {
        std::fs::write(root.join(format!("filler{n}")), b"").unwrap();
    }
    for name in &names {
        // Half move to a later place in the walk, half to an earlier one.
        let target = if name.ends_with(['0', '2', '4', '6', '8']) {
            "b"
        } else {
            "."
        };
        std::fs::rename(
            root.join("a").join(name),
            root.join(target).join(format!("moved-{name}")),
        )
        .unwrap();
    }
    for n in 200..400 {
        std::fs::write(root.join(format!("filler{n}")), b"").unwrap();
    }
    assert!(watcher.wait_for(|seen| seen.iter().any(|e| e.mask.contains(Mask::IN_Q_OVERFLOW))));
    watcher.barrier(root);
    // a, b, root, and each moved directory with its inner directory.
    assert!(
        inotifier_test_support::wait_until(Duration::from_secs(10), || {
            watcher.engine().watch_count().unwrap() == 3 + 2 * names.len()
        }),
        "watch count {}",
        watcher.engine().watch_count().unwrap()
    );
    for name in &names {
        let target = if name.ends_with(['0', '2', '4', '6', '8']) {
            root.join("b")
        } else {
            root.to_path_buf()
        };
        let file = target
            .join(format!("moved-{name}"))
            .join("inner")
            .join("after");
        std::fs::write(&file, b"").unwrap();
        watcher.expect("a file in a directory moved during the overflow", |e| {
            e.pathname() == file && e.mask.contains(Mask::IN_CREATE)
        });
    }
}

/// A file whose writes reached the engine but whose close was dropped in an overflow, and whose
/// mtime predates what the engine last heard of it (set back, as `cp -p`, `rsync -t` or `tar x`
/// do, or simply written long before a consumer that fell behind read its events): its times
/// cannot tell the rescan that anything is left to report, only the memory of the unclosed write.
#[test]
fn a_close_dropped_after_its_writes_were_reported_is_synthesized() {
    if !root_available(
        "a_close_dropped_after_its_writes_were_reported_is_synthesized",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let dir = temp_dir();
    let root = dir.path();
    let lock = inotify_exclusive();
    let mut watcher = watcher_with_small_queue(16, &lock);
    watcher.watch(
        root,
        Mask::IN_CREATE | Mask::IN_MODIFY | Mask::IN_CLOSE_WRITE,
        false,
    );
    let slow = root.join("slow-writer");
    let mut handle = std::fs::File::create(&slow).unwrap();
    std::io::Write::write_all(&mut handle, b"content").unwrap();
    handle
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    // Its creation and write are queued first. Then a burst larger than what the reader takes
    // before it blocks (two reads of at most 4096 bytes) plus the 16-event queue: the close
    // below is dropped.
    for file in files(root, "burst", 300) {
        std::fs::write(file, b"x").unwrap();
    }
    drop(handle);
    watcher.expect("the overflow", |e| e.mask.contains(Mask::IN_Q_OVERFLOW));
    let reported_write = watcher
        .seen
        .iter()
        .any(|e| e.pathname() == slow && e.mask == Mask::IN_MODIFY && e.origin == Origin::Kernel);
    assert!(reported_write, "the write was queued before the overflow");
    let close = watcher.expect("the dropped close, synthesized", |e| {
        e.pathname() == slow && e.mask == Mask::IN_CLOSE_WRITE
    });
    assert_eq!(close.origin, Origin::Rescan);
}

/// A file closed and reported, then changed again after the kernel queue filled up (that
/// change's events dropped), its close read only later: the overflow rescan reports the second
/// change, although the file's mtime is older than the read of its first close. The index's
/// baseline for events read from a full queue is the last read that found room.
#[test]
fn a_change_dropped_before_the_previous_close_was_read_is_found_by_the_rescan() {
    if !root_available(
        "a_change_dropped_before_the_previous_close_was_read_is_found_by_the_rescan",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let dir = temp_dir();
    let root = dir.path();
    let lock = inotify_exclusive();
    let mut watcher = watcher_with_small_queue(1024, &lock);
    watcher.watch(root, Mask::IN_CREATE | Mask::IN_CLOSE_WRITE, false);
    // The reader takes at most two reads of 4096 bytes (32-byte events) before it blocks; the
    // rest waits in the kernel's queue: these 300 events and the target's two fit in it.
    for file in files(root, "fill", 150) {
        std::fs::File::create(file).unwrap();
    }
    let target = root.join("target");
    std::fs::write(&target, b"first").unwrap();
    // The queue fills up for certain: the last of these, and the second write below, are
    // dropped.
    for file in files(root, "more", 700) {
        std::fs::File::create(file).unwrap();
    }
    std::fs::write(&target, b"second, dropped").unwrap();
    // The second write is older than two coarse clock ticks when its close is read.
    let written = coarse_now_ns();
    let tick = inotifier_core::coarse_clock_lag_ns();
    assert!(wait_until(Duration::from_secs(5), || coarse_now_ns()
        > written + 3 * tick));
    watcher.expect("the overflow", |e| e.mask.contains(Mask::IN_Q_OVERFLOW));
    let first_close = watcher.seen.iter().any(|e| {
        e.pathname() == target && e.mask == Mask::IN_CLOSE_WRITE && e.origin == Origin::Kernel
    });
    assert!(
        first_close,
        "the first close was queued before the overflow"
    );
    let second = watcher.expect("the dropped write, found by the rescan", |e| {
        e.pathname() == target && e.mask == Mask::IN_CLOSE_WRITE && e.origin == Origin::Rescan
    });
    assert_eq!(second.origin, Origin::Rescan);
}
