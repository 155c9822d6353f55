//! The jsonl processor on real files: concurrent appends, the file's mode, symlinks refused,
//! a full disk (a small tmpfs) as a retryable failure, and Python reading the lines back.

mod common;

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use common::{event, moved, options, python, s, temp_dir};
use inotifier_sinks::{BuildError, Processor, build, validate};
use serde_json::{Value, json};

fn jsonl(path: &Path) -> Arc<dyn Processor> {
    build("jsonl", &options(json!({"path": s(path)})), Path::new("/"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn jsonl_error(value: Value, base: &Path) -> BuildError {
    match build("jsonl", &options(value), base) {
        Ok(_) => panic!("built"),
        Err(error) => error,
    }
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn lines_from_many_threads_are_whole_json_objects() {
    const THREADS: u64 = 8;
    const EVENTS: u64 = 500;
    let dir = temp_dir();
    let path = dir.path().join("events.jsonl");
    // Two processors on the same file: two descriptors, as two daemons would have.
    let processors = [jsonl(&path), jsonl(&path)];
    // A long name makes every line several hundred bytes.
    let long_name = "n".repeat(300);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let processor = processors[(thread % 2) as usize].clone();
            let (dir, long_name) = (dir.path(), &long_name);
            scope.spawn(move || {
                for i in 0..EVENTS {
                    let mut event = event(dir, format!("{long_name}-{thread}-{i}").as_bytes());
                    event.id = thread * EVENTS + i;
                    processor.process(&event).unwrap();
                }
            });
        }
    });
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let mut ids = HashSet::new();
    for line in text.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        let id = value["id"].as_u64().unwrap();
        let (thread, i) = (id / EVENTS, id % EVENTS);
        assert_eq!(
            value["name"],
            format!("{long_name}-{thread}-{i}"),
            "the line is whole: {line}"
        );
        assert!(ids.insert(id), "id {id} written once");
    }
    assert_eq!(
        ids.len() as u64,
        THREADS * EVENTS,
        "every event has its line"
    );
}

#[test]
fn each_line_is_the_event_json_that_python_reads_back_byte_for_byte() {
    let dir = temp_dir();
    let path = dir.path().join("events.jsonl");
    let processor = jsonl(&path);
    let src = dir.path().join("before \"quoted\"");
    processor
        .process(&moved(dir.path(), "café.txt".as_bytes(), &src))
        .unwrap();
    processor
        .process(&event(dir.path(), b"caf\xe9 \xff.txt"))
        .unwrap();
    processor.close();
    let text = std::fs::read_to_string(&path).unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "id",
        "mask",
        "maskname",
        "path",
        "name",
        "pathname",
        "dir",
        "wd",
        "cookie",
        "src_pathname",
        "synthetic",
        "origin",
        "time",
    ];
    expected.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    assert_eq!(line["maskname"], "IN_MOVED_TO");
    assert_eq!(line["cookie"], 7);
    assert_eq!(line["src_pathname"], s(&src));
    assert_eq!(line["name"], "café.txt");
    assert!(line["time"].is_f64());
    assert!(text.contains(r#""time":1764077825.123456789}"#), "{text}");

    // serde_json refuses the lone surrogates of a name that is not UTF-8; Python,
    // independently, reads them and gives back the exact bytes.
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains(r#""name":"caf\udce9 \udcff.txt""#)
    );
    let output = std::process::Command::new(python())
        .args([
            "-c",
            "import json, os, sys\n\
             event = json.loads(open(sys.argv[1]).readlines()[1])\n\
             sys.stdout.buffer.write(os.fsencode(event['pathname']))",
            s(&path),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut pathname = dir.path().as_os_str().as_bytes().to_vec();
    pathname.extend_from_slice(b"/caf\xe9 \xff.txt");
    assert_eq!(output.stdout, pathname);
}

#[test]
fn the_file_is_created_with_mode_0640_and_appended_to() {
    let dir = temp_dir();
    let path = dir.path().join("new.jsonl");
    let processor = jsonl(&path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640 & !umask(), "mode {mode:o}");

    // An existing file keeps its lines and its mode.
    processor.process(&event(dir.path(), b"one")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    jsonl(&path).process(&event(dir.path(), b"two")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn a_symlink_at_the_path_is_refused_and_its_target_untouched() {
    let dir = temp_dir();
    let target = dir.path().join("target");
    std::fs::write(&target, b"precious\n").unwrap();
    let link = dir.path().join("events.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for error in [
        jsonl_error(json!({"path": s(&link)}), Path::new("/")),
        validate("jsonl", &options(json!({"path": s(&link)})), Path::new("/")).unwrap_err(),
    ] {
        assert_eq!(error.option(), Some("path"));
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
    // A dangling link too: following it would create the target.
    let dangling = dir.path().join("dangling.jsonl");
    std::os::unix::fs::symlink(dir.path().join("created-through-link"), &dangling).unwrap();
    let error = jsonl_error(json!({"path": s(&dangling)}), Path::new("/"));
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious\n");
    assert!(!dir.path().join("created-through-link").exists());
}

#[test]
fn validate_checks_without_creating_and_build_resolves_relative_paths() {
    let dir = temp_dir();
    let opts = options(json!({"path": "logs/events.jsonl", "fsync": true}));
    let error = validate("jsonl", &opts, dir.path()).unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    validate("jsonl", &opts, dir.path()).unwrap();
    assert!(
        !dir.path().join("logs/events.jsonl").exists(),
        "validate creates nothing"
    );
    let processor = build("jsonl", &opts, dir.path()).unwrap();
    processor.process(&event(dir.path(), b"a")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("logs/events.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );

    let error = jsonl_error(json!({}), dir.path());
    assert_eq!(
        error.to_string(),
        "missing option `path` for processor jsonl"
    );
    let error = jsonl_error(json!({"path": "x", "fsynk": true}), dir.path());
    assert_eq!(
        error.to_string(),
        "unknown option `fsynk` for processor jsonl: expected one of path, fsync"
    );
    let error = jsonl_error(json!({"path": "x", "fsync": "yes"}), dir.path());
    assert_eq!(error.option(), Some("fsync"), "{error}");
    let error = jsonl_error(json!({"path": s(dir.path())}), dir.path());
    assert!(error.to_string().contains("is a directory"), "{error}");
}

/// A tmpfs of a few pages, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = temp_dir();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=16k",
                "inotifier-test",
                s(dir.path()),
            ])
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs failed");
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_is_a_retryable_failure_and_lines_stay_whole() {
    if !inotifier_test_support::privileges::root_available(
        "a_full_disk_is_a_retryable_failure_and_lines_stay_whole",
        "mounts a tmpfs",
    ) {
        return;
    }
    let disk = SmallDisk::mount();
    let path = disk.dir.path().join("events.jsonl");
    let processor = jsonl(&path);
    let dir = Path::new("/srv/in");
    let mut failure = None;
    for id in 0..1000 {
        let mut event = event(dir, "x".repeat(200).as_bytes());
        event.id = id;
        if let Err(error) = processor.process(&event) {
            failure = Some(error);
            break;
        }
    }
    let error = failure.expect("a 16 KiB disk fills up");
    assert!(error.retryable, "{error:?}");
    assert!(error.message.contains(s(&path)), "{error}");
    // Every line but a cut one is whole JSON, and the file is not corrupted beyond it.
    let text = std::fs::read(&path).unwrap();
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let whole = lines
        .iter()
        .filter(|line| serde_json::from_slice::<Value>(line).is_ok())
        .count();
    assert!(whole >= lines.len() - 1, "{whole} of {}", lines.len());
    assert!(whole > 10, "{whole} lines fit");
}
