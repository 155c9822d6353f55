//! Events/s appended (and acknowledged) by the journal, on tmpfs and on disk.
//!
//! `cargo run --release -p inotifier-journal --example journal_bench [EVENTS] [DIR...]`
//! (defaults: 400000 events; /dev/shm and /var/tmp).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotifier_core::{Event, Mask, Origin};
use inotifier_journal::{Journal, JournalOptions};

fn events(n: usize) -> Vec<Event> {
    let dir: Arc<Path> = Arc::from(Path::new("/srv/inbox/incoming/2026"));
    (0..n)
        .map(|i| Event {
            id: i as u64 + 1,
            mask: Mask(0x8),
            cookie: 0,
            wd: 1,
            path: Arc::clone(&dir),
            name: OsString::from(format!("file-{i:08}.csv")),
            src_pathname: None,
            origin: Origin::Kernel,
            time_ns: 1_764_000_000_000_000_000 + i as i64,
            watches: Arc::from([]),
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Appends only.
    Append,
    /// Appends a batch, then acknowledges its events, on the same thread.
    AckInline,
    /// A processor thread acknowledges each batch as the appender hands it over, as the
    /// daemon's processors do.
    AckThread,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::AckInline => "append+ack",
            Mode::AckThread => "append+ack (thread)",
        }
    }
}

fn run(dir: &Path, events: &[Event], batch: usize, mode: Mode) -> f64 {
    let path = dir.join(format!("journal-bench-{}.db", std::process::id()));
    let journal = Arc::new(
        Journal::open(&JournalOptions {
            path: path.clone(),
            retain: 100_000,
            commit_interval: Duration::from_millis(10),
        })
        .expect("open"),
    );
    let processor = journal.processor("bench@/srv/inbox").expect("processor");
    let routes = [processor];
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(4);
    let acker = {
        let journal = Arc::clone(&journal);
        std::thread::spawn(move || {
            for ids in rx {
                for id in ids {
                    journal.ack(processor, id);
                }
            }
        })
    };
    let start = Instant::now();
    let mut rows: Vec<(&Event, &[_])> = Vec::with_capacity(batch);
    for chunk in events.chunks(batch) {
        rows.clear();
        rows.extend(chunk.iter().map(|e| (e, &routes[..])));
        journal.append(&rows).expect("append");
        match mode {
            Mode::Append => {}
            Mode::AckInline => {
                for e in chunk {
                    journal.ack(processor, e.id);
                }
            }
            Mode::AckThread => tx.send(chunk.iter().map(|e| e.id).collect()).expect("send"),
        }
    }
    drop(tx);
    acker.join().expect("acker");
    journal.flush().expect("flush");
    let rate = events.len() as f64 / start.elapsed().as_secs_f64();
    if mode != Mode::Append {
        assert!(journal.pending(processor).expect("pending").is_empty());
    }
    drop(journal);
    if mode == Mode::Append {
        // What a restart costs with every event still pending.
        let start = Instant::now();
        let journal = Journal::open(&JournalOptions::new(&path)).expect("reopen");
        let opened = start.elapsed();
        let start = Instant::now();
        let pending = journal.pending(processor).expect("pending").len();
        println!(
            "{:<10} reopen with {pending} pending: open {:.1} ms, pending() {:.0} ms",
            dir.display(),
            opened.as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    rate
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse().expect("EVENTS: a number"))
        .unwrap_or(400_000);
    let mut dirs: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if dirs.is_empty() {
        dirs = vec![PathBuf::from("/dev/shm"), PathBuf::from("/var/tmp")];
    }
    let events = events(n);
    println!("{n} events, one processor");
    for dir in &dirs {
        for batch in [256, 4096] {
            for mode in [Mode::Append, Mode::AckInline, Mode::AckThread] {
                let rate = run(dir, &events, batch, mode);
                println!(
                    "{:<10} batch {:>5}  {:<20} {:>10.0} events/s",
                    dir.display(),
                    batch,
                    mode.name(),
                    rate
                );
            }
        }
    }
}
