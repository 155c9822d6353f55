//! Symlink swaps on real files: a ConfigMap volume laid out and updated exactly as kubelet's
//! atomic writer does it (pkg/volume/util/atomic_writer.go).

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use inotifier_core::{Mask, Origin};
use support::{Watcher, temp_dir};

const KEYS: [&str; 2] = ["config.yaml", "other.yaml"];

/// Writes `version`'s payload in a new timestamped directory and makes `..data` point to it,
/// as the atomic writer does; returns the new directory.
fn write_version(volume: &Path, version: u32, previous: Option<&Path>) -> PathBuf {
    write_keys(volume, version, previous, &KEYS)
}

fn write_keys(volume: &Path, version: u32, previous: Option<&Path>, keys: &[&str]) -> PathBuf {
    let name = format!("..2026_12_08_05_0{version}_00.00000000{version}");
    let payload = volume.join(&name);
    std::fs::create_dir(&payload).unwrap();
    for key in keys {
        std::fs::write(payload.join(key), format!("version: {version}\n")).unwrap();
    }
    match previous {
        // The first write: the visible links are made once, through ..data.
        None => {
            symlink(&name, volume.join("..data")).unwrap();
            for key in KEYS {
                symlink(format!("..data/{key}"), volume.join(key)).unwrap();
            }
        }
        Some(previous) => {
            symlink(&name, volume.join("..data_tmp")).unwrap();
            std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
            std::fs::remove_dir_all(previous).unwrap();
        }
    }
    payload
}

fn synthesized(watcher: &Watcher, mask: Mask, path: &Path) -> usize {
    watcher
        .seen
        .iter()
        .filter(|e| e.mask == mask && e.pathname() == path && e.origin == Origin::Rescan)
        .count()
}

#[test]
fn a_configmap_update_reports_each_visible_file_modified_once() {
    let dir = temp_dir();
    let volume = dir.path();
    let mut payload = write_version(volume, 1, None);
    let mut watcher = Watcher::start();
    watcher.watch(volume, Mask::ALL_EVENTS, false);
    for version in 2..=3 {
        payload = write_version(volume, version, Some(&payload));
        watcher.barrier(volume);
        for key in KEYS {
            let visible = volume.join(key);
            for mask in [Mask::IN_MODIFY, Mask::IN_CLOSE_WRITE] {
                assert_eq!(
                    synthesized(&watcher, mask, &visible),
                    (version - 1) as usize,
                    "{} of {} after update {version}; seen:\n{}",
                    mask,
                    visible.display(),
                    watcher.dump()
                );
            }
            assert_eq!(
                std::fs::read_to_string(&visible).unwrap(),
                format!("version: {version}\n")
            );
        }
    }
}

#[test]
fn a_key_added_to_the_configmap_is_followed_through_the_next_swap() {
    let dir = temp_dir();
    let volume = dir.path();
    let payload = write_version(volume, 1, None);
    let mut watcher = Watcher::start();
    watcher.watch(volume, Mask::ALL_EVENTS, false);
    // The next version has a key more, whose link the writer makes after the swap.
    let name = "..2026_12_08_05_02_00.000000002";
    let next = volume.join(name);
    std::fs::create_dir(&next).unwrap();
    for key in KEYS.iter().chain(&["added.yaml"]) {
        std::fs::write(next.join(key), b"version: 2\n").unwrap();
    }
    symlink(name, volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    symlink("..data/added.yaml", volume.join("added.yaml")).unwrap();
    std::fs::remove_dir_all(&payload).unwrap();
    watcher.barrier(volume);
    let added = volume.join("added.yaml");
    assert_eq!(
        synthesized(&watcher, Mask::IN_MODIFY, &added),
        0,
        "{}",
        watcher.dump()
    );
    // Its creation is the kernel's; the swap after it reports it modified.
    write_keys(
        volume,
        3,
        Some(&next),
        &["config.yaml", "other.yaml", "added.yaml"],
    );
    watcher.barrier(volume);
    assert_eq!(
        synthesized(&watcher, Mask::IN_MODIFY, &added),
        1,
        "{}",
        watcher.dump()
    );
    assert_eq!(std::fs::read_to_string(&added).unwrap(), "version: 3\n");
}

#[test]
fn a_rename_that_no_link_goes_through_adds_nothing() {
    let dir = temp_dir();
    let volume = dir.path();
    std::fs::write(volume.join("real.txt"), b"x").unwrap();
    symlink("real.txt", volume.join("alias.txt")).unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(volume, Mask::ALL_EVENTS, false);
    std::fs::write(volume.join("tmp"), b"y").unwrap();
    std::fs::rename(volume.join("tmp"), volume.join("other.txt")).unwrap();
    watcher.barrier(volume);
    assert!(
        watcher.seen.iter().all(|e| e.origin == Origin::Kernel),
        "{}",
        watcher.dump()
    );
}

#[test]
fn a_file_watched_through_the_swapped_link_follows_it_and_reports_each_update() {
    let dir = temp_dir();
    let volume = dir.path();
    let mut payload = write_version(volume, 1, None);
    let visible = volume.join("config.yaml");
    let mut watcher = Watcher::start();
    watcher.watch(&visible, Mask::ALL_EVENTS, false);
    for version in 2..=3 {
        payload = write_version(volume, version, Some(&payload));
        let expected = (version - 1) as usize;
        let reported = watcher.wait_for(|seen| {
            seen.iter()
                .filter(|e| e.mask == Mask::IN_CLOSE_WRITE && e.origin == Origin::Rescan)
                .count()
                == expected
        });
        assert!(
            reported,
            "update {version} not reported:\n{}",
            watcher.dump()
        );
    }
    // The watch is on the file the path now reaches: a write through the path is the kernel's.
    std::fs::write(&visible, b"written in place\n").unwrap();
    watcher.expect("the kernel's close of the current file", |e| {
        e.mask == Mask::IN_CLOSE_WRITE && e.origin == Origin::Kernel && e.pathname() == visible
    });
    assert!(
        watcher
            .seen
            .iter()
            .all(|e| !e.mask.intersects(Mask::IN_DELETE_SELF | Mask::IN_IGNORED)),
        "the old files' deletions are not the path's:\n{}",
        watcher.dump()
    );
    assert_eq!(synthesized(&watcher, Mask::IN_MODIFY, &visible), 2);
}

#[test]
fn a_file_watched_by_a_path_without_links_keeps_the_kernels_behaviour() {
    let dir = temp_dir();
    let file = dir.path().join("plain.yaml");
    std::fs::write(&file, b"1\n").unwrap();
    let mut watcher = Watcher::start();
    watcher.watch(&file, Mask::ALL_EVENTS, false);
    let replacement = dir.path().join("plain.yaml.tmp");
    std::fs::write(&replacement, b"2\n").unwrap();
    std::fs::rename(&replacement, &file).unwrap();
    watcher.expect("the replaced file's IN_DELETE_SELF", |e| {
        e.mask.contains(Mask::IN_DELETE_SELF)
    });
    assert!(
        watcher.seen.iter().all(|e| e.origin == Origin::Kernel),
        "{}",
        watcher.dump()
    );
}

#[test]
fn excluding_the_writers_own_entries_leaves_only_the_visible_files() {
    let dir = temp_dir();
    let volume = dir.path();
    let payload = write_version(volume, 1, None);
    let mut watcher = Watcher::start();
    let mut spec = inotifier_core::WatchSpec::new(volume, Mask::ALL_EVENTS).recursive(true);
    spec.filters.exclude = vec![inotifier_core::Glob::new("..*").unwrap()];
    watcher.engine().add_watch(spec).unwrap();
    write_version(volume, 2, Some(&payload));
    watcher.barrier(volume);
    for key in KEYS {
        assert_eq!(
            synthesized(&watcher, Mask::IN_MODIFY, &volume.join(key)),
            1,
            "{}",
            watcher.dump()
        );
    }
    assert!(
        watcher
            .seen
            .iter()
            .all(|e| !e.name.as_encoded_bytes().starts_with(b"..")),
        "{}",
        watcher.dump()
    );
}
