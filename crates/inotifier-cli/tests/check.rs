//! `inotifier check -c FILE` run as a real process on config files written to temporary
//! directories.

mod common;

use std::path::{Path, PathBuf};

use common::{Finished, run_inotifier};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("inotifier-check-")
            .tempdir()
            .expect("temporary directory");
        std::fs::create_dir(dir.path().join("uploads")).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` in the directory and runs `inotifier check -c` on it.
    fn check(&self, name: &str, text: &str) -> (PathBuf, Finished) {
        let file = self.path(name);
        std::fs::write(&file, text).unwrap();
        let finished = run_inotifier(&["check", "-c", s(&file)]);
        (file, finished)
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

#[track_caller]
fn assert_invalid(finished: &Finished) {
    assert_eq!(
        finished.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        finished.stdout,
        finished.stderr
    );
    assert_eq!(finished.stdout, "", "nothing on stdout when invalid");
}

/// The stderr line starting with `file:line:column: `; panics with stderr if there is none.
#[track_caller]
fn line_at<'a>(finished: &'a Finished, file: &Path, line: usize, column: usize) -> &'a str {
    let prefix = format!("{}:{line}:{column}: ", file.display());
    finished
        .stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| {
            panic!(
                "no line starting {prefix:?} in stderr:\n{}",
                finished.stderr
            )
        })
}

#[test]
fn a_valid_file_prints_its_watches() {
    let setup = Setup::new();
    let (file, finished) = setup.check(
        "inotifier.toml",
        "[daemon]\n\
         log_level = \"debug\"\n\
         \n\
         [[watch]]\n\
         path = \"uploads\"\n\
         events = [\"IN_CLOSE_WRITE\", \"IN_MOVED_TO\"]\n\
         processor = \"exec\"\n\
         recursive = true\n\
         [watch.options]\n\
         argv = [\"true\", \"{pathname}\"]\n\
         \n\
         [[watch]]\n\
         path = \"/tmp\"\n\
         events = 768\n\
         processor = \"log\"\n",
    );
    assert_eq!(
        finished.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        finished.stdout,
        finished.stderr
    );
    assert_eq!(
        finished.stdout,
        format!(
            "{}: ok, 2 watches\n\
             {}  IN_CLOSE_WRITE|IN_MOVED_TO  exec\n\
             /tmp  IN_CREATE|IN_DELETE  log\n",
            file.display(),
            setup.path("uploads").display()
        )
    );
    assert_eq!(finished.stderr, "");
}

#[test]
fn the_annotated_example_checks() {
    let setup = Setup::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/inotifier.toml");
    std::fs::create_dir(setup.path("demo-folder")).unwrap();
    let (file, finished) =
        setup.check("inotifier.toml", &std::fs::read_to_string(example).unwrap());
    assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
    assert!(
        finished
            .stdout
            .starts_with(&format!("{}: ok, 2 watches\n", file.display())),
        "{}",
        finished.stdout
    );
}

#[test]
fn the_annotated_example_checks_where_it_is() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/inotifier.toml");
    let finished = run_inotifier(&["check", "-c", example]);
    assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
    assert!(
        finished
            .stdout
            .contains("examples/demo-folder  IN_CLOSE_WRITE|IN_MOVED_TO  exec\n"),
        "{}",
        finished.stdout
    );
}

#[test]
fn an_unknown_key_is_named_with_its_place() {
    let setup = Setup::new();
    let (file, finished) = setup.check(
        "typo.toml",
        "[[watch]]\n\
         path = \"uploads\"\n\
         events = \"IN_CREATE\"\n\
         processor = \"log\"\n\
         recursve = true\n",
    );
    assert_invalid(&finished);
    let line = line_at(&finished, &file, 5, 1);
    assert!(
        line.contains("unknown key `recursve` in [[watch]] #1"),
        "{line}"
    );
    assert!(line.contains("did you mean `recursive`?"), "{line}");
    assert!(
        finished
            .stderr
            .ends_with(&format!("{}: invalid, 1 error\n", file.display())),
        "{}",
        finished.stderr
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let setup = Setup::new();
    let (file, finished) = setup.check(
        "many.toml",
        "[daemon]\n\
         log_level = \"loud\"\n\
         workers = 0\n\
         \n\
         [[watch]]\n\
         path = \"missing-folder\"\n\
         events = \"IN_CREATE|IN_CRATE\"\n\
         processor = \"email\"\n\
         exclude = [\"[oops\"]\n\
         [watch.ready]\n\
         settle = \"soon\"\n",
    );
    assert_invalid(&finished);
    let expectations: [(usize, usize, &[&str]); 7] = [
        (
            2,
            13,
            &["log_level", "\"loud\"", "error, warn, info, debug or trace"],
        ),
        (3, 11, &["`workers`", "at least 1"]),
        (6, 8, &["missing-folder", "does not exist"]),
        (7, 21, &["`events`", "\"IN_CRATE\"", "IN_CLOSE_WRITE"]),
        (8, 13, &["processor `email`", "log, jsonl, exec, webhook"]),
        (9, 12, &["`exclude`", "\"[oops\""]),
        (11, 10, &["`settle`", "\"soon\"", "\"200ms\""]),
    ];
    for (line, column, words) in expectations {
        let text = line_at(&finished, &file, line, column);
        for word in words {
            assert!(text.contains(word), "{text:?} lacks {word:?}");
        }
    }
    let lines: Vec<_> = finished.stderr.lines().collect();
    assert_eq!(lines.len(), 8, "{}", finished.stderr);
    assert_eq!(lines[7], format!("{}: invalid, 7 errors", file.display()));
}

#[test]
fn a_syntax_error_is_located() {
    let setup = Setup::new();
    let (file, finished) = setup.check("broken.toml", "[[watch]\npath = \"uploads\"\n");
    assert_invalid(&finished);
    let line = line_at(&finished, &file, 1, 9);
    assert!(line.contains("invalid TOML"), "{line}");
}

#[test]
fn a_missing_key_points_at_its_table() {
    let setup = Setup::new();
    let (file, finished) = setup.check(
        "missing.toml",
        "# comment\n\
         [[watch]]\n\
         path = \"uploads\"\n\
         processor = \"log\"\n",
    );
    assert_invalid(&finished);
    let line = line_at(&finished, &file, 2, 1);
    assert!(
        line.contains("[[watch]] #1 lacks the required key `events`"),
        "{line}"
    );
}

#[test]
fn a_file_that_cannot_be_read_is_named() {
    let setup = Setup::new();
    let missing = setup.path("nowhere.toml");
    let finished = run_inotifier(&["check", "-c", s(&missing)]);
    assert_invalid(&finished);
    assert!(
        finished.stderr.starts_with(&format!(
            "{}: cannot read the config file: ",
            missing.display()
        )),
        "{}",
        finished.stderr
    );
}

#[test]
fn usage_errors_and_help() {
    let finished = run_inotifier(&["check"]);
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    assert!(finished.stderr.contains("--config"), "{}", finished.stderr);

    let help = run_inotifier(&["check", "--help"]);
    assert_eq!(help.status.code(), Some(0), "{}", help.stderr);
    for words in [
        "-c, --config <FILE>",
        "FILE:LINE:COLUMN",
        "ok, N watches",
        "Exit status",
        "relative",
    ] {
        assert!(
            help.stdout.to_lowercase().contains(&words.to_lowercase()),
            "check --help lacks {words:?}:\n{}",
            help.stdout
        );
    }
    let top = run_inotifier(&["--help"]);
    assert!(
        top.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("check ")),
        "inotifier --help lists the check command:\n{}",
        top.stdout
    );
}
