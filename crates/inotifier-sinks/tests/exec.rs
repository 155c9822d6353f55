//! The exec processor against real programs: `probe.py` (records its argv, environment and
//! working directory), `touch`, and `/bin/sh` given the file name only as a positional argument.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event, fixture, moved, options, python, s, temp_dir};
use inotifier_sinks::{BuildError, Processor, build};
use inotifier_test_support::wait_until;
use serde_json::json;

fn exec(value: serde_json::Value) -> Arc<dyn Processor> {
    build("exec", &options(value), Path::new("/")).unwrap_or_else(|e| panic!("{e}"))
}

fn exec_error(value: serde_json::Value) -> BuildError {
    match build("exec", &options(value), Path::new("/")) {
        Ok(_) => panic!("built"),
        Err(error) => error,
    }
}

/// The probe's `argv` output: its arguments, byte for byte.
fn recorded_args(out: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let mut args: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    assert_eq!(args.pop().as_deref(), Some(&b""[..]), "NUL-terminated");
    args
}

fn recorded_env(out: &Path) -> HashMap<Vec<u8>, Vec<u8>> {
    let bytes = std::fs::read(out).unwrap();
    bytes
        .split(|&b| b == 0)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let at = item.iter().position(|&b| b == b'=').unwrap();
            (item[..at].to_vec(), item[at + 1..].to_vec())
        })
        .collect()
}

fn listing(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect()
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

const HOSTILE: &[u8] =
    b"my file 'single' \"double\" ;rm -rf x; $(touch pwned) `touch pwned2` && touch pwned3 | > out";

#[test]
fn a_hostile_name_is_one_argument_and_runs_nothing_else() {
    let dir = temp_dir();
    let work = dir.path().join("watched");
    std::fs::create_dir_all(work.join("x")).unwrap();
    std::fs::write(work.join("x/keep"), b"still here").unwrap();
    let name = std::ffi::OsStr::from_bytes(HOSTILE);
    std::fs::write(work.join(name), b"data").unwrap();
    let before = listing(&work);
    let event = event(&work, HOSTILE);

    // A program that records its arguments.
    let out = dir.path().join("argv.out");
    exec(json!({"argv": [python(), s(&fixture("probe.py")), "argv", s(&out), "{pathname}", "--name={name}"]}))
        .process(&event)
        .unwrap();
    let mut expected_pathname = work.as_os_str().as_bytes().to_vec();
    expected_pathname.push(b'/');
    expected_pathname.extend_from_slice(HOSTILE);
    assert_eq!(
        recorded_args(&out),
        [expected_pathname, [&b"--name="[..], HOSTILE].concat()],
        "each placeholder argument arrives as exactly one argument"
    );

    // A program that acts on its argument, run in the watched directory, and a shell given the
    // name as a positional parameter: each creates exactly one file and nothing else runs.
    exec(json!({"argv": ["touch", "--", "{pathname}.done"], "cwd": s(&work)}))
        .process(&event)
        .unwrap();
    exec(json!({
        "argv": ["/bin/sh", "-c", "cp -- \"$1\" \"$1.copy\"", "sh", "{pathname}"],
        "cwd": s(&work),
    }))
    .process(&event)
    .unwrap();

    let mut expected = before.clone();
    for suffix in [".done", ".copy"] {
        let mut created = HOSTILE.to_vec();
        created.extend_from_slice(suffix.as_bytes());
        expected.insert(OsString::from_vec(created));
    }
    assert_eq!(
        listing(&work),
        expected,
        "only the two expected files were created"
    );
    assert_eq!(std::fs::read(work.join("x/keep")).unwrap(), b"still here");
    assert_eq!(
        listing(dir.path()),
        ["argv.out", "watched"]
            .into_iter()
            .map(OsString::from)
            .collect(),
        "nothing was created beside the watched directory either"
    );
}

#[test]
fn a_name_that_is_not_utf8_reaches_the_program_byte_for_byte() {
    let dir = temp_dir();
    let name: &[u8] = b"caf\xe9 \xff\xfe\n\ttab.txt";
    let out = dir.path().join("argv.out");
    let event = event(dir.path(), name);
    exec(json!({"argv": [python(), s(&fixture("probe.py")), "argv", s(&out), "{name}", "--file={pathname}", "{{literal}}"]}))
        .process(&event)
        .unwrap();
    let mut pathname = b"--file=".to_vec();
    pathname.extend_from_slice(dir.path().as_os_str().as_bytes());
    pathname.push(b'/');
    pathname.extend_from_slice(name);
    assert_eq!(
        recorded_args(&out),
        [name.to_vec(), pathname, b"{literal}".to_vec()]
    );
}

#[test]
fn every_placeholder_and_the_event_variables_reach_the_program() {
    let dir = temp_dir();
    let out = dir.path().join("argv.out");
    let src = dir.path().join("old name");
    let event = moved(dir.path(), b"new \xff", &src);
    exec(
        json!({"argv": [python(), s(&fixture("probe.py")), "argv", s(&out),
        "{path}", "{name}", "{maskname}", "{src_pathname}", "{id}", "{mask}", "{origin}"]}),
    )
    .process(&event)
    .unwrap();
    let args = recorded_args(&out);
    let strings: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    assert_eq!(
        strings,
        [
            dir.path().as_os_str().as_bytes(),
            b"new \xff",
            b"IN_MOVED_TO",
            src.as_os_str().as_bytes(),
            b"42",
            b"128",
            b"kernel"
        ]
    );

    let env_out = dir.path().join("env.out");
    exec(json!({
        "argv": [python(), s(&fixture("probe.py")), "env", s(&env_out)],
        "env": {"GREETING": "hello world", "PORT": 8080, "INOTIFIER_EVENT_ID": "spoofed"},
    }))
    .process(&event)
    .unwrap();
    let env = recorded_env(&env_out);
    let var = |name: &str| {
        env.get(name.as_bytes())
            .unwrap_or_else(|| panic!("{name} is not set"))
            .as_slice()
    };
    assert_eq!(var("GREETING"), b"hello world");
    assert_eq!(var("PORT"), b"8080");
    assert_eq!(var("INOTIFIER_EVENT_ID"), b"42", "the event's id wins");
    assert_eq!(var("INOTIFIER_MASKNAME"), b"IN_MOVED_TO");
    assert_eq!(var("INOTIFIER_MASK"), b"128");
    assert_eq!(var("INOTIFIER_NAME"), b"new \xff");
    assert_eq!(var("INOTIFIER_PATH"), dir.path().as_os_str().as_bytes());
    assert_eq!(
        var("INOTIFIER_PATHNAME"),
        [dir.path().as_os_str().as_bytes(), b"/new \xff"].concat()
    );
    assert_eq!(var("INOTIFIER_SRC_PATHNAME"), src.as_os_str().as_bytes());
    assert_eq!(var("INOTIFIER_COOKIE"), b"7");
    assert_eq!(var("INOTIFIER_DIR"), b"0");
    assert_eq!(var("INOTIFIER_ORIGIN"), b"kernel");
    assert_eq!(var("INOTIFIER_TIME"), b"2025-11-25T13:37:05.123Z");
    assert!(
        env.contains_key(&b"PATH"[..]),
        "the daemon's environment is kept"
    );

    exec(json!({
        "argv": [python(), s(&fixture("probe.py")), "env", s(&env_out)],
        "env": {"ONLY": "this"},
        "clear_env": true,
    }))
    .process(&event)
    .unwrap();
    let env = recorded_env(&env_out);
    let mut names: Vec<String> = env
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| !k.starts_with("INOTIFIER_"))
        .collect();
    names.sort();
    // Python may add LC_CTYPE when it coerces the C locale.
    names.retain(|name| name != "LC_CTYPE");
    assert_eq!(names, ["ONLY"], "clear_env leaves only env and the event");
    assert!(env.contains_key(&b"INOTIFIER_PATHNAME"[..]));
}

#[test]
fn the_working_directory_is_the_configured_one_relative_to_the_base() {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let out = dir.path().join("cwd.out");
    let processor = build(
        "exec",
        &options(
            json!({"argv": [python(), s(&fixture("probe.py")), "cwd", s(&out)], "cwd": "work"}),
        ),
        dir.path(),
    )
    .unwrap();
    processor.process(&event(dir.path(), b"a")).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        dir.path().join("work").as_os_str().as_bytes()
    );
}

#[test]
fn a_non_zero_exit_or_a_signal_is_a_retryable_failure_naming_program_status_and_file() {
    let dir = temp_dir();
    let event = event(dir.path(), b"report.pdf");
    let error = exec(json!({"argv": [python(), s(&fixture("probe.py")), "exit", "3"]}))
        .process(&event)
        .unwrap_err();
    assert!(error.retryable, "{error:?}");
    for part in [python(), "exited with status 3", "report.pdf"] {
        assert!(error.message.contains(part), "{part:?} in {error}");
    }
    let error = exec(json!({"argv": [python(), s(&fixture("probe.py")), "signal"]}))
        .process(&event)
        .unwrap_err();
    assert!(error.retryable, "{error:?}");
    assert!(error.message.contains("killed by SIGTERM"), "{error}");
    assert!(exec(json!({"argv": ["true"]})).process(&event).is_ok());
}

#[test]
fn a_timeout_kills_the_whole_process_group_and_is_a_retryable_failure() {
    let dir = temp_dir();
    let pidfile = dir.path().join("pid");
    // The shell records its pid and a background child's, then waits: the name reaches it as
    // $1 only.
    let processor = exec(json!({
        "argv": ["/bin/sh", "-c", "sleep 30 & echo $! > \"$1.child\"; echo $$ > \"$1\"; wait", "sh", "{pathname}"],
        "timeout": "500ms",
    }));
    let started = Instant::now();
    let error = processor.process(&event(dir.path(), b"pid")).unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.retryable, "{error:?}");
    assert!(error.message.contains("timed out after 500ms"), "{error}");
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let grandchild: u32 = std::fs::read_to_string(dir.path().join("pid.child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the program was killed and reaped: no zombie"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !running(grandchild)),
        "the program's background child was killed with its group"
    );
}

#[test]
fn a_missing_program_is_a_build_error_then_a_permanent_failure() {
    let error = exec_error(json!({"argv": ["no-such-program-inotifier", "{pathname}"]}));
    assert_eq!(error.option(), Some("argv"));
    assert!(error.to_string().contains("not found in PATH"), "{error}");

    let dir = temp_dir();
    let script = dir.path().join("handler");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = exec_error(json!({"argv": [s(&script)]}));
    assert!(error.to_string().contains("not executable"), "{error}");

    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let processor = exec(json!({"argv": [s(&script), "{pathname}"]}));
    let event = event(dir.path(), b"a");
    processor.process(&event).unwrap();
    std::fs::remove_file(&script).unwrap();
    let error = processor.process(&event).unwrap_err();
    assert!(
        !error.retryable,
        "a missing program will not come back: {error:?}"
    );
    assert!(error.message.contains("cannot start"), "{error}");
}

#[test]
fn max_concurrent_bounds_the_programs_running_at_once() {
    let dir = temp_dir();
    let processor = exec(json!({
        "argv": [python(), s(&fixture("probe.py")), "concurrency", s(dir.path()), "0.3"],
        "max_concurrent": 2,
    }));
    std::thread::scope(|scope| {
        for thread in 0..6u8 {
            let processor = processor.clone();
            let dir = dir.path();
            scope.spawn(move || {
                for i in 0..2u8 {
                    processor
                        .process(&event(dir, &[b'a' + thread, b'0' + i]))
                        .unwrap();
                }
            });
        }
    });
    let state = std::fs::read_to_string(dir.path().join("state")).unwrap();
    assert_eq!(
        state, "0 2",
        "none left running, and at most (and at some point exactly) 2 ran at once"
    );
}

#[test]
fn options_are_checked_with_messages_that_say_what_is_valid() {
    let error = exec_error(json!({"argvv": ["true"]}));
    assert_eq!(
        error.to_string(),
        "unknown option `argvv` for processor exec: expected one of argv, cwd, env, clear_env, \
         timeout, max_concurrent"
    );
    let error = exec_error(json!({"timeout": "5s"}));
    assert_eq!(
        error.to_string(),
        "missing option `argv` for processor exec"
    );
    let error = exec_error(json!({"argv": ["true", "{pathnme}"]}));
    assert!(
        error.to_string().contains(
            "unknown placeholder `{pathnme}` in \"{pathnme}\": expected one of {pathname}"
        ),
        "{error}"
    );
    let error = exec_error(json!({"argv": ["{name}"]}));
    assert!(
        error.to_string().contains("may not hold placeholders"),
        "{error}"
    );
    let error = exec_error(json!({"argv": []}));
    assert!(error.to_string().contains("the list is empty"), "{error}");
    let error = exec_error(json!({"argv": "true {pathname}"}));
    assert_eq!(error.option(), Some("argv"), "{error}");
    let error = exec_error(json!({"argv": ["true"], "timeout": "soon"}));
    assert_eq!(error.option(), Some("timeout"), "{error}");
    let error = exec_error(json!({"argv": ["true"], "max_concurrent": 0}));
    assert_eq!(error.option(), Some("max_concurrent"), "{error}");
    let error = exec_error(json!({"argv": ["true"], "cwd": "/no/such/dir"}));
    assert_eq!(error.option(), Some("cwd"), "{error}");
    let error = exec_error(json!({"argv": ["true"], "env": {"A=B": "c"}}));
    assert_eq!(error.option(), Some("env"), "{error}");
    assert!(
        inotifier_sinks::validate(
            "exec",
            &options(json!({"argv": ["true"], "timeout": 1.5})),
            Path::new("/")
        )
        .is_ok()
    );
}
