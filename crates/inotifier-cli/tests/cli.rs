//! `inotifier watch` run as a real process on real inotify, in temporary directories. Nothing
//! here changes machine state (the inotify limits are in `limits.rs`).

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use common::{
    DEADLINE, Watcher, maskname, parse, pathname, raw_string_field, run_inotifier, run_to_exit,
    watch_command,
};
use inotifier_test_support::inotify_shared;
use serde_json::Value;

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inotifier-cli-")
        .tempdir()
        .expect("temporary directory")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `--help` output split into words, with punctuation around them trimmed.
fn words(text: &str) -> HashSet<&str> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')))
        .collect()
}

// ----- 1. help -----------------------------------------------------------------------------------

#[test]
fn help_documents_every_option_and_the_json_keys() {
    let _lock = inotify_shared();
    let top = run_inotifier(&["--help"]);
    assert_eq!(
        top.status.code(),
        Some(0),
        "inotifier --help: {}",
        top.stderr
    );
    assert!(top.stdout.contains("Usage: inotifier"), "{}", top.stdout);
    assert!(
        top.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("watch ")),
        "inotifier --help lists the watch command:\n{}",
        top.stdout
    );

    let help = run_inotifier(&["watch", "--help"]);
    assert_eq!(
        help.status.code(),
        Some(0),
        "inotifier watch --help: {}",
        help.stderr
    );
    let text = &help.stdout;
    for option in [
        "-e, --events <MASK>",
        "-r, --recursive",
        "--exclude <GLOB>",
        "--include <GLOB>",
        "--format <FORMAT>",
    ] {
        assert!(
            text.contains(option),
            "watch --help lacks {option:?}:\n{text}"
        );
    }
    let all_words = words(text);
    for value in ["json", "text", "ALL_EVENTS", "PATH"] {
        assert!(
            all_words.contains(value),
            "watch --help lacks {value:?}:\n{text}"
        );
    }
    // The keys are listed in the paragraph about the JSON output.
    let paragraph = text
        .split("\n\n")
        .find(|p| p.contains("JSON output"))
        .unwrap_or_else(|| panic!("watch --help has no paragraph about the JSON output:\n{text}"));
    let keys = words(paragraph);
    for key in [
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
    ] {
        assert!(
            keys.contains(key),
            "the JSON paragraph of watch --help lacks the key {key:?}:\n{paragraph}"
        );
    }
    // Short help too.
    let short = run_inotifier(&["watch", "-h"]);
    assert_eq!(short.status.code(), Some(0));
    assert!(short.stdout.contains("--events"), "{}", short.stdout);
}

// ----- 2. usage errors ---------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let d = s(dir.path());
    let cases: [(&[&str], &[&str]); 5] = [
        (&["watch", "--bogus", d], &["--bogus"]),
        (&["watch"], &["PATH"]),
        (
            &["watch", "-e", "IN_CRATE", d],
            &["IN_CRATE", "IN_CLOSE_WRITE", "IN_CREATE", "IN_MOVED_TO"],
        ),
        (&["watch", "--exclude", "[abc", d], &["[abc"]),
        (&["watch", "--format", "yaml", d], &["yaml", "json", "text"]),
    ];
    for (args, expected) in cases {
        let run = run_inotifier(args);
        assert_eq!(
            run.status.code(),
            Some(2),
            "inotifier {args:?}: expected exit 2, got {:?}; stderr:\n{}",
            run.status,
            run.stderr
        );
        for word in expected {
            assert!(
                run.stderr.contains(word),
                "inotifier {args:?}: stderr does not mention {word:?}:\n{}",
                run.stderr
            );
        }
        assert!(
            run.stdout.is_empty(),
            "inotifier {args:?} printed on stdout: {}",
            run.stdout
        );
        assert!(
            !run.stderr.contains("inotifier: ready"),
            "inotifier {args:?} started watching: {}",
            run.stderr
        );
    }
}

// ----- 3. missing path ---------------------------------------------------------------------------

#[test]
fn a_path_that_does_not_exist_exits_1_and_names_it() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let missing = dir.path().join("no-such-directory");
    let run = run_inotifier(&["watch", s(&missing)]);
    assert_eq!(run.status.code(), Some(1), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains(s(&missing)),
        "stderr does not name {missing:?}:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("inotifier: ready"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

// ----- 4. JSON output ----------------------------------------------------------------------------

/// Checks the type of every key of one JSON event.
fn assert_event_shape(event: &Value) {
    let object = event.as_object().expect("a JSON object");
    for key in ["id", "mask", "wd", "cookie"] {
        assert!(
            object.get(key).is_some_and(|v| v.is_i64() || v.is_u64()),
            "{key} is an integer: {event}"
        );
    }
    for key in ["maskname", "path", "name", "pathname"] {
        assert!(
            object.get(key).is_some_and(Value::is_string),
            "{key} is a string: {event}"
        );
    }
    for key in ["dir", "synthetic"] {
        assert!(
            object.get(key).is_some_and(Value::is_boolean),
            "{key} is a boolean: {event}"
        );
    }
    assert!(
        object
            .get("src_pathname")
            .is_some_and(|v| v.is_null() || v.is_string()),
        "src_pathname is null or a string: {event}"
    );
    assert!(event["mask"].as_u64().unwrap() > 0, "{event}");
}

#[test]
fn json_lines_carry_every_key_with_the_right_values() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let mut watcher = Watcher::spawn([root]);
    watcher.wait_ready();

    let file = root.join("hello.txt");
    std::fs::write(&file, b"hello").unwrap();
    let sub = root.join("sub");
    std::fs::create_dir(&sub).unwrap();
    watcher.expect_mask("IN_CLOSE_WRITE", &file);
    watcher.expect_mask("IN_CREATE|IN_ISDIR", &sub);

    let events = watcher.events();
    for event in &events {
        assert_event_shape(event);
    }
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    let create = events
        .iter()
        .find(|e| maskname(e) == "IN_CREATE" && e["name"] == "hello.txt")
        .expect("an IN_CREATE for hello.txt");
    assert_eq!(create["mask"], 256, "{create}");
    assert_eq!(create["path"], s(root), "{create}");
    assert_eq!(create["name"], "hello.txt", "{create}");
    assert_eq!(create["pathname"], s(&file), "{create}");
    assert_eq!(create["dir"], false, "{create}");
    assert_eq!(create["synthetic"], false, "{create}");
    assert_eq!(create["cookie"], 0, "{create}");
    assert!(create["src_pathname"].is_null(), "{create}");
    assert!(create["wd"].as_i64().unwrap() >= 1, "{create}");

    // The file was opened and written too: those are separate events.
    for mask in ["IN_OPEN", "IN_MODIFY", "IN_CLOSE_WRITE"] {
        assert!(
            events
                .iter()
                .any(|e| maskname(e) == mask && pathname(e) == s(&file)),
            "no {mask} for {file:?}: {:?}",
            watcher.lines
        );
    }

    let mkdir = events
        .iter()
        .find(|e| maskname(e) == "IN_CREATE|IN_ISDIR")
        .expect("an IN_CREATE|IN_ISDIR");
    assert_eq!(mkdir["mask"], 0x4000_0100u64, "{mkdir}");
    assert_eq!(mkdir["dir"], true, "{mkdir}");
    assert_eq!(mkdir["pathname"], s(&sub), "{mkdir}");
    assert_eq!(mkdir["wd"], create["wd"], "same watched directory, same wd");
}

/// Runs a watcher with `-e MASK`, creates, writes and deletes a file, then a last file as a
/// marker (events arrive in order, so once its creation is seen, every earlier event has been
/// too), and returns the masknames seen for the two files.
fn masknames_with_events(mask: &str) -> Vec<(String, String)> {
    let dir = temp_dir();
    let root = dir.path();
    let mut watcher = Watcher::spawn(["-e", mask, s(root)]);
    watcher.wait_ready();
    let file = root.join("data");
    std::fs::write(&file, b"some content").unwrap();
    std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let marker = root.join("marker");
    std::fs::write(&marker, b"").unwrap();
    watcher.expect_mask("IN_CREATE", &marker);
    watcher
        .events()
        .iter()
        .map(|e| {
            (
                maskname(e).to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn events_option_takes_integers_and_lowercase_names_and_filters_the_rest() {
    let _lock = inotify_shared();
    let created = |name: &str| ("IN_CREATE".to_string(), name.to_string());
    let deleted = |name: &str| ("IN_DELETE".to_string(), name.to_string());

    // 256 is IN_CREATE.
    let seen = masknames_with_events("256");
    assert_eq!(
        seen,
        vec![created("data"), created("marker")],
        "with -e 256"
    );

    let seen = masknames_with_events("0x100");
    assert_eq!(
        seen,
        vec![created("data"), created("marker")],
        "with -e 0x100"
    );

    let seen = masknames_with_events("create");
    assert_eq!(
        seen,
        vec![created("data"), created("marker")],
        "with -e create"
    );

    let seen = masknames_with_events("create,delete");
    assert_eq!(
        seen,
        vec![created("data"), deleted("data"), created("marker")],
        "with -e create,delete"
    );

    let seen = masknames_with_events("in_create|in_delete");
    assert_eq!(
        seen,
        vec![created("data"), deleted("data"), created("marker")],
        "with -e in_create|in_delete"
    );

    // Without -e, the same actions yield more: the filter above is real.
    let seen = masknames_with_events("ALL_EVENTS");
    for mask in [
        "IN_OPEN",
        "IN_MODIFY",
        "IN_CLOSE_WRITE",
        "IN_ACCESS",
        "IN_CLOSE_NOWRITE",
        "IN_DELETE",
    ] {
        assert!(
            seen.iter().any(|(m, n)| m == mask && n == "data"),
            "no {mask} in {seen:?}"
        );
    }
}

// ----- 5. moves ----------------------------------------------------------------------------------

#[test]
fn a_rename_is_reported_as_a_paired_move() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let old = root.join("old-name");
    let new = root.join("new-name");
    std::fs::write(&old, b"x").unwrap();
    let mut watcher = Watcher::spawn([root]);
    watcher.wait_ready();

    std::fs::rename(&old, &new).unwrap();
    let (to_index, moved_to) = watcher.expect_mask("IN_MOVED_TO", &new);
    let (from_index, moved_from) = watcher.expect_mask("IN_MOVED_FROM", &old);
    assert!(
        from_index < to_index,
        "IN_MOVED_FROM comes first: {:?}",
        watcher.lines
    );
    let cookie = moved_from["cookie"].as_u64().unwrap();
    assert_ne!(cookie, 0, "{moved_from}");
    assert_eq!(
        moved_to["cookie"], cookie,
        "same cookie: {moved_from} {moved_to}"
    );
    assert_eq!(moved_to["src_pathname"], s(&old), "{moved_to}");
    assert_eq!(moved_to["name"], "new-name", "{moved_to}");
    assert!(moved_from["src_pathname"].is_null(), "{moved_from}");
}

#[test]
fn moved_to_alone_still_carries_src_pathname() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let old = root.join("before");
    let new = root.join("after");
    std::fs::write(&old, b"x").unwrap();
    let mut watcher = Watcher::spawn(["-e", "IN_MOVED_TO", s(root)]);
    watcher.wait_ready();

    std::fs::rename(&old, &new).unwrap();
    let (_, moved_to) = watcher.expect_mask("IN_MOVED_TO", &new);
    assert_eq!(moved_to["src_pathname"], s(&old), "{moved_to}");
    assert_ne!(moved_to["cookie"], 0, "{moved_to}");
    let events = watcher.events();
    assert!(
        events.iter().all(|e| maskname(e) == "IN_MOVED_TO"),
        "only IN_MOVED_TO asked for: {:?}",
        watcher.lines
    );
}

// ----- 6. recursive ------------------------------------------------------------------------------

#[test]
fn recursive_watch_follows_new_and_renamed_directories() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let mut watcher = Watcher::spawn(["-r", s(root)]);
    assert_eq!(watcher.wait_ready(), 1);

    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    let deep = root.join("a/b/c/f");
    std::fs::write(&deep, b"deep").unwrap();
    // Kernel or scan, the creation of a/b/c/f is reported.
    watcher.expect_mask("IN_CREATE", &deep);
    watcher.expect_mask("IN_CLOSE_WRITE", &deep);

    // Rename a -> z, then create right away in the renamed tree.
    std::fs::rename(root.join("a"), root.join("z")).unwrap();
    let new = root.join("z/b/new");
    std::fs::write(&new, b"new").unwrap();
    let (_, moved) = watcher.expect_mask("IN_MOVED_TO|IN_ISDIR", &root.join("z"));
    assert_eq!(moved["src_pathname"], s(&root.join("a")), "{moved}");
    watcher.expect_mask("IN_CREATE", &new);
    watcher.expect_mask("IN_CLOSE_WRITE", &new);
    let stale = format!("{}/", s(&root.join("a")));
    for event in watcher.events() {
        if event["name"] == "new" {
            assert!(
                !pathname(&event).starts_with(&stale),
                "an event of z/b/new under the old path a/: {event}"
            );
            assert_eq!(pathname(&event), s(&new), "{event}");
        }
    }
    // All of a/b/c moved with it: z/b/c is still watched.
    let deeper = root.join("z/b/c/g");
    std::fs::write(&deeper, b"g").unwrap();
    watcher.expect_mask("IN_CREATE", &deeper);
    assert_eq!(watcher.kernel_watches(), 4, "root, z, z/b, z/b/c");
}

// ----- 7. names that are not UTF-8 ---------------------------------------------------------------

#[test]
fn names_that_are_not_utf8_round_trip_through_json() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let name: &[u8] = b"caf\xe9\xff.bin";
    let mut watcher = Watcher::spawn(["-e", "IN_CREATE", s(root)]);
    watcher.wait_ready();
    std::fs::write(root.join(OsStr::from_bytes(name)), b"x").unwrap();

    let index = watcher.expect_line("the IN_CREATE of the non-UTF-8 name", |line| {
        line.contains("\"maskname\":\"IN_CREATE\"")
            && raw_string_field(line, "name")
                .and_then(inotifier_core::json::decode_string_literal)
                .is_some_and(|bytes| bytes == name)
    });
    let line = watcher.lines[index].clone();
    let literal = raw_string_field(&line, "name").expect("a name field");
    assert_eq!(
        inotifier_core::json::decode_string_literal(literal).as_deref(),
        Some(name),
        "{line}"
    );
    assert!(
        literal.contains("\\udce9") && literal.contains("\\udcff"),
        "surrogate escapes: {literal}"
    );
    let pathname = raw_string_field(&line, "pathname").expect("a pathname field");
    let mut expected_pathname = root.as_os_str().as_bytes().to_vec();
    expected_pathname.push(b'/');
    expected_pathname.extend_from_slice(name);
    assert_eq!(
        inotifier_core::json::decode_string_literal(pathname),
        Some(expected_pathname),
        "{line}"
    );

    // A real consumer: Python's json and os.fsencode give back the exact bytes.
    let script = "import sys, json, os\n\
                  line = sys.stdin.readline()\n\
                  print(os.fsencode(json.loads(line)['name']).hex())";
    let mut python = Command::new("python3");
    python.args(["-c", script]);
    let input = format!("{line}\n");
    let run = run_to_exit(&mut python, Some(input.as_bytes()), DEADLINE);
    assert_eq!(
        run.status.code(),
        Some(0),
        "python3 failed on {line}:\n{}",
        run.stderr
    );
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(run.stdout.trim(), hex, "python3 decoded {line}");
}

// ----- 8. text format ----------------------------------------------------------------------------

#[test]
fn text_format_prints_one_line_per_event_with_escaped_bytes() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let mut watcher = Watcher::spawn(["--format", "text", "-e", "IN_CREATE,IN_DELETE", s(root)]);
    watcher.wait_ready();

    std::fs::write(root.join("plain.txt"), b"x").unwrap();
    std::fs::write(root.join(OsStr::from_bytes(b"t\xe9xt")), b"x").unwrap();
    std::fs::remove_file(root.join("plain.txt")).unwrap();
    std::fs::create_dir(root.join("last")).unwrap();

    let last = format!("IN_CREATE|IN_ISDIR {}/last", s(root));
    watcher.expect_line(&last, |line| line == last);
    let expected = vec![
        format!("IN_CREATE {}/plain.txt", s(root)),
        format!("IN_CREATE {}/t\\xe9xt", s(root)),
        format!("IN_DELETE {}/plain.txt", s(root)),
        last,
    ];
    assert_eq!(watcher.lines, expected);
    assert!(parse(&watcher.lines[0]).is_none(), "text, not JSON");
}

// ----- 9. signals --------------------------------------------------------------------------------

#[test]
fn sigterm_and_sigint_stop_with_status_0_and_lose_nothing() {
    let _lock = inotify_shared();
    for (signal, signal_name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let dir = temp_dir();
        let root = dir.path();
        let mut watcher = Watcher::spawn(["-e", "IN_CREATE,IN_CLOSE_WRITE", s(root)]);
        watcher.wait_ready();
        let files: Vec<PathBuf> = (0..50).map(|n| root.join(format!("file{n:02}"))).collect();
        for file in &files {
            std::fs::write(file, b"x").unwrap();
        }
        for file in &files {
            watcher.expect_mask("IN_CLOSE_WRITE", file);
        }
        let seen_before = watcher.lines.clone();

        watcher.signal(signal);
        let status = watcher.finish();
        assert_eq!(
            status.signal(),
            None,
            "{signal_name}: killed by the signal instead of stopping"
        );
        assert_eq!(
            status.code(),
            Some(0),
            "{signal_name}: exit status; stderr:\n{}",
            watcher.stderr()
        );
        assert!(watcher.stdout_closed, "{signal_name}: stdout closed");
        assert!(
            !watcher.unterminated_last_line,
            "{signal_name}: a line was cut short"
        );
        assert!(
            watcher.lines.starts_with(&seen_before),
            "{signal_name}: output changed"
        );
        let events = watcher.events();
        for file in &files {
            for mask in ["IN_CREATE", "IN_CLOSE_WRITE"] {
                let count = events
                    .iter()
                    .filter(|e| maskname(e) == mask && pathname(e) == s(file))
                    .count();
                assert_eq!(count, 1, "{signal_name}: {mask} of {file:?}");
            }
        }
        assert_eq!(
            events.len(),
            2 * files.len(),
            "{signal_name}: {:?}",
            watcher.lines
        );
    }
}

// ----- 10. exclude -------------------------------------------------------------------------------

#[test]
fn excluded_directories_get_no_watch_and_no_events() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("keep")).unwrap();
    std::fs::create_dir_all(root.join("skip/deeper")).unwrap();
    let mut watcher = Watcher::spawn(["-r", "--exclude", "skip", s(root)]);
    let ready = watcher.wait_ready();

    let kernel = watcher.kernel_watches();
    assert_eq!(
        kernel, 2,
        "kernel watches: root and keep/, none for skip/ nor skip/deeper/"
    );
    assert_eq!(ready, kernel, "the ready line counts the kernel watches");

    std::fs::write(root.join("skip/f1"), b"x").unwrap();
    std::fs::write(root.join("skip/deeper/f2"), b"x").unwrap();
    std::fs::create_dir(root.join("skip/deeper/newdir")).unwrap();
    std::fs::create_dir(root.join("keep/skip")).unwrap();
    std::fs::write(root.join("keep/skip/f4"), b"x").unwrap();
    let kept = root.join("keep/f3");
    std::fs::write(&kept, b"x").unwrap();
    watcher.expect_mask("IN_CREATE", &kept);
    watcher.expect_mask("IN_CLOSE_WRITE", &kept);
    for event in watcher.events() {
        let path = pathname(&event);
        assert!(
            !path.contains("/skip"),
            "an excluded entry was reported: {event}"
        );
    }
    assert!(
        watcher.events().iter().any(|e| pathname(e) == s(&kept)),
        "keep/f3 reported"
    );
    assert_eq!(watcher.kernel_watches(), 2, "keep/skip was excluded too");
}

// ----- 11. include -------------------------------------------------------------------------------

#[test]
fn include_reports_only_matching_files() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    let mut watcher = Watcher::spawn(["-r", "--include", "*.txt", s(root)]);
    watcher.wait_ready();

    std::fs::write(root.join("a.bin"), b"x").unwrap();
    std::fs::write(root.join("sub/b.bin"), b"x").unwrap();
    std::fs::write(root.join("sub/b.txt"), b"x").unwrap();
    let txt = root.join("a.txt");
    std::fs::write(&txt, b"x").unwrap();
    watcher.expect_mask("IN_CREATE", &txt);
    watcher.expect_mask("IN_CLOSE_WRITE", &txt);
    watcher.expect_mask("IN_CLOSE_WRITE", &root.join("sub/b.txt"));
    // Files other than *.txt are not reported. (Directories are not subject to --include: the
    // IN_OPEN|IN_ISDIR of the watcher's own listing of root and sub/ is reported.)
    let events = watcher.events();
    for event in events.iter().filter(|e| e["dir"] == false) {
        assert!(pathname(event).ends_with(".txt"), "not included: {event}");
    }
    assert!(
        !watcher.lines.iter().any(|l| l.contains(".bin")),
        "{:?}",
        watcher.lines
    );
}

// ----- 12. permission denied ---------------------------------------------------------------------

#[test]
fn an_unreadable_subdirectory_is_skipped_with_one_warning() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = root.join("open");
    let secret = root.join("secret");
    std::fs::create_dir(&open).unwrap();
    std::fs::create_dir_all(secret.join("inner")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();

    /// Gives the owner its directory back, or the temporary directory could not be removed.
    struct Readable<'a>(&'a Path);
    impl Drop for Readable<'_> {
        fn drop(&mut self) {
            let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o700));
        }
    }
    let mut command = watch_command(["-r", s(root)]);
    // Root reads every directory whatever its mode: the watcher then runs as nobody, to whom
    // root's 0700 secret/ is closed. Any other user cannot switch users, but cannot read a
    // directory of its own with mode 0 either: the same denial, without root.
    let _readable = if inotifier_test_support::privileges::is_root() {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
        command.uid(65534).gid(65534).current_dir("/");
        None
    } else {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        Some(Readable(&secret))
    };
    let mut watcher = Watcher::spawn_command(&mut command, true);
    let ready = watcher.wait_ready();
    assert_eq!(ready, 2, "root and open/ are watched");

    let file = open.join("by-the-test");
    std::fs::write(&file, b"x").unwrap();
    watcher.expect_mask("IN_CREATE", &file);

    let stderr = watcher.stderr();
    let denied: Vec<&str> = stderr
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("permission denied"))
        .collect();
    assert_eq!(
        stderr
            .to_ascii_lowercase()
            .matches("permission denied")
            .count(),
        1,
        "one permission denied warning:\n{stderr}"
    );
    assert!(
        denied[0].contains(s(&secret)),
        "the warning names secret/:\n{stderr}"
    );
    assert!(
        !stderr.contains("inner"),
        "nothing below secret/ is mentioned:\n{stderr}"
    );
}

// ----- 13. several paths -------------------------------------------------------------------------

#[test]
fn a_deleted_root_is_reported_and_the_other_paths_keep_working() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(first.join("inside")).unwrap();
    std::fs::create_dir(&second).unwrap();
    let mut watcher = Watcher::spawn([&first, &second]);
    assert_eq!(watcher.wait_ready(), 2);

    std::fs::remove_dir_all(&first).unwrap();
    let (delete_self, event) = watcher.expect_mask("IN_DELETE_SELF", &first);
    assert_eq!(event["name"], "", "{event}");
    let (ignored, _) = watcher.expect_mask("IN_IGNORED", &first);
    assert!(
        delete_self < ignored,
        "IN_DELETE_SELF then IN_IGNORED: {:?}",
        watcher.lines
    );

    let after = second.join("after");
    std::fs::write(&after, b"x").unwrap();
    watcher.expect_mask("IN_CREATE", &after);
    assert!(watcher.child.try_wait().is_none(), "still running");
    assert_eq!(watcher.kernel_watches(), 1, "only second/ is watched now");
}

#[test]
fn a_root_moved_away_is_reported_and_the_other_paths_keep_working() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    let mut watcher = Watcher::spawn([&first, &second]);
    assert_eq!(watcher.wait_ready(), 2);

    std::fs::rename(&first, &elsewhere).unwrap();
    let (move_self, _) = watcher.expect_mask("IN_MOVE_SELF", &first);
    let (ignored, _) = watcher.expect_mask("IN_IGNORED", &first);
    assert!(
        move_self < ignored,
        "IN_MOVE_SELF then IN_IGNORED: {:?}",
        watcher.lines
    );

    // The moved directory is no longer watched: nothing is reported under its old path.
    std::fs::write(elsewhere.join("ghost"), b"x").unwrap();
    let after = second.join("after");
    std::fs::write(&after, b"x").unwrap();
    watcher.expect_mask("IN_CREATE", &after);
    for event in watcher.events() {
        assert_ne!(
            event["name"], "ghost",
            "an event for a file in the moved-away root: {event}"
        );
    }
    assert!(watcher.child.try_wait().is_none(), "still running");
    assert_eq!(watcher.kernel_watches(), 1, "only second/ is watched now");
}

// ----- 14. symlink loops -------------------------------------------------------------------------

#[test]
fn symlink_loops_are_not_followed() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let sub = root.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink(".", root.join("loop")).unwrap();
    std::os::unix::fs::symlink(".", sub.join("loop")).unwrap();
    std::os::unix::fs::symlink("..", sub.join("up")).unwrap();
    let mut watcher = Watcher::spawn(["-r", s(root)]);
    let ready = watcher.wait_ready();
    assert_eq!(watcher.kernel_watches(), 2, "root and sub/ only");
    assert_eq!(ready, 2, "the ready line counts the real directories");

    let in_sub = sub.join("x");
    let in_root = root.join("y");
    std::fs::write(&in_sub, b"x").unwrap();
    std::fs::write(&in_root, b"y").unwrap();
    watcher.expect_mask("IN_CLOSE_WRITE", &in_sub);
    watcher.expect_mask("IN_CLOSE_WRITE", &in_root);
    // A new link loop inside the watched tree is not followed either.
    std::os::unix::fs::symlink("..", sub.join("again")).unwrap();
    let marker = root.join("marker");
    std::fs::write(&marker, b"").unwrap();
    watcher.expect_mask("IN_CREATE", &marker);
    for event in watcher.events() {
        let path = pathname(&event);
        assert!(
            !path.contains("/loop/") && !path.contains("/up/") && !path.contains("/again/"),
            "an event through a link: {event}"
        );
    }
    assert_eq!(watcher.kernel_watches(), 2);
}

// ----- 15. closed stdout -------------------------------------------------------------------------

#[test]
fn the_watcher_exits_when_its_output_pipe_is_closed() {
    let _lock = inotify_shared();
    let dir = temp_dir();
    let root = dir.path();
    let mut command = watch_command(["-e", "IN_CREATE", s(root)]);
    let mut watcher = Watcher::spawn_command(&mut command, false);
    watcher.wait_ready();

    // Read exactly one line on a thread, then hand the pipe back so the test can close it.
    let (tx, rx) = mpsc::channel();
    let pipe = watcher.take_unread_stdout().expect("stdout not read yet");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        let read = reader.read_line(&mut line);
        let _ = tx.send((read.map(|_| line), reader));
    });
    std::fs::write(root.join("first"), b"x").unwrap();
    let (line, reader) = rx
        .recv_timeout(DEADLINE)
        .expect("one line within the deadline");
    let line = line.expect("a line is read");
    let event = parse(line.trim_end()).unwrap_or_else(|| panic!("a JSON line: {line}"));
    assert_eq!(event["name"], "first");
    drop(reader);

    // The watcher learns that its reader is gone when it next writes, so keep giving it events
    // to write. (More than one: while another test of this process spawns a child, that child
    // briefly holds a copy of our end of the pipe, and a write then still succeeds.)
    let mut n = 0;
    let exited = inotifier_test_support::wait_until(DEADLINE, || {
        std::fs::write(root.join(format!("more{n}")), b"x").unwrap();
        n += 1;
        watcher.child.try_wait().is_some()
    });
    assert!(
        exited,
        "still running {DEADLINE:?} after its stdout was closed ({n} files created since)"
    );
    let status = watcher.child.try_wait().expect("exited");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}; stderr:\n{}",
        watcher.stderr()
    );
}
