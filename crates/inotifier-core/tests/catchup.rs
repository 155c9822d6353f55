//! Catch-up after downtime and the snapshot export it relies on, on real inotify and real files:
//! a snapshot is taken, the engine stops, the tree changes, and a new engine given the snapshot
//! as its baseline reports exactly what changed.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use inotifier_core::snapshot::apply_changes;
use inotifier_core::{
    Event, Filters, Glob, Mask, Origin, SnapshotChange, SnapshotEntry, WatchId, WatchSpec,
};
use support::{Watcher, temp_dir};

fn spec(root: &Path, mask: Mask) -> WatchSpec {
    WatchSpec::new(root, mask).recursive(true)
}

/// A snapshot taken by an engine that then stops, as a daemon's journal would have it.
fn baseline_of(spec: WatchSpec) -> Vec<SnapshotEntry> {
    let mut watcher = Watcher::start();
    let id = watcher.engine().add_watch(spec).unwrap();
    let snapshot = watcher.engine().snapshot(id).unwrap();
    watcher.stop();
    snapshot
}

fn catch_up_events(seen: &[Event]) -> Vec<&Event> {
    seen.iter()
        .filter(|e| e.origin == Origin::CatchUp)
        .collect()
}

/// (mask name, path) of every catch-up event, with the source of moves.
fn described(seen: &[Event]) -> Vec<(String, PathBuf, Option<PathBuf>)> {
    catch_up_events(seen)
        .into_iter()
        .map(|e| (e.maskname(), e.pathname(), e.src_pathname.clone()))
        .collect()
}

/// Waits until every event caused so far has been delivered (the kernel queue is ordered), with
/// a marker file of a name never used before, removed after so that the tree is as it was.
fn barrier(watcher: &mut Watcher, dir: &Path) {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let marker = dir.join(format!(".barrier-{n}"));
    write(&marker, b"");
    watcher.expect("for the barrier file", |e| {
        e.pathname() == marker && e.mask.contains(Mask::IN_CREATE)
    });
    std::fs::remove_file(&marker).unwrap();
    watcher.expect("for the barrier's removal", |e| {
        e.pathname() == marker && e.mask.contains(Mask::IN_DELETE)
    });
}

fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
}

#[test]
fn changes_made_while_down_are_reported_once_with_renames_paired() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("olddir/sub")).unwrap();
    std::fs::create_dir_all(root.join("nested/deep")).unwrap();
    for n in 0..30 {
        write(&root.join(format!("keep{n:02}")), b"kept");
    }
    for n in 0..10 {
        write(&root.join(format!("del{n:02}")), b"doomed file");
    }
    for n in 0..5 {
        write(&root.join(format!("nested/mod{n}")), b"original");
    }
    write(&root.join("rename-me"), b"renamed file");
    write(&root.join("nested/deep/move-up"), b"moved up");
    write(&root.join("olddir/x"), b"x");
    write(&root.join("olddir/sub/y"), b"y");
    let baseline = baseline_of(spec(root, Mask::ALL_EVENTS));
    // Files, then directories.
    assert_eq!(baseline.len(), 30 + 10 + 5 + 4 + 4);

    // Downtime.
    let created: Vec<PathBuf> = (0..100)
        .map(|n| {
            if n % 2 == 0 {
                root.join(format!("new{n:03}"))
            } else {
                root.join(format!("nested/deep/new{n:03}"))
            }
        })
        .collect();
    for file in &created {
        write(file, b"n");
    }
    let deleted: Vec<PathBuf> = (0..10).map(|n| root.join(format!("del{n:02}"))).collect();
    for file in &deleted {
        std::fs::remove_file(file).unwrap();
    }
    let modified: Vec<PathBuf> = (0..5)
        .map(|n| root.join(format!("nested/mod{n}")))
        .collect();
    for file in &modified {
        write(file, b"changed while down");
    }
    let renames = [
        (root.join("rename-me"), root.join("renamed")),
        (root.join("nested/deep/move-up"), root.join("moved-up")),
        (root.join("olddir"), root.join("nested/newdir")),
    ];
    for (from, to) in &renames {
        std::fs::rename(from, to).unwrap();
    }

    let mut watcher = Watcher::start();
    let id = watcher
        .engine()
        .add_watch_with_baseline(spec(root, Mask::ALL_EVENTS), baseline)
        .unwrap();
    let mut expected: Vec<(String, PathBuf, Option<PathBuf>)> = Vec::new();
    for file in &created {
        expected.push(("IN_CREATE".into(), file.clone(), None));
        expected.push(("IN_CLOSE_WRITE".into(), file.clone(), None));
    }
    for file in &deleted {
        expected.push(("IN_DELETE".into(), file.clone(), None));
    }
    for file in &modified {
        expected.push(("IN_MODIFY".into(), file.clone(), None));
        expected.push(("IN_CLOSE_WRITE".into(), file.clone(), None));
    }
    for (from, to) in &renames {
        let dir = if to.ends_with("newdir") {
            "|IN_ISDIR"
        } else {
            ""
        };
        expected.push((format!("IN_MOVED_FROM{dir}"), from.clone(), None));
        expected.push((format!("IN_MOVED_TO{dir}"), to.clone(), Some(from.clone())));
    }
    let all_seen = watcher.wait_for(|seen| catch_up_events(seen).len() >= expected.len());
    // Anything more would have arrived with them (one batch), but a barrier makes sure.
    barrier(&mut watcher, root);
    assert!(all_seen, "catch-up incomplete:\n{}", watcher.dump());
    let mut got = described(&watcher.seen);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "seen:\n{}", watcher.dump());
    for event in catch_up_events(&watcher.seen) {
        assert!(event.synthetic());
        assert_eq!(event.origin.as_str(), "catchup");
        assert_eq!(&*event.watches, &[id]);
    }

    // Each move is a pair: the halves adjacent, one nonzero cookie, no other event using it.
    let events = catch_up_events(&watcher.seen);
    let mut cookies = HashSet::new();
    for (index, event) in events.iter().enumerate() {
        if event.mask.contains(Mask::IN_MOVED_FROM) {
            let to = events[index + 1];
            assert!(to.mask.contains(Mask::IN_MOVED_TO), "{}", watcher.dump());
            assert_ne!(event.cookie, 0);
            assert_eq!(event.cookie, to.cookie);
            assert!(cookies.insert(event.cookie), "cookie reused");
        }
    }
    // The renamed directory's content moved with it: nothing below it is reported.
    for event in &events {
        let path = event.pathname();
        let below = |dir: &str| {
            let mut prefix = root.join(dir).into_os_string().into_vec();
            prefix.push(b'/');
            path.as_os_str().as_bytes().starts_with(&prefix)
        };
        assert!(
            !below("olddir") && !below("nested/newdir"),
            "{}",
            path.display()
        );
    }
    watcher.stop();
}

#[test]
fn without_a_baseline_nothing_is_caught_up() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    write(&root.join("sub/existing"), b"e");
    write(&root.join("existing"), b"e");
    let mut watcher = Watcher::start();
    let id = watcher.watch(root, Mask::ALL_EVENTS, true);
    barrier(&mut watcher, root);
    barrier(&mut watcher, &root.join("sub"));
    assert!(
        watcher.seen.iter().all(|e| e.origin == Origin::Kernel),
        "{}",
        watcher.dump()
    );
    // No snapshot taken, so no changes to report against.
    assert!(matches!(
        watcher.engine().snapshot_changes(id),
        Err(inotifier_core::Error::NoSnapshot(_))
    ));
}

#[test]
fn an_empty_baseline_reports_everything_as_created_and_an_equal_one_nothing() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    write(&root.join("sub/f"), b"f");
    write(&root.join("g"), b"g");
    let baseline = baseline_of(spec(root, Mask::ALL_EVENTS));

    let mut watcher = Watcher::start();
    watcher
        .engine()
        .add_watch_with_baseline(spec(root, Mask::ALL_EVENTS), baseline)
        .unwrap();
    barrier(&mut watcher, root);
    assert!(
        catch_up_events(&watcher.seen).is_empty(),
        "{}",
        watcher.dump()
    );
    watcher.stop();

    let mut watcher = Watcher::start();
    watcher
        .engine()
        .add_watch_with_baseline(spec(root, Mask::ALL_EVENTS), Vec::new())
        .unwrap();
    barrier(&mut watcher, root);
    let mut got = described(&watcher.seen);
    got.sort();
    let mut expected = vec![
        ("IN_CREATE|IN_ISDIR".to_string(), root.join("sub"), None),
        ("IN_CREATE".into(), root.join("sub/f"), None),
        ("IN_CLOSE_WRITE".into(), root.join("sub/f"), None),
        ("IN_CREATE".into(), root.join("g"), None),
        ("IN_CLOSE_WRITE".into(), root.join("g"), None),
    ];
    expected.sort();
    assert_eq!(got, expected);
    // The directory before what is in it.
    let events = catch_up_events(&watcher.seen);
    let at = |path: PathBuf| events.iter().position(|e| e.pathname() == path).unwrap();
    assert!(at(root.join("sub")) < at(root.join("sub/f")));
}

/// Files created while the watch is being added are each reported created exactly once, by
/// the catch-up (listed) or by the kernel (created after their directory was listed).
#[test]
fn files_created_during_and_after_the_catch_up_are_reported_created_exactly_once() {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    for n in 0..2000 {
        write(&root.join(format!("old{n:04}")), b"o");
    }
    let baseline = baseline_of(spec(&root, Mask::ALL_EVENTS));
    let mut watcher = Watcher::start();
    let files: Vec<PathBuf> = (0..3000)
        .map(|n| root.join(format!("race{n:04}")))
        .collect();
    let writer = {
        let files = files.clone();
        std::thread::spawn(move || {
            for file in &files {
                std::fs::write(file, b"r").unwrap();
            }
        })
    };
    watcher
        .engine()
        .add_watch_with_baseline(spec(&root, Mask::ALL_EVENTS), baseline)
        .unwrap();
    writer.join().unwrap();
    let late = root.join("created-after-add");
    write(&late, b"late");
    let all = watcher.wait_for(|seen| {
        let created: HashSet<PathBuf> = seen
            .iter()
            .filter(|e| e.mask.contains(Mask::IN_CREATE))
            .map(|e| e.pathname())
            .collect();
        files.iter().all(|f| created.contains(f)) && created.contains(&late)
    });
    barrier(&mut watcher, &root);
    assert!(all, "a creation was lost:\n{}", watcher.dump());
    let mut creations: HashMap<PathBuf, Vec<Origin>> = HashMap::new();
    for event in watcher
        .seen
        .iter()
        .filter(|e| e.mask.contains(Mask::IN_CREATE))
    {
        creations
            .entry(event.pathname())
            .or_default()
            .push(event.origin);
    }
    for file in files.iter().chain([&late]) {
        assert_eq!(
            creations[file].len(),
            1,
            "{}: {:?}",
            file.display(),
            creations[file]
        );
    }
    assert_eq!(creations[&late], vec![Origin::Kernel]);
    assert!(
        creations
            .keys()
            .all(|p| !p.file_name().unwrap().as_bytes().starts_with(b"old")),
        "unchanged files reported"
    );
}

#[test]
fn catch_up_honours_the_mask_the_filters_and_recursion() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    write(&root.join("b.log"), b"b");
    write(&root.join("c.txt"), b"c");
    write(&root.join("sub/d.txt"), b"d");
    let baseline = baseline_of(spec(root, Mask::ALL_EVENTS));

    write(&root.join("a.log"), b"a");
    write(&root.join("a.txt"), b"a");
    std::fs::remove_file(root.join("b.log")).unwrap();
    write(&root.join("c.txt"), b"c changed");
    write(&root.join("sub/e.txt"), b"e");
    std::fs::remove_file(root.join("sub/d.txt")).unwrap();

    // Only creations, no *.log.
    let mut watcher = Watcher::start();
    let mut filtered = spec(root, Mask::IN_CREATE | Mask::IN_DELETE);
    filtered.filters = Filters {
        exclude: vec![Glob::new("*.log").unwrap()],
        ..Filters::default()
    };
    watcher
        .engine()
        .add_watch_with_baseline(filtered, baseline.clone())
        .unwrap();
    barrier(&mut watcher, root);
    let mut got = described(&watcher.seen);
    got.sort();
    let mut expected = vec![
        ("IN_CREATE".to_string(), root.join("a.txt"), None),
        ("IN_CREATE".into(), root.join("sub/e.txt"), None),
        ("IN_DELETE".into(), root.join("sub/d.txt"), None),
    ];
    expected.sort();
    assert_eq!(got, expected, "{}", watcher.dump());
    watcher.stop();

    // Not recursive: the root's entries only; below it nothing is compared.
    let mut watcher = Watcher::start();
    watcher
        .engine()
        .add_watch_with_baseline(WatchSpec::new(root, Mask::ALL_EVENTS), baseline)
        .unwrap();
    barrier(&mut watcher, root);
    let mut got = described(&watcher.seen);
    got.sort();
    let mut expected = vec![
        ("IN_CREATE".to_string(), root.join("a.log"), None),
        ("IN_CLOSE_WRITE".into(), root.join("a.log"), None),
        ("IN_CREATE".into(), root.join("a.txt"), None),
        ("IN_CLOSE_WRITE".into(), root.join("a.txt"), None),
        ("IN_DELETE".into(), root.join("b.log"), None),
        ("IN_MODIFY".into(), root.join("c.txt"), None),
        ("IN_CLOSE_WRITE".into(), root.join("c.txt"), None),
    ];
    expected.sort();
    assert_eq!(got, expected, "{}", watcher.dump());
}

#[test]
fn a_rotated_log_is_a_rename_then_a_creation_and_deletions_follow_renamed_directories() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("d")).unwrap();
    write(&root.join("d/gone"), b"gone");
    write(&root.join("d/stays"), b"stays");
    write(&root.join("app.log"), b"first log");
    write(&root.join("app.log.1"), b"older log!");
    let baseline = baseline_of(spec(root, Mask::ALL_EVENTS));

    std::fs::rename(root.join("app.log.1"), root.join("app.log.2")).unwrap();
    std::fs::rename(root.join("app.log"), root.join("app.log.1")).unwrap();
    write(&root.join("app.log"), b"new");
    std::fs::remove_file(root.join("d/gone")).unwrap();
    std::fs::rename(root.join("d"), root.join("e")).unwrap();
    // Replaced by another inode (the old one is freed only after the new one exists).
    write(&root.join("e/stays.new"), b"replacement");
    std::fs::rename(root.join("e/stays.new"), root.join("e/stays")).unwrap();

    let mut watcher = Watcher::start();
    watcher
        .engine()
        .add_watch_with_baseline(spec(root, Mask::ALL_EVENTS), baseline)
        .unwrap();
    barrier(&mut watcher, root);
    let got: Vec<(String, PathBuf)> = described(&watcher.seen)
        .into_iter()
        .map(|(mask, path, _)| (mask, path))
        .collect();
    let at = |mask: &str, path: &str| {
        got.iter()
            .position(|(m, p)| m == mask && *p == root.join(path))
            .unwrap_or_else(|| panic!("no {mask} {path}:\n{got:?}"))
    };
    // Replayed by path, every step is possible: a place is free before it is taken.
    assert!(at("IN_MOVED_TO", "app.log.2") < at("IN_MOVED_FROM", "app.log"));
    assert!(at("IN_MOVED_TO", "app.log.1") < at("IN_CREATE", "app.log"));
    assert!(at("IN_MOVED_TO|IN_ISDIR", "e") < at("IN_DELETE", "e/gone"));
    assert!(at("IN_MOVED_TO|IN_ISDIR", "e") < at("IN_DELETE", "e/stays"));
    assert!(at("IN_DELETE", "e/stays") < at("IN_CREATE", "e/stays"));
    assert!(at("IN_CREATE", "e/stays") < at("IN_CLOSE_WRITE", "e/stays"));
    assert_eq!(got.len(), 2 + 2 + 2 + 2 + 1 + 3, "{got:?}");
}

// ----- the incremental export --------------------------------------------------------------

/// A small deterministic generator: the workload is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

fn files_and_dirs(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(path.clone());
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    dirs.sort();
    (files, dirs)
}

/// One step of the workload: creates, writes, renames of files and directories (inside the
/// tree, out of it and into it), deletions, nested directories. `settle` runs before a
/// directory is moved: the engine cannot watch a directory whose creation it processes after
/// an ancestor of it moved (the path it has is gone), a race this test is not about.
fn mutate(root: &Path, outside: &Path, rng: &mut Lcg, step: usize, settle: &mut dyn FnMut()) {
    let (files, dirs) = files_and_dirs(root);
    let any_dir = |rng: &mut Lcg| -> PathBuf {
        if dirs.is_empty() || rng.next(4) == 0 {
            root.to_path_buf()
        } else {
            dirs[rng.next(dirs.len())].clone()
        }
    };
    match rng.next(10) {
        0 | 1 => write(&any_dir(rng).join(format!("f{step}")), b"created"),
        2 if !files.is_empty() => {
            let file = &files[rng.next(files.len())];
            let content = vec![b'w'; rng.next(100)];
            write(file, &content);
        }
        3 if !files.is_empty() => {
            let file = &files[rng.next(files.len())];
            let _ = std::fs::rename(file, any_dir(rng).join(format!("r{step}")));
        }
        4 if !files.is_empty() => {
            let _ = std::fs::remove_file(&files[rng.next(files.len())]);
        }
        5 => {
            let deep = any_dir(rng).join(format!("n{step}/a/b"));
            std::fs::create_dir_all(&deep).unwrap();
            write(&deep.join("inner"), b"inner");
        }
        6 if !dirs.is_empty() => {
            settle();
            let from = &dirs[rng.next(dirs.len())];
            let to = any_dir(rng).join(format!("m{step}"));
            // Fails (harmlessly) when moving a directory into itself.
            let _ = std::fs::rename(from, to);
        }
        7 if !dirs.is_empty() && rng.next(3) == 0 => {
            let _ = std::fs::remove_dir_all(&dirs[rng.next(dirs.len())]);
        }
        8 if !dirs.is_empty() && rng.next(2) == 0 => {
            settle();
            let _ = std::fs::rename(
                &dirs[rng.next(dirs.len())],
                outside.join(format!("out{step}")),
            );
        }
        9 => {
            let incoming = outside.join(format!("in{step}"));
            std::fs::create_dir_all(incoming.join("x")).unwrap();
            write(&incoming.join("x/f"), b"in");
            std::fs::rename(&incoming, any_dir(rng).join(format!("i{step}"))).unwrap();
        }
        _ => write(&root.join(format!("g{step}")), b"g"),
    }
}

fn by_path(entries: Vec<SnapshotEntry>) -> BTreeMap<Vec<u8>, SnapshotEntry> {
    entries.into_iter().map(|e| (e.path.clone(), e)).collect()
}

/// Applies exports to `persisted` until they have nothing more to give, and returns how many
/// changes that took. An export holds back entries changed in the last clock ticks (their
/// events may still be on the way), so right after a burst it takes a few: done when two
/// exports 30 ms apart (several ticks) are both empty.
fn export_until_current(
    watcher: &Watcher,
    id: WatchId,
    persisted: &mut BTreeMap<Vec<u8>, SnapshotEntry>,
) -> usize {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut applied = 0;
    let mut empty_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let changes = watcher.engine().snapshot_changes(id).unwrap();
        if changes.is_empty() {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(30) {
                break;
            }
            std::thread::yield_now();
            continue;
        }
        empty_since = None;
        applied += changes.len();
        let removals_first = changes
            .iter()
            .position(|c| matches!(c, SnapshotChange::Upsert(_)))
            .unwrap_or(changes.len());
        assert!(
            changes[removals_first..]
                .iter()
                .all(|c| matches!(c, SnapshotChange::Upsert(_))),
            "removals after upserts: {changes:?}"
        );
        apply_changes(persisted, changes);
    }
    applied
}

fn assert_same(persisted: &BTreeMap<Vec<u8>, SnapshotEntry>, full: &[SnapshotEntry], round: usize) {
    let full = by_path(full.to_vec());
    let show = |p: &Vec<u8>| String::from_utf8_lossy(p).into_owned();
    let missing: Vec<String> = full
        .keys()
        .filter(|p| !persisted.contains_key(*p))
        .map(show)
        .collect();
    let extra: Vec<String> = persisted
        .keys()
        .filter(|p| !full.contains_key(*p))
        .map(show)
        .collect();
    let differ: Vec<String> = full
        .iter()
        .filter(|(p, e)| persisted.get(*p).is_some_and(|mine| mine != *e))
        .map(|(p, e)| format!("{}: persisted {:?}, now {e:?}", show(p), persisted[p]))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "round {round}: missing {missing:?}\nextra {extra:?}\ndiffer {differ:?}"
    );
}

/// The journal's view: a full snapshot once, then only the changes, applied as they come; it
/// always equals a full snapshot taken at the same time.
#[test]
fn applying_the_exported_changes_to_the_first_snapshot_gives_the_full_snapshot() {
    let dir = temp_dir();
    let outside = temp_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("d")).unwrap();
    for n in 0..20 {
        write(&root.join(format!("a/b/c/seed{n}")), b"seed");
        write(&root.join(format!("d/seed{n}")), b"seed");
    }
    let mut watcher = Watcher::start();
    let id: WatchId = watcher.watch(root, Mask::IN_CREATE | Mask::IN_DELETE, true);
    let mut persisted = by_path(watcher.engine().snapshot(id).unwrap());
    assert_eq!(persisted.len(), 3 + 1 + 40);
    let mut rng = Lcg(5);
    let mut changes_seen = 0;
    for round in 0..8 {
        for step in 0..60 {
            mutate(
                root,
                outside.path(),
                &mut rng,
                round * 1000 + step,
                &mut || barrier(&mut watcher, root),
            );
        }
        // Every event caused so far is processed once the barrier's arrives.
        barrier(&mut watcher, root);
        changes_seen += export_until_current(&watcher, id, &mut persisted);
        // Once current, another export has nothing new.
        assert_eq!(watcher.engine().snapshot_changes(id).unwrap(), vec![]);
        let full = watcher.engine().snapshot(id).unwrap();
        assert_same(&persisted, &full, round);
    }
    assert!(
        changes_seen > 200,
        "the workload changed too little: {changes_seen}"
    );
    // The snapshot is the disk.
    let final_tree = watcher.engine().snapshot(id).unwrap();
    let (files, dirs) = files_and_dirs(root);
    let mut on_disk: Vec<Vec<u8>> = files
        .iter()
        .chain(&dirs)
        .map(|p| {
            p.strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        })
        .collect();
    on_disk.sort();
    let snapshotted: Vec<Vec<u8>> = final_tree.iter().map(|e| e.path.clone()).collect();
    let show = |paths: &[Vec<u8>]| {
        paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
    };
    let missing: Vec<Vec<u8>> = on_disk
        .iter()
        .filter(|p| !snapshotted.contains(p))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "not in the snapshot: {:?}\n{}",
        show(&missing),
        watcher.dump()
    );
    assert_eq!(show(&snapshotted), show(&on_disk));
    assert!(final_tree.len() > 20, "{}", final_tree.len());

    // And what was persisted is a baseline that a restart finds nothing to report against.
    watcher.stop();
    let mut watcher = Watcher::start();
    watcher
        .engine()
        .add_watch_with_baseline(
            spec(root, Mask::ALL_EVENTS),
            persisted.into_values().collect(),
        )
        .unwrap();
    barrier(&mut watcher, root);
    assert!(
        catch_up_events(&watcher.seen).is_empty(),
        "{}",
        watcher.dump()
    );
}

/// After a catch-up, the export turns the baseline into what is on disk.
#[test]
fn after_a_catch_up_the_changes_turn_the_baseline_into_the_tree() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("x/y")).unwrap();
    for n in 0..10 {
        write(&root.join(format!("x/y/f{n}")), b"f");
    }
    let baseline = baseline_of(spec(root, Mask::ALL_EVENTS));
    std::fs::rename(root.join("x/y"), root.join("z")).unwrap();
    write(&root.join("z/f0"), b"modified");
    std::fs::remove_file(root.join("z/f1")).unwrap();
    write(&root.join("new"), b"new");

    let watcher = Watcher::start();
    let id = watcher
        .engine()
        .add_watch_with_baseline(spec(root, Mask::ALL_EVENTS), baseline.clone())
        .unwrap();
    let mut persisted = by_path(baseline);
    export_until_current(&watcher, id, &mut persisted);
    let full = watcher.engine().snapshot(id).unwrap();
    assert_same(&persisted, &full, 0);
    assert!(persisted.contains_key(b"z/f9".as_slice()));
    assert!(!persisted.contains_key(b"x/y/f9".as_slice()));
}

// ----- the ready event -----------------------------------------------------------------------

/// Files created or modified while down become ready once settled, like scanned ones; one
/// renamed from a temporary name is ready at once; one merely renamed is not ready again.
#[test]
fn caught_up_files_become_ready() {
    use inotifier_core::ready::{ReadyOptions, ReadyStage};
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::{Duration, Instant};

    let dir = temp_dir();
    let root = dir.path();
    write(&root.join("modified.txt"), b"before");
    write(&root.join("download.part"), b"partial");
    write(&root.join("plain"), b"plain");
    let baseline = baseline_of(spec(root, Mask::ALL_EVENTS));
    write(&root.join("created.txt"), b"new");
    write(&root.join("modified.txt"), b"after the restart");
    std::fs::rename(root.join("download.part"), root.join("download.bin")).unwrap();
    std::fs::rename(root.join("plain"), root.join("plain-renamed")).unwrap();

    let watcher = Watcher::start();
    let id = watcher
        .engine()
        .add_watch_with_baseline(spec(root, Mask::IN_READY), baseline)
        .unwrap();
    let mut stage = ReadyStage::new();
    stage.set_watch(id, Mask::IN_READY, Some(ReadyOptions::default()));
    let mut delivered: Vec<Event> = Vec::new();
    let ready = |delivered: &[Event], name: &str| {
        delivered
            .iter()
            .filter(|e| e.mask.contains(Mask::IN_READY) && e.pathname() == root.join(name))
            .count()
    };
    let mut marker_written = false;
    let deadline = Instant::now() + support::DEADLINE;
    // Until the marker, written once the others are ready, is ready too: every ready event
    // armed before it has been delivered by then (one settle time for the watch).
    while ready(&delivered, "marker") == 0 {
        if !marker_written
            && ["created.txt", "modified.txt", "download.bin"]
                .iter()
                .all(|name| ready(&delivered, name) > 0)
        {
            write(&root.join("marker"), b"m");
            marker_written = true;
        }
        let now = Instant::now();
        assert!(now < deadline, "ready events missing: {delivered:#?}");
        let wait = stage
            .next_deadline()
            .map_or(Duration::from_millis(50), |d| {
                d.saturating_duration_since(now)
            })
            .min(Duration::from_millis(50));
        match watcher.batches.recv_timeout(wait) {
            Ok(batch) => delivered.extend(stage.process(batch, Instant::now())),
            Err(RecvTimeoutError::Timeout) => delivered.extend(stage.poll(Instant::now())),
            Err(RecvTimeoutError::Disconnected) => panic!("engine stopped"),
        }
    }
    for name in ["created.txt", "modified.txt", "download.bin"] {
        assert_eq!(ready(&delivered, name), 1, "{name}: {delivered:#?}");
    }
    let download = delivered
        .iter()
        .find(|e| e.mask.contains(Mask::IN_READY) && e.pathname() == root.join("download.bin"))
        .unwrap();
    assert_eq!(download.src_pathname, Some(root.join("download.part")));
    assert_eq!(ready(&delivered, "plain-renamed"), 0, "{delivered:#?}");
    // The watch asked for IN_READY alone: the catch-up events that fed the detector stay out.
    assert!(
        delivered.iter().all(|e| e.mask.contains(Mask::IN_READY)),
        "{delivered:#?}"
    );
}

// ----- the export across a queue overflow ----------------------------------------------------

/// Changes whose events the kernel dropped are found by the overflow rescan, and exported like
/// the others. Lowers `fs.inotify.max_queued_events`, so it holds the exclusive test lock.
#[test]
fn changes_lost_in_a_queue_overflow_are_exported_after_the_rescan() {
    use inotifier_core::EngineOptions;
    use inotifier_test_support::privileges::root_available;
    use inotifier_test_support::{Sysctl, inotify_exclusive, wait_until};
    use std::time::{Duration, SystemTime};

    if !root_available(
        "changes_lost_in_a_queue_overflow_are_exported_after_the_rescan",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let dir = temp_dir();
    let root = dir.path();
    let seeds: Vec<PathBuf> = (0..40).map(|n| root.join(format!("seed{n:02}"))).collect();
    for file in &seeds {
        write(file, b"seed");
    }
    // Past the coarse clock's tick of the seeds' writes, the engine keeps their stats.
    let written = SystemTime::now();
    assert!(wait_until(Duration::from_secs(5), || written
        .elapsed()
        .is_ok_and(|e| e > Duration::from_millis(50))));

    let lock = inotify_exclusive();
    let options = EngineOptions {
        read_buffer_size: 4096,
        channel_batches: 1,
        ..EngineOptions::default()
    };
    let mut watcher = {
        let _small_queue = Sysctl::set("max_queued_events", 16, &lock);
        Watcher::with_options(options, None)
    };
    let id = watcher
        .engine()
        .add_watch(spec(root, Mask::IN_CREATE | Mask::IN_DELETE))
        .unwrap();
    let mut persisted = by_path(watcher.engine().snapshot(id).unwrap());

    // Nobody reads yet: the kernel queue (16 events) overflows.
    for n in 0..300 {
        write(&root.join(format!("new{n:03}")), b"n");
    }
    for file in &seeds[..10] {
        write(file, b"modified, longer");
    }
    for file in &seeds[10..20] {
        std::fs::remove_file(file).unwrap();
    }
    std::fs::create_dir(root.join("newdir")).unwrap();
    for n in 0..20 {
        write(&root.join(format!("newdir/f{n}")), b"f");
    }
    std::fs::rename(&seeds[20], root.join("renamed-seed")).unwrap();

    let overflowed =
        watcher.wait_for(|seen| seen.iter().any(|e| e.mask.contains(Mask::IN_Q_OVERFLOW)));
    assert!(overflowed, "no overflow: {}", watcher.dump());
    barrier(&mut watcher, root);
    export_until_current(&watcher, id, &mut persisted);
    let full = watcher.engine().snapshot(id).unwrap();
    assert_same(&persisted, &full, 0);
    for file in &seeds[..10] {
        let key = file.file_name().unwrap().as_bytes();
        assert_eq!(persisted[key].size, b"modified, longer".len() as u64);
    }
    assert!(!persisted.contains_key(b"seed15".as_slice()));
    assert!(persisted.contains_key(b"newdir/f19".as_slice()));
    assert!(persisted.contains_key(b"renamed-seed".as_slice()));
    assert_eq!(persisted.len(), 40 - 10 - 1 + 300 + 1 + 20 + 1);
}

// ----- replaying the catch-up ----------------------------------------------------------------

/// Applies catch-up events to a tree of paths, as a consumer mirroring the tree by path would,
/// and fails on any step that cannot happen: creating what exists, deleting or moving what does
/// not, moving onto an occupied place.
fn replay(tree: &mut BTreeMap<Vec<u8>, bool>, root: &Path, events: &[&Event]) {
    let rel = |path: &Path| {
        path.strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec()
    };
    let below = |tree: &BTreeMap<Vec<u8>, bool>, dir: &[u8]| -> Vec<Vec<u8>> {
        let mut prefix = dir.to_vec();
        prefix.push(b'/');
        tree.range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect()
    };
    let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let mut index = 0;
    while index < events.len() {
        let event = events[index];
        let path = rel(&event.pathname());
        let mask = event.mask;
        if mask.contains(Mask::IN_CREATE) {
            assert!(
                tree.insert(path.clone(), event.dir()).is_none(),
                "created twice: {}",
                show(&path)
            );
        } else if mask.contains(Mask::IN_DELETE) {
            assert!(
                below(tree, &path).is_empty(),
                "deleted before its content: {}",
                show(&path)
            );
            assert!(
                tree.remove(&path).is_some(),
                "deleted but absent: {}",
                show(&path)
            );
        } else if mask.intersects(Mask::IN_MODIFY | Mask::IN_CLOSE_WRITE) {
            assert!(
                tree.contains_key(&path),
                "modified but absent: {}",
                show(&path)
            );
        } else if mask.contains(Mask::IN_MOVED_FROM) {
            let to = events[index + 1];
            assert_eq!(to.cookie, event.cookie);
            assert_eq!(to.src_pathname.as_deref(), Some(event.pathname().as_path()));
            let target = rel(&to.pathname());
            assert!(!tree.contains_key(&target), "moved onto {}", show(&target));
            let is_dir = tree
                .remove(&path)
                .unwrap_or_else(|| panic!("moved but absent: {}", show(&path)));
            for old in below(tree, &path) {
                let kind = tree.remove(&old).unwrap();
                let mut new = target.clone();
                new.extend_from_slice(&old[path.len()..]);
                tree.insert(new, kind);
            }
            tree.insert(target, is_dir);
            index += 1;
        } else {
            panic!("unexpected catch-up event {}", event.maskname());
        }
        index += 1;
    }
}

/// After a random-ish downtime (files and directories created, written, renamed, moved out and
/// in, deleted), replaying the catch-up events on the baseline gives the tree on disk, and
/// applying the exported changes to it gives the full snapshot.
#[test]
fn replaying_the_catch_up_on_the_baseline_gives_the_tree_on_disk() {
    // More with CATCHUP_SEEDS=N (the orders depend on inode numbers, which vary run to run).
    let seeds: u64 = std::env::var("CATCHUP_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    for seed in 1..=seeds {
        let dir = temp_dir();
        let outside = temp_dir();
        let root = dir.path();
        let mut rng = Lcg(seed);
        for step in 0..80 {
            mutate(root, outside.path(), &mut rng, step, &mut || {});
        }
        let baseline = baseline_of(spec(root, Mask::ALL_EVENTS));
        for step in 1000..1150 {
            mutate(root, outside.path(), &mut rng, step, &mut || {});
        }

        let mut watcher = Watcher::start();
        let id = watcher
            .engine()
            .add_watch_with_baseline(spec(root, Mask::ALL_EVENTS), baseline.clone())
            .unwrap();
        // And the export after the catch-up turns the baseline into the tree.
        let mut persisted = by_path(baseline.clone());
        export_until_current(&watcher, id, &mut persisted);
        assert_same(
            &persisted,
            &watcher.engine().snapshot(id).unwrap(),
            seed as usize,
        );
        barrier(&mut watcher, root);
        let events = catch_up_events(&watcher.seen);
        assert!(events.len() > 20, "seed {seed}: too little changed");
        let mut tree: BTreeMap<Vec<u8>, bool> = baseline
            .iter()
            .map(|e| (e.path.clone(), e.kind == inotifier_core::EntryKind::Dir))
            .collect();
        if std::env::var_os("CATCHUP_DEBUG").is_some() {
            for e in &events {
                eprintln!(
                    "{seed} {} {:?} src={:?} cookie={}",
                    e.maskname(),
                    e.pathname(),
                    e.src_pathname,
                    e.cookie
                );
            }
        }
        replay(&mut tree, root, &events);
        let (files, dirs) = files_and_dirs(root);
        let on_disk: BTreeMap<Vec<u8>, bool> = files
            .iter()
            .map(|p| (p, false))
            .chain(dirs.iter().map(|p| (p, true)))
            .map(|(p, d)| {
                (
                    p.strip_prefix(root)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                    d,
                )
            })
            .collect();
        let show = |t: &BTreeMap<Vec<u8>, bool>| {
            t.keys()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            show(&tree),
            show(&on_disk),
            "seed {seed}:\n{}",
            watcher.dump()
        );
        assert_eq!(tree, on_disk, "seed {seed}");
    }
}
