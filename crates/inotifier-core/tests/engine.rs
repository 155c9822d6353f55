//! The engine on real inotify, in temporary directories.

mod support;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use inotifier_core::{Engine, EngineOptions, Error, Filters, Glob, Mask, Origin, WatchSpec};
use support::{Watcher, distinct, temp_dir};

#[test]
fn files_created_in_brand_new_directories_are_all_reported_once() {
    let dir = temp_dir();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::IN_CREATE | Mask::IN_CLOSE_WRITE, true);
    let rounds = 1000;
    let mut expected = HashSet::new();
    for n in 0..rounds {
        let deep = dir.path().join(format!("a{n}/b/c"));
        std::fs::create_dir_all(&deep).unwrap();
        let file = deep.join("f");
        std::fs::write(&file, b"x").unwrap();
        expected.insert(file);
    }
    let all_seen = watcher.wait_for(|seen| {
        let created = distinct(
            seen.iter()
                .filter(|e| e.mask.contains(Mask::IN_CREATE))
                .map(|e| e.pathname()),
        );
        expected.iter().all(|f| created.contains(f))
    });
    let created = watcher.pathnames_with(Mask::IN_CREATE);
    let missing = expected.iter().filter(|f| !created.contains(f)).count();
    assert!(all_seen, "{missing} of {rounds} files never reported");
    // Found by a scan and reported by the kernel too must still be one creation.
    let files: Vec<_> = created
        .iter()
        .filter(|p| p.file_name() == Some(OsStr::new("f")))
        .collect();
    assert_eq!(files.len(), rounds, "duplicate creations reported");
    let dirs = created
        .iter()
        .filter(|p| p.file_name() == Some(OsStr::new("c")))
        .count();
    assert_eq!(dirs, rounds, "every c/ directory reported once");
    // Every file was written and closed: each gets an IN_CLOSE_WRITE, real or synthesized.
    let closed = distinct(watcher.pathnames_with(Mask::IN_CLOSE_WRITE));
    assert!(
        watcher.wait_for(|seen| {
            let closed = distinct(
                seen.iter()
                    .filter(|e| e.mask.contains(Mask::IN_CLOSE_WRITE))
                    .map(|e| e.pathname()),
            );
            expected.iter().all(|f| closed.contains(f))
        }),
        "missing IN_CLOSE_WRITE, had {}",
        closed.len()
    );
    assert_eq!(watcher.engine().watch_count().unwrap(), 1 + 3 * rounds);
}

#[test]
fn scan_of_a_new_directory_synthesizes_create_and_close_write() {
    let dir = temp_dir();
    let outside = temp_dir();
    let staged = outside.path().join("incoming");
    std::fs::create_dir_all(staged.join("sub")).unwrap();
    std::fs::write(staged.join("sub/data.csv"), b"1,2").unwrap();
    std::os::unix::fs::symlink("data.csv", staged.join("sub/link")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::ALL_EVENTS, true);
    // Moving a populated directory in is the same race as creating one: its contents predate
    // the watch.
    std::fs::rename(&staged, dir.path().join("incoming")).unwrap();
    let data = dir.path().join("incoming/sub/data.csv");
    let link = dir.path().join("incoming/sub/link");
    let moved_in = watcher.expect("moved in", |e| e.mask.contains(Mask::IN_MOVED_TO));
    assert_eq!(moved_in.src_pathname, None, "came from outside the watches");
    let create = watcher.expect("data.csv created", |e| {
        e.pathname() == data && e.mask == Mask::IN_CREATE
    });
    assert_eq!(create.origin, Origin::Scan);
    assert!(create.synthetic());
    let close = watcher.expect("data.csv closed", |e| {
        e.pathname() == data && e.mask == Mask::IN_CLOSE_WRITE
    });
    assert_eq!(close.origin, Origin::Scan);
    assert!(create.id < close.id);
    watcher.expect("link created", |e| {
        e.pathname() == link && e.mask == Mask::IN_CREATE
    });
    watcher.barrier(dir.path());
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.pathname() == link && e.mask.contains(Mask::IN_CLOSE_WRITE)),
        "a symlink is not a written file"
    );
    // The engine's own listing of the new directories is not reported as reads, neither on
    // them nor on their parents.
    let own_reads: Vec<_> = watcher
        .seen
        .iter()
        .filter(|e| {
            e.dir()
                && e.mask
                    .intersects(Mask::IN_OPEN | Mask::IN_ACCESS | Mask::IN_CLOSE_NOWRITE)
        })
        .collect();
    assert!(own_reads.is_empty(), "{own_reads:?}");
    // The directory was watched: later changes in it are seen.
    std::fs::write(dir.path().join("incoming/sub/later"), b"").unwrap();
    watcher.expect("later file", |e| {
        e.pathname().ends_with("incoming/sub/later") && e.origin == Origin::Kernel
    });
}

#[test]
fn directory_renamed_inside_the_tree_keeps_its_watches_under_the_new_path() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::ALL_EVENTS, true);
    let watches = watcher.engine().watch_count().unwrap();
    std::fs::rename(dir.path().join("a"), dir.path().join("z")).unwrap();
    let moved = watcher.expect("a moved to z", |e| e.mask.contains(Mask::IN_MOVED_TO));
    assert_eq!(moved.pathname(), dir.path().join("z"));
    assert_eq!(moved.src_pathname, Some(dir.path().join("a")));
    assert!(moved.dir());
    let from = watcher.expect("moved from", |e| e.mask.contains(Mask::IN_MOVED_FROM));
    assert_eq!(from.cookie, moved.cookie);
    assert_ne!(moved.cookie, 0);
    assert_eq!(from.id + 1, moved.id, "the pair is delivered together");

    std::fs::write(dir.path().join("z/b/c/new"), b"x").unwrap();
    std::fs::write(dir.path().join("z/top"), b"x").unwrap();
    let new = watcher.expect("file in the moved tree", |e| {
        e.name == OsStr::new("new") && e.mask.contains(Mask::IN_CREATE)
    });
    assert_eq!(&*new.path, dir.path().join("z/b/c").as_path());
    let top = watcher.expect("file in the moved dir", |e| {
        e.name == OsStr::new("top") && e.mask.contains(Mask::IN_CREATE)
    });
    assert_eq!(&*top.path, dir.path().join("z").as_path());
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.pathname().starts_with(dir.path().join("a/")) && e.id > moved.id),
        "no event under the old path after the move:\n{}",
        watcher.dump()
    );
    assert_eq!(
        watcher.engine().watch_count().unwrap(),
        watches,
        "same watches, none added"
    );
}

#[test]
fn directory_moved_out_loses_its_watches() {
    let dir = temp_dir();
    let outside = temp_dir();
    std::fs::create_dir_all(dir.path().join("leaving/inner")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::ALL_EVENTS, true);
    assert_eq!(watcher.engine().watch_count().unwrap(), 3);
    let gone = outside.path().join("leaving");
    std::fs::rename(dir.path().join("leaving"), &gone).unwrap();
    let from = watcher.expect("moved from", |e| e.mask.contains(Mask::IN_MOVED_FROM));
    assert_eq!(from.pathname(), dir.path().join("leaving"));
    // Once the pairing window has passed, its watches are removed.
    assert!(inotifier_test_support::wait_until(
        Duration::from_secs(10),
        || { watcher.engine().watch_count().unwrap() == 1 }
    ));
    std::fs::write(gone.join("inner/after"), b"x").unwrap();
    watcher.barrier(dir.path());
    assert!(
        !watcher.seen.iter().any(|e| e.name == OsStr::new("after")),
        "{}",
        watcher.dump()
    );
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.mask.contains(Mask::IN_MOVED_TO))
    );
}

#[test]
fn unpaired_move_in_and_file_move_out_are_delivered_as_they_are() {
    let dir = temp_dir();
    let outside = temp_dir();
    std::fs::write(outside.path().join("in.txt"), b"x").unwrap();
    std::fs::write(dir.path().join("out.txt"), b"x").unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::IN_MOVE, false);
    std::fs::rename(outside.path().join("in.txt"), dir.path().join("in.txt")).unwrap();
    std::fs::rename(dir.path().join("out.txt"), outside.path().join("out.txt")).unwrap();
    let moved_in = watcher.expect("moved in", |e| e.mask == Mask::IN_MOVED_TO);
    assert_eq!(moved_in.name, OsStr::new("in.txt"));
    assert_eq!(moved_in.src_pathname, None);
    let moved_out = watcher.expect("moved out", |e| e.mask == Mask::IN_MOVED_FROM);
    assert_eq!(moved_out.name, OsStr::new("out.txt"));
    assert_eq!(watcher.seen.len(), 2, "{}", watcher.dump());
}

#[test]
fn move_pairing_works_whatever_the_mask_asks_for() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("upload.part"), b"x").unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::IN_MOVED_TO, false);
    std::fs::rename(dir.path().join("upload.part"), dir.path().join("upload")).unwrap();
    let moved = watcher.expect("moved to", |e| e.mask == Mask::IN_MOVED_TO);
    assert_eq!(moved.src_pathname, Some(dir.path().join("upload.part")));
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.mask.contains(Mask::IN_MOVED_FROM))
    );
}

#[test]
fn non_utf8_names_reach_the_event_unchanged() {
    let dir = temp_dir();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::IN_CREATE, false);
    let name: &[u8] = b"caf\xe9-\xff\xfe.bin";
    std::fs::write(dir.path().join(OsStr::from_bytes(name)), b"").unwrap();
    let event = watcher.expect("non-UTF-8 file", |e| e.mask == Mask::IN_CREATE);
    assert_eq!(event.name_bytes(), name);
    assert_eq!(event.pathname(), dir.path().join(OsStr::from_bytes(name)));
}

#[test]
fn excluded_subtree_gets_no_watch_and_no_events() {
    let dir = temp_dir();
    for sub in ["keep/deep", "node_modules/pkg/lib", "build/out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let mut watcher = Watcher::start();
    let mut spec = support::spec(dir.path(), Mask::IN_CREATE, true);
    spec.filters = Filters {
        include: vec![],
        exclude: vec![
            Glob::new("node_modules").unwrap(),
            Glob::new("build/out").unwrap(),
            Glob::new("*.tmp").unwrap(),
        ],
    };
    watcher.engine().add_watch(spec).unwrap();
    // root, keep, keep/deep, build: node_modules and build/out have none.
    assert_eq!(watcher.engine().watch_count().unwrap(), 4);
    std::fs::write(dir.path().join("node_modules/pkg/lib/x.js"), b"").unwrap();
    std::fs::write(dir.path().join("build/out/x.o"), b"").unwrap();
    std::fs::write(dir.path().join("keep/deep/scratch.tmp"), b"").unwrap();
    std::fs::create_dir(dir.path().join("keep/node_modules")).unwrap();
    std::fs::write(dir.path().join("keep/deep/wanted"), b"").unwrap();
    watcher.expect("wanted", |e| e.name == OsStr::new("wanted"));
    watcher.barrier(dir.path());
    let names: Vec<_> = watcher.seen.iter().map(|e| e.pathname()).collect();
    assert!(
        names
            .iter()
            .all(|p| !p.to_string_lossy().contains("node_modules")
                && !p.to_string_lossy().contains(".tmp")
                && !p.ends_with("out/x.o")),
        "{}",
        watcher.dump()
    );
    // The new node_modules directory was not watched either.
    assert_eq!(watcher.engine().watch_count().unwrap(), 4);
}

#[test]
fn include_globs_pick_files_but_directories_are_still_traversed() {
    let dir = temp_dir();
    let mut watcher = Watcher::start();
    let mut spec = support::spec(dir.path(), Mask::IN_CREATE, true);
    spec.filters.include = vec![Glob::new("*.csv").unwrap()];
    watcher.engine().add_watch(spec).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/skip.bin"), b"").unwrap();
    std::fs::write(dir.path().join("sub/take.csv"), b"").unwrap();
    watcher.expect("take.csv", |e| e.name == OsStr::new("take.csv"));
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.name == OsStr::new("skip.bin"))
    );
}

#[test]
fn a_deleted_root_reports_self_events_and_the_other_watches_keep_running() {
    let first = temp_dir();
    let second = temp_dir();
    let doomed = first.path().join("doomed");
    std::fs::create_dir_all(doomed.join("sub")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(&doomed, Mask::ALL_EVENTS, true);
    watcher.watch(second.path(), Mask::ALL_EVENTS, false);
    std::fs::remove_dir_all(&doomed).unwrap();
    watcher.expect("delete self", |e| {
        e.pathname() == doomed && e.mask.contains(Mask::IN_DELETE_SELF)
    });
    watcher.expect("ignored", |e| {
        e.pathname() == doomed && e.mask.contains(Mask::IN_IGNORED)
    });
    std::fs::write(second.path().join("still"), b"").unwrap();
    watcher.expect("the other watch", |e| e.name == OsStr::new("still"));
    assert_eq!(watcher.engine().watch_count().unwrap(), 1);
}

#[test]
fn a_root_moved_away_reports_move_self_and_is_dropped() {
    let first = temp_dir();
    let second = temp_dir();
    let root = first.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(&root, Mask::ALL_EVENTS, true);
    watcher.watch(second.path(), Mask::ALL_EVENTS, false);
    std::fs::rename(&root, first.path().join("elsewhere")).unwrap();
    let moved = watcher.expect("move self", |e| {
        e.pathname() == root && e.mask.contains(Mask::IN_MOVE_SELF)
    });
    let ignored = watcher.expect("ignored", |e| {
        e.pathname() == root && e.mask.contains(Mask::IN_IGNORED)
    });
    assert!(moved.id < ignored.id);
    std::fs::write(first.path().join("elsewhere/sub/x"), b"").unwrap();
    std::fs::write(second.path().join("still"), b"").unwrap();
    watcher.expect("the other watch", |e| e.name == OsStr::new("still"));
    assert!(
        !watcher.seen.iter().any(|e| e.name == OsStr::new("x")),
        "{}",
        watcher.dump()
    );
    assert_eq!(watcher.engine().watch_count().unwrap(), 1);
}

#[test]
fn a_single_file_can_be_watched() {
    let dir = temp_dir();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, b"a").unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(&file, Mask::IN_MODIFY | Mask::IN_CLOSE_WRITE, false);
    std::fs::write(&file, b"b").unwrap();
    let event = watcher.expect("modify", |e| e.mask == Mask::IN_MODIFY);
    assert_eq!(&*event.path, file.as_path());
    assert!(event.name.is_empty());
    assert_eq!(event.pathname(), file);
}

#[test]
fn each_watch_gets_the_events_of_its_own_mask() {
    let dir = temp_dir();
    let mut watcher = Watcher::start();
    let creates = watcher.watch(dir.path(), Mask::IN_CREATE, false);
    let deletes = watcher.watch(dir.path(), Mask::IN_DELETE, false);
    std::fs::write(dir.path().join("f"), b"").unwrap();
    std::fs::remove_file(dir.path().join("f")).unwrap();
    let created = watcher.expect("create", |e| e.mask == Mask::IN_CREATE);
    let deleted = watcher.expect("delete", |e| e.mask == Mask::IN_DELETE);
    assert_eq!(*created.watches, [creates]);
    assert_eq!(*deleted.watches, [deletes]);
    assert_eq!(
        watcher.engine().watch_count().unwrap(),
        1,
        "one kernel watch for both"
    );
    watcher.engine().remove_watch(creates).unwrap();
    std::fs::write(dir.path().join("g"), b"").unwrap();
    std::fs::remove_file(dir.path().join("g")).unwrap();
    watcher.expect("delete of g", |e| {
        e.mask == Mask::IN_DELETE && e.name == OsStr::new("g")
    });
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.name == OsStr::new("g") && e.mask == Mask::IN_CREATE)
    );
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let dir = temp_dir();
    let watcher = Watcher::start();
    let missing = dir.path().join("not-there");
    let error = watcher
        .engine()
        .add_watch(WatchSpec::new(&missing, Mask::ALL_EVENTS))
        .unwrap_err();
    assert!(
        matches!(error, Error::NotFound { ref path } if *path == missing),
        "{error:?}"
    );
    assert!(error.to_string().contains(&*missing.to_string_lossy()));
}

#[test]
fn symlinks_are_not_followed_into_loops() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.path().join("real/inner")).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("real/self")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("real/inner/up")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("root-link")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::IN_CREATE, true);
    assert_eq!(watcher.engine().watch_count().unwrap(), 3);
    std::fs::write(dir.path().join("real/inner/file"), b"").unwrap();
    let event = watcher.expect("file", |e| e.name == OsStr::new("file"));
    assert_eq!(&*event.path, dir.path().join("real/inner").as_path());
}

#[test]
fn stopping_leaves_no_thread_blocked() {
    let dir = temp_dir();
    let _lock = inotifier_test_support::inotify_shared();
    let (engine, batches) = Engine::start(EngineOptions::default()).unwrap();
    engine
        .add_watch(WatchSpec::new(dir.path(), Mask::ALL_EVENTS))
        .unwrap();
    std::fs::write(dir.path().join("f"), b"").unwrap();
    let started = Instant::now();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        engine.stop();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("stop returned: the reader left poll and was joined");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The channel is closed once the reader is gone, after what it had sent.
    let closed = loop {
        match batches.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    assert_eq!(closed, std::sync::mpsc::RecvTimeoutError::Disconnected);
}

#[test]
fn a_recursive_watch_of_a_deep_tree_does_not_overflow_the_stack() {
    let dir = temp_dir();
    let mut deep = PathBuf::from(dir.path());
    for _ in 0..300 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(dir.path(), Mask::IN_CREATE, true);
    assert_eq!(watcher.engine().watch_count().unwrap(), 301);
    std::fs::write(deep.join("bottom"), b"").unwrap();
    watcher.expect("bottom", |e| e.name == OsStr::new("bottom"));
}

#[test]
fn an_unmounted_filesystem_reports_unmount_and_ignored() {
    use std::ffi::CString;
    if !inotifier_test_support::privileges::root_available(
        "an_unmounted_filesystem_reports_unmount_and_ignored",
        "mounts a tmpfs",
    ) {
        return;
    }
    let dir = temp_dir();
    let other = temp_dir();
    let mount_point = dir.path().join("mnt");
    std::fs::create_dir(&mount_point).unwrap();
    let target = CString::new(mount_point.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain mount(2) of a fresh tmpfs on our own temporary directory.
    let mounted = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(
        mounted,
        0,
        "mount tmpfs: {}",
        std::io::Error::last_os_error()
    );
    // Unmounted even if the test fails half-way.
    struct Unmount(CString);
    impl Drop for Unmount {
        fn drop(&mut self) {
            // SAFETY: detaching our own mount; EINVAL once it is already gone is fine.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let _unmount = Unmount(target.clone());
    std::fs::create_dir(mount_point.join("inner")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(&mount_point, Mask::IN_CREATE, true);
    watcher.watch(other.path(), Mask::IN_CREATE, false);
    // SAFETY: unmounts what this test mounted.
    let unmounted = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    assert_eq!(unmounted, 0, "umount: {}", std::io::Error::last_os_error());
    watcher.expect("unmount", |e| {
        e.mask.contains(Mask::IN_UNMOUNT) && e.pathname() == mount_point
    });
    watcher.expect("ignored", |e| {
        e.mask.contains(Mask::IN_IGNORED) && e.pathname() == mount_point
    });
    std::fs::write(other.path().join("still"), b"").unwrap();
    watcher.expect("the other watch", |e| e.name == OsStr::new("still"));
    assert!(inotifier_test_support::wait_until(
        Duration::from_secs(10),
        || { watcher.engine().watch_count().unwrap() == 1 }
    ));
}

#[test]
fn overlapping_recursive_watches_share_directories_and_keep_their_own_masks() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
    std::fs::create_dir_all(dir.path().join("a/skip")).unwrap();
    let mut watcher = Watcher::start();
    let creates = watcher.watch(dir.path(), Mask::IN_CREATE, true);
    let mut deletes_spec = support::spec(dir.path(), Mask::IN_DELETE, true);
    deletes_spec.filters.exclude = vec![Glob::new("skip").unwrap()];
    let deletes = watcher.engine().add_watch(deletes_spec).unwrap();
    // A third, nested inside the first two.
    let nested = watcher.watch(&dir.path().join("a/b"), Mask::IN_MODIFY, true);
    assert_eq!(
        watcher.engine().watch_count().unwrap(),
        5,
        "one kernel watch per directory"
    );

    let deep = dir.path().join("a/b/c/f");
    std::fs::write(&deep, b"1").unwrap();
    std::fs::write(dir.path().join("a/skip/g"), b"1").unwrap();
    std::fs::write(&deep, b"2").unwrap();
    std::fs::remove_file(&deep).unwrap();
    std::fs::remove_file(dir.path().join("a/skip/g")).unwrap();
    let created = watcher.expect("create", |e| {
        e.pathname() == deep && e.mask == Mask::IN_CREATE
    });
    assert_eq!(*created.watches, [creates]);
    let modified = watcher.expect("modify", |e| {
        e.pathname() == deep && e.mask == Mask::IN_MODIFY
    });
    assert_eq!(*modified.watches, [nested]);
    let deleted = watcher.expect("delete", |e| {
        e.pathname() == deep && e.mask == Mask::IN_DELETE
    });
    assert_eq!(*deleted.watches, [deletes]);
    let skipped = dir.path().join("a/skip/g");
    watcher.expect("create in skip", |e| {
        e.pathname() == skipped && *e.watches == [creates]
    });
    watcher.barrier(dir.path());
    assert!(
        !watcher
            .seen
            .iter()
            .any(|e| e.pathname() == skipped && e.mask == Mask::IN_DELETE),
        "skip is excluded from the delete watch"
    );

    // A directory created later is covered by all the watches that want it.
    std::fs::create_dir(dir.path().join("a/b/new")).unwrap();
    // Once its creation is delivered, the new directory is watched (a file created and deleted
    // before that is not seen by anyone).
    watcher.expect("new directory", |e| {
        e.pathname().ends_with("a/b/new") && e.dir()
    });
    let later = dir.path().join("a/b/new/h");
    std::fs::write(&later, b"1").unwrap();
    std::fs::write(&later, b"2").unwrap();
    std::fs::remove_file(&later).unwrap();
    watcher.expect("create in new", |e| {
        e.pathname() == later && *e.watches == [creates]
    });
    watcher.expect("modify in new", |e| {
        e.pathname() == later && *e.watches == [nested]
    });
    watcher.expect("delete in new", |e| {
        e.pathname() == later && *e.watches == [deletes]
    });

    // Removing watches leaves the others whole.
    watcher.engine().remove_watch(creates).unwrap();
    watcher.engine().remove_watch(nested).unwrap();
    // root, a, b, c and new; a/skip was watched for `creates` alone.
    assert_eq!(watcher.engine().watch_count().unwrap(), 5);
    std::fs::write(&deep, b"3").unwrap();
    std::fs::remove_file(&deep).unwrap();
    let last = watcher.expect("delete after removals", |e| {
        e.pathname() == deep && e.id > deleted.id && e.mask == Mask::IN_DELETE
    });
    assert_eq!(*last.watches, [deletes]);
}

/// A watched directory moved into a directory the engine has not watched yet: the move's events
/// say it left (no IN_MOVED_TO, its new parent was not watched), and the scan of the new parent
/// finds it with its old watch. It must end up watched at its new place, not lost.
#[test]
fn a_directory_moved_into_a_new_directory_before_its_watch_stays_watched() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("old/x/y")).unwrap();
    std::fs::write(root.join("old/x/y/kept"), b"k").unwrap();
    let options = EngineOptions {
        read_buffer_size: 4096,
        channel_batches: 1,
        ..EngineOptions::default()
    };
    let mut watcher =
        Watcher::with_options(options, Some(inotifier_test_support::inotify_shared()));
    watcher.watch(
        root,
        Mask::IN_CREATE | Mask::IN_MOVE | Mask::IN_DELETE,
        true,
    );
    // Hold the reader back (it blocks once one batch waits), so that both changes happen before
    // it sees the first.
    for n in 0..3 {
        std::fs::write(root.join(format!("filler{n}")), b"").unwrap();
    }
    std::fs::create_dir(root.join("new")).unwrap();
    std::fs::rename(root.join("old/x"), root.join("new/x")).unwrap();

    // Usually the reader lists new/ after the move and finds x there (with its old watch); if
    // it got to watch new/ first, the kernel pairs the move instead. Either way x is announced.
    let moved_kept = root.join("new/x/y/kept");
    let moved_x = root.join("new/x");
    watcher.expect(
        "the moved directory, found by the scan of new/ or by a paired move",
        |e| {
            (e.pathname() == moved_kept && e.mask.contains(Mask::IN_CREATE))
                || (e.pathname() == moved_x
                    && e.src_pathname.as_deref() == Some(&*root.join("old/x")))
        },
    );
    // Past the pairing window, the departure from old/ is settled; new/x is still watched.
    assert!(
        inotifier_test_support::wait_until(Duration::from_secs(10), || {
            watcher.engine().watch_count().unwrap() == 5
        }),
        "root, old, new, new/x, new/x/y"
    );
    std::fs::write(root.join("new/x/y/after"), b"a").unwrap();
    watcher.expect("a file created in the moved directory afterwards", |e| {
        e.pathname() == root.join("new/x/y/after") && e.origin == Origin::Kernel
    });
}
