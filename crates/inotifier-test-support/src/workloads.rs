//! File writes shaped like the ones the ready event must handle, shared by the tests of the
//! engine, of `inotifier watch` and of the daemon.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// What a chunked writer did: when it was about to close the file for the last time (on the
/// monotonic clock and on the wall clock, which event times use), and the longest pause between
/// two of its closes.
pub struct Written {
    pub before_last_close: Instant,
    pub before_last_close_wall: SystemTime,
    pub longest_pause: Duration,
}

/// Appends `chunks` chunks to `path`, opening and closing it for each, `interval` apart.
pub fn write_reopening(path: &Path, chunks: usize, interval: Duration) -> Written {
    let mut previous_close: Option<Instant> = None;
    let mut written = Written {
        before_last_close: Instant::now(),
        before_last_close_wall: SystemTime::now(),
        longest_pause: Duration::ZERO,
    };
    for chunk in 0..chunks {
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(format!("chunk {chunk:03}\n").as_bytes())
            .unwrap();
        written.before_last_close = Instant::now();
        written.before_last_close_wall = SystemTime::now();
        if let Some(previous) = previous_close {
            written.longest_pause = written
                .longest_pause
                .max(written.before_last_close - previous);
        }
        drop(file);
        previous_close = Some(Instant::now());
        // Shapes the workload: about a second for 100 chunks of 10 ms.
        std::thread::sleep(interval);
    }
    written
}

/// Writes `chunks` chunks to `path` through one descriptor, `interval` apart, then closes it.
/// Returns when it was about to close (monotonic and wall clock).
pub fn write_one_descriptor(
    path: &Path,
    chunks: usize,
    interval: Duration,
) -> (Instant, SystemTime) {
    let mut file = File::create(path).unwrap();
    for chunk in 0..chunks {
        file.write_all(format!("chunk {chunk:03}\n").as_bytes())
            .unwrap();
        file.sync_data().ok();
        // Shapes the workload.
        std::thread::sleep(interval);
    }
    let before_close = (Instant::now(), SystemTime::now());
    drop(file);
    before_close
}

/// Creates `count` directory chains `newN/a/b` under `dir`, each with the files `one` and
/// `two`, each file right after its directories: most exist before a watcher can watch their
/// directory. Returns the files.
pub fn files_in_new_directories(dir: &Path, count: usize) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for n in 0..count {
        let deep = dir.join(format!("new{n}/a/b"));
        std::fs::create_dir_all(&deep).unwrap();
        for name in ["one", "two"] {
            let file = deep.join(name);
            std::fs::write(&file, b"data").unwrap();
            files.push(file);
        }
    }
    files
}
