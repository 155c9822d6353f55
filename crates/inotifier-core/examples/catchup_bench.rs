//! How long catch-up takes on a large tree, next to the plain initial scan it extends.
//!
//! `cargo run --release -p inotifier-core --example catchup_bench [FILES]` (default 100,000
//! files, 1,000 per directory, in a temporary directory). Prints milliseconds for: the initial
//! scan of `add_watch`, the first full snapshot, `add_watch_with_baseline` against an unchanged
//! tree and against one where 1% of the files were created, deleted, modified and renamed each,
//! and the export of the changes that follow 1,000 writes.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use inotifier_core::{Batch, Engine, EngineOptions, Mask, Origin, WatchSpec};

fn drain(batches: Receiver<Batch>) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut all, mut catch_up) = (0, 0);
        while let Ok(batch) = batches.recv() {
            all += batch.len();
            catch_up += batch.iter().filter(|e| e.origin == Origin::CatchUp).count();
        }
        (all, catch_up)
    })
}

fn spec(root: &Path) -> WatchSpec {
    WatchSpec::new(root, Mask::ALL_EVENTS).recursive(true)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let files: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("a number of files"))
        .unwrap_or(100_000);
    let dir = tempfile::Builder::new()
        .prefix("inotifier-catchup-bench")
        .tempdir()
        .unwrap();
    let root = dir.path();
    let per_dir = 1000;
    for n in 0..files {
        let sub = root.join(format!("d{:04}", n / per_dir));
        if n % per_dir == 0 {
            std::fs::create_dir(&sub).unwrap();
        }
        std::fs::write(sub.join(format!("f{n:06}")), b"content").unwrap();
    }
    println!("{files} files in {} directories", files.div_ceil(per_dir));

    // The plain initial scan, then the first full snapshot.
    let (engine, batches) = Engine::start(EngineOptions::default()).unwrap();
    let consumer = drain(batches);
    let started = Instant::now();
    let id = engine.add_watch(spec(root)).unwrap();
    println!("add_watch (initial scan):           {:8.1} ms", ms(started));
    let started = Instant::now();
    let baseline = engine.snapshot(id).unwrap();
    println!(
        "snapshot, first (lstat each):       {:8.1} ms  ({} entries)",
        ms(started),
        baseline.len()
    );
    let started = Instant::now();
    let again = engine.snapshot(id).unwrap();
    println!("snapshot, again (stats kept):       {:8.1} ms", ms(started));
    assert_eq!(again.len(), baseline.len());
    // 1,000 writes, then one incremental export.
    for n in (0..files).step_by((files / 1000).max(1)).take(1000) {
        let path = root.join(format!("d{:04}/f{n:06}", n / per_dir));
        std::fs::write(path, b"written again").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut changes = Vec::new();
    let started = Instant::now();
    let mut export_ms = 0.0;
    while changes.len() < 1000 && Instant::now() < deadline {
        let export = Instant::now();
        changes.extend(engine.snapshot_changes(id).unwrap());
        export_ms += ms(export);
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "snapshot_changes after 1,000 writes: {:8.1} ms exporting ({} changes, {:.0} ms to see them)",
        export_ms,
        changes.len(),
        ms(started)
    );
    let baseline = engine.snapshot(id).unwrap();
    drop(engine);
    consumer.join().unwrap();

    // Unchanged tree.
    let (engine, batches) = Engine::start(EngineOptions::default()).unwrap();
    let consumer = drain(batches);
    let started = Instant::now();
    engine
        .add_watch_with_baseline(spec(root), baseline.clone())
        .unwrap();
    println!(
        "add_watch_with_baseline, unchanged:  {:8.1} ms",
        ms(started)
    );
    drop(engine);
    let (_, caught_up) = consumer.join().unwrap();
    assert_eq!(caught_up, 0);

    // 1% each of creations, deletions, modifications and renames.
    let one_percent = files / 100;
    for n in 0..one_percent {
        let sub = root.join(format!("d{:04}", n % files.div_ceil(per_dir)));
        std::fs::write(sub.join(format!("new{n:06}")), b"new").unwrap();
    }
    let mut touched = 0;
    for (index, entry) in baseline
        .iter()
        .filter(|e| e.path.contains(&b'f'))
        .enumerate()
    {
        if !std::str::from_utf8(&entry.path).unwrap().contains("/f") {
            continue;
        }
        let path = root.join(std::str::from_utf8(&entry.path).unwrap());
        match index % 100 {
            0 => std::fs::remove_file(&path).unwrap(),
            1 => std::fs::write(&path, b"modified while down").unwrap(),
            2 => std::fs::rename(&path, path.with_extension("renamed")).unwrap(),
            _ => continue,
        }
        touched += 1;
    }
    let (engine, batches) = Engine::start(EngineOptions::default()).unwrap();
    let consumer = drain(batches);
    let started = Instant::now();
    engine
        .add_watch_with_baseline(spec(root), baseline)
        .unwrap();
    println!(
        "add_watch_with_baseline, 4% changed: {:8.1} ms  ({} created, {touched} deleted/modified/renamed)",
        ms(started),
        one_percent
    );
    drop(engine);
    let (_, caught_up) = consumer.join().unwrap();
    println!("catch-up events:                     {caught_up:8}");
}
