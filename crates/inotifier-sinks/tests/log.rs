//! The log processor writing to a real standard output: this test binary runs itself as a
//! child process whose stdout is a pipe, and reads the lines.

mod common;

use std::path::Path;
use std::process::Command;

use common::{event, moved, options};
use inotifier_core::{Mask, Origin};
use inotifier_sinks::{Processor, build};
use serde_json::json;

/// Run by [`the_log_processor_writes_one_line_per_event_to_stdout`] in a child process.
#[test]
#[ignore = "run by the_log_processor_writes_one_line_per_event_to_stdout"]
fn log_child() {
    // The harness has written "test log_child ... " without a newline: end that line.
    std::io::Write::write_all(&mut std::io::stdout(), b"\n").unwrap();
    let processor = build("log", &options(json!({})), Path::new("/")).unwrap();
    let dir = Path::new("/srv/in");
    processor.process(&event(dir, b"report.pdf")).unwrap();
    processor
        .process(&moved(dir, b"b.txt", &dir.join("a.txt")))
        .unwrap();
    let mut scanned = event(dir, b"new\ndir \xff\\x");
    scanned.mask = Mask::IN_CREATE | Mask::IN_ISDIR;
    scanned.origin = Origin::Scan;
    scanned.id = 43;
    processor.process(&scanned).unwrap();
    processor.close();
}

#[test]
fn the_log_processor_writes_one_line_per_event_to_stdout() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "log_child", "--ignored", "--test-threads=1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("20")).collect();
    assert_eq!(
        lines,
        [
            "2025-11-25T13:37:05.123Z IN_CLOSE_WRITE /srv/in/report.pdf id=42",
            "2025-11-25T13:37:05.123Z IN_MOVED_TO /srv/in/b.txt (from /srv/in/a.txt) id=42",
            "2025-11-25T13:37:05.123Z IN_CREATE|IN_ISDIR /srv/in/new\\x0adir \\xff\\\\x id=43 origin=scan",
        ],
        "{stdout}"
    );
}

#[test]
fn the_log_processor_takes_no_option() {
    let error = match build("log", &options(json!({"format": "text"})), Path::new("/")) {
        Ok(_) => panic!("built"),
        Err(error) => error,
    };
    assert_eq!(error.option(), Some("format"), "{error}");
    let error =
        inotifier_sinks::validate("syslog", &options(json!({})), Path::new("/")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown processor `syslog`: expected one of log, jsonl, exec, webhook"
    );
    let names: Vec<&str> = inotifier_sinks::KINDS
        .iter()
        .map(|kind| kind.name)
        .collect();
    assert_eq!(names, ["log", "jsonl", "exec", "webhook"]);
}

#[test]
fn a_failing_writer_is_a_retryable_failure() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let processor = inotifier_sinks::log::LogProcessor::with_writer(Full);
    let error = processor
        .process(&event(Path::new("/d"), b"f"))
        .unwrap_err();
    assert!(error.retryable);
    assert!(error.message.contains("No space left"), "{error}");
}
