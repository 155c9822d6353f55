//! How a test that cannot run here says so. Rust has no skipped state for a test: a skipping
//! test returns early after [`skip`], which prints the reason and appends it to the file named
//! by `INOTIFIER_SKIPPED_FILE`, which `scripts/test.sh` counts and prints in its summary.

use std::io::Write;

/// Reports `reason` (which names the test) as a skip.
pub fn skip(reason: &str) {
    eprintln!("{reason}");
    if let Some(file) = std::env::var_os("INOTIFIER_SKIPPED_FILE")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
    {
        let _ = writeln!(file, "{reason}");
    }
}
