//! Helpers shared by the processors' tests: events, options, fixtures.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotifier_core::{Event, Mask, Origin, WatchId};
use serde_json::{Map, Value};

/// An `IN_CLOSE_WRITE` event for `dir/name`.
pub fn event(dir: &Path, name: &[u8]) -> Event {
    Event {
        id: 42,
        mask: Mask::IN_CLOSE_WRITE,
        cookie: 0,
        wd: 1,
        path: Arc::from(dir),
        name: OsStr::from_bytes(name).to_os_string(),
        src_pathname: None,
        origin: Origin::Kernel,
        time_ns: 1_764_077_825_123_456_789,
        watches: Arc::from([WatchId(0)]),
    }
}

/// `event` as an `IN_MOVED_TO` paired with its source.
pub fn moved(dir: &Path, name: &[u8], src: &Path) -> Event {
    Event {
        mask: Mask::IN_MOVED_TO,
        cookie: 7,
        src_pathname: Some(src.to_path_buf()),
        ..event(dir, name)
    }
}

pub fn options(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("options are an object, not {other}"),
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inotifier-sinks-")
        .tempdir()
        .expect("a temporary directory")
}

/// `path` as a string for JSON options (the tests' paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 test path")
}

/// The real Python 3 interpreter (not a wrapper script such as a pyenv shim, which would
/// add variables to a cleared environment and time to every run).
pub fn python() -> &'static str {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 runs the tests' fixtures: install it");
        assert!(output.status.success(), "python3 -c failed: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    })
}
