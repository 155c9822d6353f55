//! The config file reader: values and defaults of valid files, and for every kind of mistake,
//! the exact line and column reported and what the message says.

use std::time::Duration;

use inotifier_core::ready::ReadyOptions;
use inotifier_core::{Glob, Mask};
use inotifier_sinks::RetryPolicy;
use serde_json::json;

use super::*;
use crate::config::{DaemonSettings, FirstStart, JournalSettings, PathProblem};

const FILE: &str = "/etc/inotifier/inotifier.toml";

/// Stands in for the processors' own validation: four kinds; `exec` needs `argv`.
fn validate(kind: &str, options: &Map<String, Value>, _dir: &Path) -> Result<(), String> {
    match kind {
        "log" | "jsonl" | "webhook" => Ok(()),
        "exec" => match options.get("argv") {
            None => {
                Err("exec needs the option argv: a list such as [\"touch\", \"{pathname}\"]".into())
            }
            Some(Value::Array(_)) => Ok(()),
            Some(_) => Err("argv must be an array of strings".into()),
        },
        other => Err(format!(
            "unknown processor {other:?}: valid processors are log, jsonl, exec, webhook"
        )),
    }
}

/// The document made of `lines`, so that line numbers in tests are indexes + 1.
fn doc(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn parse_lines(lines: &[&str]) -> Result<Config, ConfigError> {
    parse(&doc(lines), Path::new(FILE), &validate)
}

fn config(lines: &[&str]) -> Config {
    parse_lines(lines).unwrap_or_else(|error| panic!("{error}"))
}

fn problems(lines: &[&str]) -> Vec<Problem> {
    match parse_lines(lines) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => error.problems().to_vec(),
    }
}

/// The only problem of `lines`, checked to be at `line:column` and to mention every one of
/// `words`; returned for further checks.
#[track_caller]
fn expect_problem(lines: &[&str], line: usize, column: usize, words: &[&str]) -> Problem {
    let problems = problems(lines);
    assert_eq!(problems.len(), 1, "one problem expected: {problems:#?}");
    let problem = problems.into_iter().next().unwrap();
    check(&problem, line, column, words);
    problem
}

#[track_caller]
fn check(problem: &Problem, line: usize, column: usize, words: &[&str]) {
    let text = problem.to_string();
    assert_eq!(
        (problem.line, problem.column),
        (line, column),
        "wrong place: {text}"
    );
    assert!(
        text.starts_with(&format!("{FILE}:{line}:{column}: ")),
        "not FILE:LINE:COL: {text}"
    );
    for word in words {
        assert!(text.contains(word), "{text:?} lacks {word:?}");
    }
}

const WATCH: [&str; 4] = [
    "[[watch]]",
    "path = \"/srv/uploads\"",
    "events = \"IN_CLOSE_WRITE\"",
    "processor = \"log\"",
];

/// `WATCH` followed by `more` lines.
fn watch_with(more: &[&'static str]) -> Vec<&'static str> {
    WATCH.iter().chain(more).copied().collect()
}

/// `first` lines followed by `WATCH`: for problems in `[daemon]`, with their line numbers.
fn then_watch(first: &[&'static str]) -> Vec<&'static str> {
    first.iter().chain(&WATCH).copied().collect()
}

// ----- valid files -------------------------------------------------------------------------

#[test]
fn a_minimal_file_gets_every_default() {
    let config = config(&WATCH);
    assert_eq!(config.source.as_deref(), Some(Path::new(FILE)));
    let daemon = &config.daemon;
    assert_eq!(daemon.pid_file, Path::new("/etc/inotifier/inotifier.pid"));
    assert_eq!(daemon.stdout, None);
    assert_eq!(daemon.stderr, None);
    assert_eq!(daemon.log_level, tracing::Level::INFO);
    assert_eq!(daemon.drain_timeout, Duration::from_secs(10));
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(daemon.workers, (2 * cpus).max(2));
    assert_eq!(daemon.queue_capacity, 1024);
    assert_eq!(
        daemon,
        &DaemonSettings::defaults(Path::new("/etc/inotifier"))
    );

    assert_eq!(config.watches.len(), 1);
    let watch = &config.watches[0];
    assert_eq!(watch.path, Path::new("/srv/uploads"));
    assert_eq!(watch.events, Mask::IN_CLOSE_WRITE);
    assert_eq!(watch.processor.kind, "log");
    assert!(watch.processor.options.is_empty());
    assert!(!watch.recursive);
    assert!(!watch.auto_add);
    assert!(watch.filters.include.is_empty() && watch.filters.exclude.is_empty());
    assert_eq!(watch.ready, ReadyOptions::default());
    assert_eq!(watch.retry, RetryPolicy::default());
}

#[test]
fn every_key_is_read() {
    let config = config(&[
        "[daemon]",
        "pid_file = \"/run/inotifier.pid\"",
        "stdout = \"/var/log/inotifier/out.log\"",
        "stderr = \"/var/log/inotifier/err.log\"",
        "log_level = \"DEBUG\"",
        "drain_timeout = \"1.5s\"",
        "workers = 3",
        "queue_capacity = 16",
        "",
        "[[watch]]",
        "path = \"/srv/uploads\"",
        "events = [\"IN_CLOSE_WRITE\", \"IN_MOVED_TO\"]",
        "processor = \"exec\"",
        "recursive = true",
        "auto_add = false",
        "exclude = [\"*.tmp\", \".git\"]",
        "include = [\"*.jpg\"]",
        "[watch.options]",
        "argv = [\"convert\", \"{pathname}\", \"{pathname}.png\"]",
        "[watch.ready]",
        "settle = \"1s\"",
        "temp_patterns = [\"*.part\"]",
        "[watch.retry]",
        "attempts = 3",
        "initial = \"50ms\"",
        "max = \"2m\"",
        "multiplier = 3",
    ]);
    let daemon = &config.daemon;
    assert_eq!(daemon.pid_file, Path::new("/run/inotifier.pid"));
    assert_eq!(
        daemon.stdout.as_deref(),
        Some(Path::new("/var/log/inotifier/out.log"))
    );
    assert_eq!(
        daemon.stderr.as_deref(),
        Some(Path::new("/var/log/inotifier/err.log"))
    );
    assert_eq!(daemon.log_level, tracing::Level::DEBUG);
    assert_eq!(daemon.drain_timeout, Duration::from_millis(1500));
    assert_eq!((daemon.workers, daemon.queue_capacity), (3, 16));

    let watch = &config.watches[0];
    assert_eq!(watch.events, Mask::IN_CLOSE_WRITE | Mask::IN_MOVED_TO);
    assert_eq!(watch.processor.kind, "exec");
    assert_eq!(
        Value::Object(watch.processor.options.clone()),
        json!({"argv": ["convert", "{pathname}", "{pathname}.png"]})
    );
    assert!(watch.recursive);
    assert!(!watch.auto_add);
    let globs = |patterns: &[&str]| -> Vec<Glob> {
        patterns.iter().map(|p| Glob::new(p).unwrap()).collect()
    };
    assert_eq!(watch.filters.exclude, globs(&["*.tmp", ".git"]));
    assert_eq!(watch.filters.include, globs(&["*.jpg"]));
    assert_eq!(
        watch.ready,
        ReadyOptions {
            settle: Duration::from_secs(1),
            temp_patterns: globs(&["*.part"]),
        }
    );
    assert_eq!(
        watch.retry,
        RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(50),
            max: Duration::from_secs(120),
            multiplier: 3.0,
        }
    );
}

#[test]
fn auto_add_follows_recursive_unless_given() {
    let recursive = config(&watch_with(&["recursive = true"]));
    assert!(recursive.watches[0].auto_add);
    let only_auto_add = config(&watch_with(&["auto_add = true"]));
    assert!(!only_auto_add.watches[0].recursive);
    assert!(only_auto_add.watches[0].auto_add);
}

#[test]
fn inline_tables_and_dotted_keys_work_like_sections() {
    let config = config(&watch_with(&[
        "ready = { settle = \"1s\" }",
        "retry.attempts = 1",
    ]));
    assert_eq!(config.watches[0].ready.settle, Duration::from_secs(1));
    assert_eq!(config.watches[0].retry.attempts, 1);
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let config = config(&[
        "[daemon]",
        "pid_file = \"run/inotifier.pid\"",
        "stdout = \"../log/out.log\"",
        "stderr = \"./log//err.log\"",
        "[[watch]]",
        "path = \"uploads/\"",
        "events = \"create\"",
        "processor = \"log\"",
    ]);
    assert_eq!(
        config.daemon.pid_file,
        Path::new("/etc/inotifier/run/inotifier.pid")
    );
    assert_eq!(
        config.daemon.stdout.as_deref(),
        Some(Path::new("/etc/inotifier/../log/out.log"))
    );
    assert_eq!(
        config.daemon.stderr.as_deref(),
        Some(Path::new("/etc/inotifier/log/err.log"))
    );
    assert_eq!(config.watches[0].path, Path::new("/etc/inotifier/uploads"));
}

#[test]
fn a_relative_config_path_resolves_against_the_current_directory() {
    let config = parse(&doc(&WATCH), Path::new("conf/inotifier.toml"), &validate).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        config.source.as_deref(),
        Some(cwd.join("conf/inotifier.toml").as_path())
    );
    assert_eq!(config.daemon.pid_file, cwd.join("conf/inotifier.pid"));
}

#[test]
fn events_take_every_mask_form() {
    let expected = Mask::IN_CREATE | Mask::IN_DELETE;
    for events in [
        "events = \"IN_CREATE|IN_DELETE\"",
        "events = \"create, delete\"",
        "events = [\"IN_CREATE\", \"IN_DELETE\"]",
        "events = [\"create\", 512]",
        "events = 768",
        "events = 0x300",
        "events = \"0x300\"",
        "events = \"768\"",
    ] {
        let config = config(&[
            "[[watch]]",
            "path = \"/srv\"",
            events,
            "processor = \"log\"",
        ]);
        assert_eq!(config.watches[0].events, expected, "{events}");
    }
    let all = config(&[
        "[[watch]]",
        "path = \"/srv\"",
        "events = \"ALL_EVENTS\"",
        "processor = \"log\"",
    ]);
    assert_eq!(all.watches[0].events, Mask::ALL_EVENTS);
}

#[test]
fn options_become_a_json_map() {
    let config = config(&watch_with(&[
        "[watch.options]",
        "url = \"http://127.0.0.1:8000/hook\"",
        "timeout = 2.5",
        "retries = 3",
        "verify = false",
        "since = 2024-01-02T03:04:05Z",
        "argv = [\"a\", 1, [true]]",
        "headers = { \"X-Token\" = \"t\", nested = { n = -1 } }",
    ]));
    assert_eq!(
        Value::Object(config.watches[0].processor.options.clone()),
        json!({
            "url": "http://127.0.0.1:8000/hook",
            "timeout": 2.5,
            "retries": 3,
            "verify": false,
            "since": "2024-01-02T03:04:05Z",
            "argv": ["a", 1, [true]],
            "headers": {"X-Token": "t", "nested": {"n": -1}},
        })
    );
}

#[test]
fn the_validator_gets_kind_options_and_the_config_directory() {
    let seen = std::cell::RefCell::new(Vec::new());
    let record = |kind: &str, options: &Map<String, Value>, dir: &Path| {
        seen.borrow_mut()
            .push((kind.to_string(), options.clone(), dir.to_path_buf()));
        Ok(())
    };
    let text = doc(&watch_with(&["options = { a = 1 }"]));
    parse(&text, Path::new(FILE), &record).unwrap();
    let seen = seen.into_inner();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "log");
    assert_eq!(Value::Object(seen[0].1.clone()), json!({"a": 1}));
    assert_eq!(seen[0].2, Path::new("/etc/inotifier"));
}

// ----- problems ----------------------------------------------------------------------------

#[test]
fn toml_syntax_errors_are_located() {
    expect_problem(
        &["[daemon", "workers = 2"],
        1,
        8,
        &["invalid TOML", "expected `]`"],
    );
    expect_problem(
        &["[daemon]", "stdout = \"log/out.log"],
        2,
        22,
        &["invalid TOML", "string"],
    );
    expect_problem(
        &["[daemon]", "workers = 2", "workers = 3"],
        3,
        1,
        &["duplicate key `workers`", "only once"],
    );
}

#[test]
fn unknown_keys_name_the_key_the_table_and_the_valid_keys() {
    expect_problem(
        &watch_with(&["[deamon]"]),
        5,
        2,
        &[
            "unknown key `deamon`",
            "the top level",
            "did you mean `daemon`?",
            "daemon, journal, metrics, watch",
        ],
    );
    expect_problem(
        &then_watch(&["[daemon]", "  pidfile = \"x.pid\""]),
        2,
        3,
        &[
            "unknown key `pidfile` in [daemon]",
            "did you mean `pid_file`?",
            "pid_file, stdout, stderr, log_level, drain_timeout, workers, queue_capacity",
        ],
    );
    // A misspelt required key is also a missing one.
    let problems = problems(&watch_with(&[
        "[[watch]]",
        "path = \"/a\"",
        "event = 1",
        "processor = \"log\"",
    ]));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    check(
        &problems[0],
        5,
        1,
        &["[[watch]] #2 lacks the required key `events`"],
    );
    check(
        &problems[1],
        7,
        1,
        &[
            "unknown key `event` in [[watch]] #2",
            "did you mean `events`?",
            "path, events, processor, recursive, auto_add, backend, poll_interval, exclude, include, options, ready, retry",
        ],
    );
    expect_problem(
        &watch_with(&["[watch.ready]", "setle = \"1s\""]),
        6,
        1,
        &[
            "`setle` in [watch.ready] of [[watch]] #1",
            "settle, temp_patterns",
        ],
    );
    expect_problem(
        &watch_with(&["retry = { attempts = 2, backoff = 3 }"]),
        5,
        25,
        &[
            "`backoff` in [watch.retry] of [[watch]] #1",
            "attempts, initial, max, multiplier",
        ],
    );
    let unrelated = expect_problem(&watch_with(&["colour = 1"]), 5, 1, &["`colour`"]);
    assert!(
        !unrelated.to_string().contains("did you mean"),
        "{unrelated}"
    );
}

#[test]
fn wrong_types_say_what_is_expected() {
    expect_problem(
        &then_watch(&["[daemon]", "workers = \"4\""]),
        2,
        11,
        &[
            "`workers` in [daemon] must be a positive integer, not a string",
            "workers = 4",
        ],
    );
    expect_problem(
        &watch_with(&["recursive = \"yes\""]),
        5,
        13,
        &[
            "`recursive` in [[watch]] #1 must be a boolean, not a string",
            "recursive = true",
        ],
    );
    expect_problem(
        &watch_with(&["exclude = \"*.tmp\""]),
        5,
        11,
        &[
            "`exclude`",
            "must be an array of glob patterns (strings), not a string",
        ],
    );
    expect_problem(
        &watch_with(&["include = [\"*.jpg\", 7]"]),
        5,
        21,
        &["`include`", "not an array holding an integer"],
    );
    expect_problem(
        &watch_with(&["options = [\"x\"]"]),
        5,
        11,
        &[
            "`options`",
            "must be a table of the processor's options, not an array",
            "[watch.options]",
        ],
    );
    expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = 1.5",
            "processor = \"log\"",
        ],
        3,
        10,
        &["`events`", "event names", "not a float"],
    );
    expect_problem(
        &watch_with(&["[[daemon]]", "workers = 2"]),
        5,
        1,
        &["`daemon` in the top level must be a table, not an array"],
    );
    expect_problem(
        &["[watch]", "path = \"/srv\""],
        1,
        1,
        &[
            "`watch` in the top level must be an array of tables, not a table",
            "[[watch]]",
        ],
    );
    expect_problem(
        &watch_with(&["drain_timeout = 10"]),
        5,
        1,
        &["unknown key `drain_timeout` in [[watch]] #1"],
    );
    expect_problem(
        &[
            "[daemon]",
            "drain_timeout = 10",
            "",
            "[[watch]]",
            "path = \"/a\"",
            "events = 1",
            "processor = \"log\"",
        ],
        2,
        17,
        &[
            "`drain_timeout` in [daemon] must be a duration (a string), not an integer",
            "\"10s\"",
        ],
    );
}

#[test]
fn missing_required_keys_point_at_their_table() {
    let problems = problems(&[
        "[daemon]",
        "workers = 2",
        "",
        "[[watch]]",
        "path = \"/srv\"",
        "events = 1",
        "processor = \"log\"",
        "",
        "  [[watch]]",
        "recursive = true",
    ]);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    check(
        &problems[0],
        9,
        3,
        &["[[watch]] #2 lacks the required key `path`", "path = \""],
    );
    check(
        &problems[1],
        9,
        3,
        &["[[watch]] #2 lacks the required key `events`", "events = ["],
    );
    check(
        &problems[2],
        9,
        3,
        &[
            "[[watch]] #2 lacks the required key `processor`",
            "processor = \"",
        ],
    );
}

#[test]
fn bad_mask_words_are_pointed_at_and_the_valid_names_listed() {
    let problem = expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = \"IN_CREATE|IN_CRATE\"",
            "processor = \"log\"",
        ],
        3,
        21,
        &["invalid `events` in [[watch]] #1", "\"IN_CRATE\""],
    );
    // The valid names come from the mask module, whatever names it has.
    for name in inotifier_core::valid_names() {
        assert!(problem.to_string().contains(name), "{problem} lacks {name}");
    }
    expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = [\"IN_CREATE\", \"IN_DELTE\"]",
            "processor = \"log\"",
        ],
        3,
        25,
        &["\"IN_DELTE\"", "IN_DELETE"],
    );
    expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = 0x1_0000_0000",
            "processor = \"log\"",
        ],
        3,
        10,
        &[
            "`events` in [[watch]] #1 is 0x100000000",
            "from 1 to 0xffffffff",
        ],
    );
    for empty in ["events = []", "events = 0", "events = \" | \""] {
        expect_problem(
            &["[[watch]]", "path = \"/srv\"", empty, "processor = \"log\""],
            3,
            10,
            &["`events`", "give event names"],
        );
    }
}

#[test]
fn bad_globs_are_pointed_at() {
    expect_problem(
        &watch_with(&["exclude = [\"*.tmp\", \"[abc\"]"]),
        5,
        21,
        &[
            "invalid pattern in `exclude` of [[watch]] #1",
            "\"[abc\"",
            "closing ']'",
            "[a-z]",
        ],
    );
    expect_problem(
        &watch_with(&["[watch.ready]", "temp_patterns = [\"x\\\\\"]"]),
        6,
        18,
        &[
            "`temp_patterns` of [watch.ready] of [[watch]] #1",
            "lone '\\'",
        ],
    );
    expect_problem(
        &watch_with(&["include = [\"\"]"]),
        5,
        12,
        &["`include`", "empty glob"],
    );
}

#[test]
fn bad_durations_say_how_to_write_one() {
    expect_problem(
        &watch_with(&["[watch.ready]", "settle = \"2 days\""]),
        6,
        10,
        &[
            "invalid `settle` in [watch.ready] of [[watch]] #1",
            "\"days\"",
            "ms, s, m or h",
        ],
    );
    expect_problem(
        &then_watch(&["[daemon]", "drain_timeout = \"soon\""]),
        2,
        17,
        &["invalid `drain_timeout` in [daemon]", "\"200ms\""],
    );
    expect_problem(
        &watch_with(&["retry = { initial = \"1x\" }"]),
        5,
        21,
        &["`initial` in [watch.retry]"],
    );
}

#[test]
fn bad_log_levels_list_the_levels() {
    expect_problem(
        &watch_with(&["[daemon]", "log_level = \"verbose\""]),
        6,
        13,
        &[
            "unknown log_level \"verbose\"",
            "error, warn, info, debug or trace",
        ],
    );
    // Numbers, which tracing would take, are refused: nobody reading the file knows them.
    expect_problem(
        &watch_with(&["[daemon]", "log_level = \"3\""]),
        6,
        13,
        &["\"3\""],
    );
}

#[test]
fn counts_must_be_positive() {
    let problems = problems(&watch_with(&[
        "[daemon]",
        "workers = 0",
        "queue_capacity = -5",
    ]));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    check(
        &problems[0],
        6,
        11,
        &["`workers` in [daemon] is 0", "at least 1"],
    );
    check(
        &problems[1],
        7,
        18,
        &["`queue_capacity` in [daemon] is -5", "at least 1"],
    );
    expect_problem(
        &watch_with(&["retry = { attempts = 0 }"]),
        5,
        22,
        &[
            "`attempts` in [watch.retry] of [[watch]] #1 is 0",
            "at least 1",
        ],
    );
}

#[test]
fn retry_delays_and_multiplier_must_make_sense() {
    expect_problem(
        &watch_with(&["[watch.retry]", "multiplier = 0.5"]),
        6,
        14,
        &["`multiplier`", "is 0.5", "at least 1.0"],
    );
    expect_problem(
        &watch_with(&["[watch.retry]", "initial = \"1s\"", "max = \"500ms\""]),
        7,
        7,
        &[
            "`max` in [watch.retry] of [[watch]] #1 is 500ms",
            "at least `initial`",
        ],
    );
    // The default max is 30s: an initial above it is the one to blame.
    expect_problem(
        &watch_with(&["[watch.retry]", "initial = \"1m\""]),
        6,
        11,
        &["`initial`", "is 60s"],
    );
}

#[test]
fn empty_strings_are_refused_where_a_name_is_needed() {
    expect_problem(
        &[
            "[[watch]]",
            "path = \"\"",
            "events = 1",
            "processor = \"log\"",
        ],
        2,
        8,
        &[
            "`path` in [[watch]] #1 is an empty string",
            "directory or file to watch",
        ],
    );
    expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = 1",
            "processor = \" \"",
        ],
        4,
        13,
        &["`processor`", "empty string"],
    );
    expect_problem(
        &watch_with(&["[daemon]", "stdout = \"\""]),
        6,
        10,
        &["`stdout` in [daemon]"],
    );
}

#[test]
fn a_file_without_watches_is_refused() {
    expect_problem(
        &["[daemon]", "workers = 2"],
        1,
        1,
        &["no [[watch]] table", "path, events and processor"],
    );
    expect_problem(&[""], 1, 1, &["no [[watch]] table"]);
    expect_problem(
        &["watch = []", "[daemon]", "workers = 2"],
        1,
        9,
        &["no [[watch]] table"],
    );
}

#[test]
fn processor_errors_point_at_the_option_they_name_or_at_the_processor() {
    expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = 1",
            "processor = \"email\"",
        ],
        4,
        13,
        &[
            "processor `email` of [[watch]] #1",
            "log, jsonl, exec, webhook",
        ],
    );
    expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = 1",
            "processor = \"exec\"",
            "[watch.options]",
            "shell = true",
            "argv = \"convert {pathname}\"",
        ],
        7,
        1,
        &["processor `exec` of [[watch]] #1: argv must be an array of strings"],
    );
    // Naming an option that is not there: the processor is the place to look.
    expect_problem(
        &[
            "[[watch]]",
            "path = \"/srv\"",
            "events = 1",
            "processor = \"exec\"",
            "options = { shell = true }",
        ],
        4,
        13,
        &["exec needs the option argv"],
    );
}

#[test]
fn options_json_cannot_hold_are_refused() {
    expect_problem(
        &watch_with(&["[watch.options]", "limits = { top = nan }"]),
        6,
        18,
        &["`options.limits.top` in [[watch]] #1", "finite number"],
    );
}

#[test]
fn every_problem_of_a_file_is_reported_in_file_order() {
    let problems = problems(&[
        "[[watch]]",
        "path = \"/srv\"",
        "events = \"IN_OPEN|bogus\"",
        "processor = \"email\"",
        "exclude = [\"[\"]",
        "",
        "[daemon]",
        "log_level = \"loud\"",
        "workers = 0",
        "extra = 1",
    ]);
    let places: Vec<_> = problems.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(
        places,
        [(3, 19), (4, 13), (5, 12), (8, 13), (9, 11), (10, 1)]
    );
    let error = ConfigError::Invalid(problems);
    let text = error.to_string();
    assert_eq!(text.lines().count(), 6, "{text}");
    for line in text.lines() {
        assert!(line.starts_with(&format!("{FILE}:")), "{line}");
    }
}

// ----- loading files -----------------------------------------------------------------------

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inotifier-config-")
        .tempdir()
        .unwrap()
}

#[test]
fn load_checks_that_watch_paths_exist() {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("present")).unwrap();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let file = dir.path().join("inotifier.toml");
    std::fs::write(
        &file,
        doc(&[
            "[[watch]]",
            "path = \"present\"",
            "events = 1",
            "processor = \"log\"",
            "[[watch]]",
            "path = \"absent\"",
            "events = 1",
            "processor = \"log\"",
            "[[watch]]",
            "path = \"a-file/below\"",
            "events = 1",
            "processor = \"log\"",
        ]),
    )
    .unwrap();
    let error = load(&file, &validate).unwrap_err();
    let problems = error.problems();
    assert_eq!(problems.len(), 2, "{error}");
    let absent = dir.path().join("absent");
    assert_eq!(
        problems[0].kind,
        ProblemKind::WatchPath {
            path: absent.clone(),
            problem: PathProblem::Missing
        }
    );
    let text = problems[0].to_string();
    assert!(
        text.starts_with(&format!(
            "{}:6:8: watch path {} does not exist",
            file.display(),
            absent.display()
        )),
        "{text}"
    );
    let text = problems[1].to_string();
    assert!(text.contains(":10:8: watch path "), "{text}");
    assert!(text.contains("cannot be read (Not a directory)"), "{text}");

    // parse alone does not look at the file system.
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(parse(&text, &file, &validate).unwrap().watches.len(), 3);

    std::fs::create_dir(&absent).unwrap();
    std::fs::remove_file(dir.path().join("a-file")).unwrap();
    std::fs::create_dir_all(dir.path().join("a-file/below")).unwrap();
    let config = load(&file, &validate).unwrap();
    assert_eq!(config.watches[1].path, absent);
    assert_eq!(config.check_paths(), Ok(()));
}

#[test]
fn unreadable_config_files_are_named() {
    let dir = temp_dir();
    let missing = dir.path().join("missing.toml");
    let error = load(&missing, &validate).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: cannot read the config file: ",
            missing.display()
        )),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");

    let text = load(dir.path(), &validate).unwrap_err().to_string();
    assert!(text.contains("cannot read the config file"), "{text}");
}

#[test]
fn a_file_that_is_not_utf8_is_located() {
    let dir = temp_dir();
    let file = dir.path().join("latin1.toml");
    std::fs::write(&file, b"[daemon]\nstdout = \"caf\xe9\"\n").unwrap();
    let error = load(&file, &validate).unwrap_err();
    assert_eq!(error.problems().len(), 1);
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("{}:2:14: the file is not UTF-8", file.display())),
        "{text}"
    );
}

#[test]
fn the_annotated_example_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/inotifier.toml");
    let dir = temp_dir();
    let file = dir.path().join("inotifier.toml");
    std::fs::copy(example, &file).unwrap();
    std::fs::create_dir(dir.path().join("demo-folder")).unwrap();
    let config = load(&file, &validate).unwrap_or_else(|error| panic!("{error}"));

    let daemon = &config.daemon;
    assert_eq!(daemon.pid_file, dir.path().join("inotifier.pid"));
    assert_eq!(daemon.stdout, Some(dir.path().join("log/out.log")));
    assert_eq!(daemon.stderr, Some(dir.path().join("log/err.log")));
    assert_eq!(daemon.log_level, tracing::Level::INFO);
    assert_eq!(daemon.drain_timeout, Duration::from_secs(10));
    assert_eq!((daemon.workers, daemon.queue_capacity), (4, 1024));

    assert_eq!(
        config.journal,
        JournalSettings {
            path: Some(dir.path().join("inotifier.journal")),
            retain: 100_000,
            catch_up: true,
            first_start: FirstStart::Silent,
        }
    );

    assert_eq!(config.watches.len(), 2);
    let full = &config.watches[0];
    assert_eq!(full.name.as_deref(), Some("thumbnails"));
    assert_eq!(full.path, dir.path().join("demo-folder"));
    assert_eq!(full.processor.kind, "exec");
    assert!(full.recursive && full.auto_add);
    assert_eq!(full.filters.exclude.len(), 2);
    assert_eq!(full.ready.settle, Duration::from_millis(200));
    assert_eq!(full.retry, RetryPolicy::default());
    let minimal = &config.watches[1];
    assert_eq!(minimal.events, Mask::IN_CREATE | Mask::IN_DELETE);
    assert_eq!(minimal.processor.kind, "log");

    // Every key the reader knows is in the example, so it documents them all.
    let text = std::fs::read_to_string(example).unwrap();
    for keys in [
        TOP_KEYS,
        daemon::KEYS,
        journal::KEYS,
        watch::KEYS,
        watch::READY_KEYS,
        watch::RETRY_KEYS,
    ] {
        for key in keys {
            let written = format!("{} = ", key.name);
            let header = format!("{}]", key.name);
            assert!(
                text.contains(&written) || text.contains(&header),
                "the example lacks {}",
                key.name
            );
        }
    }
}

// ----- [journal] and watch names ------------------------------------------------------------

#[test]
fn the_journal_defaults_to_the_pid_file_with_extension_journal() {
    let config = config(&WATCH);
    assert_eq!(
        config.journal,
        JournalSettings::defaults(Path::new("/etc/inotifier/inotifier.pid"))
    );
    assert_eq!(
        config.journal.path.as_deref(),
        Some(Path::new("/etc/inotifier/inotifier.journal"))
    );
    assert_eq!(config.watches[0].name, None);
    assert_eq!(config.watches[0].key(), "log@/srv/uploads");
}

#[test]
fn the_default_journal_path_follows_a_custom_pid_file() {
    let absolute = config(&then_watch(&[
        "[daemon]",
        "pid_file = \"/run/x/daemon.pid\"",
    ]));
    assert_eq!(
        absolute.journal.path.as_deref(),
        Some(Path::new("/run/x/daemon.journal"))
    );
    // A relative pid file is resolved first, the journal follows it.
    let relative = config(&then_watch(&["[daemon]", "pid_file = \"run/d.pid\""]));
    assert_eq!(
        relative.journal.path.as_deref(),
        Some(Path::new("/etc/inotifier/run/d.journal"))
    );
}

#[test]
fn every_journal_key_is_read() {
    let full = config(&then_watch(&[
        "[journal]",
        "path = \"state/events.db\"",
        "retain = 0",
        "catch_up = false",
        "first_start = \"report\"",
        "enabled = true",
    ]));
    assert_eq!(
        full.journal,
        JournalSettings {
            path: Some("/etc/inotifier/state/events.db".into()),
            retain: 0,
            catch_up: false,
            first_start: FirstStart::Report,
        }
    );
    let config = config(&then_watch(&["[journal]", "path = \"/var/lib/i.journal\""]));
    assert_eq!(
        config.journal.path.as_deref(),
        Some(Path::new("/var/lib/i.journal"))
    );
}

#[test]
fn a_disabled_journal_has_no_path() {
    let disabled = config(&then_watch(&["[journal]", "enabled = false", "retain = 5"]));
    assert_eq!(disabled.journal.path, None);
    assert_eq!(disabled.journal.retain, 5);
    let config = config(&then_watch(&["journal = { enabled = false }"]));
    assert_eq!(config.journal.path, None);
}

#[test]
fn bad_journal_values_are_located() {
    expect_problem(
        &then_watch(&["[journal]", "enabled = \"yes\""]),
        2,
        11,
        &[
            "`enabled` in [journal]",
            "a boolean",
            "not a string",
            "enabled = true",
        ],
    );
    expect_problem(
        &then_watch(&["[journal]", "retain = -1"]),
        2,
        10,
        &["`retain` in [journal] is -1", "0 or more"],
    );
    expect_problem(
        &then_watch(&["[journal]", "retain = \"many\""]),
        2,
        10,
        &["`retain`", "a whole number", "not a string"],
    );
    expect_problem(
        &then_watch(&["[journal]", "catch_up = 1"]),
        2,
        12,
        &["`catch_up`", "a boolean", "not an integer"],
    );
    expect_problem(
        &then_watch(&["[journal]", "first_start = \"loud\""]),
        2,
        15,
        &["first_start \"loud\"", "\"silent\"", "\"report\""],
    );
    expect_problem(
        &then_watch(&["[journal]", "first_start = true"]),
        2,
        15,
        &["`first_start`", "not a boolean"],
    );
    expect_problem(
        &then_watch(&["[journal]", "path = \"\""]),
        2,
        8,
        &["`path` in [journal] is an empty string"],
    );
    expect_problem(
        &then_watch(&["[journal]", "path = 3"]),
        2,
        8,
        &["`path` in [journal]", "a path", "not an integer"],
    );
    expect_problem(
        &then_watch(&["journal = 1"]),
        1,
        11,
        &["`journal`", "a table", "not an integer"],
    );
    expect_problem(
        &then_watch(&["[journal]", "retian = 5"]),
        2,
        1,
        &[
            "unknown key `retian` in [journal]",
            "did you mean `retain`?",
            "first_start",
        ],
    );
    expect_problem(
        &then_watch(&["[jornal]"]),
        1,
        2,
        &["unknown key `jornal`", "did you mean `journal`?"],
    );
}

#[test]
fn watches_take_a_name() {
    let config = config(&watch_with(&["name = \"uploads\""]));
    assert_eq!(config.watches[0].name.as_deref(), Some("uploads"));
    assert_eq!(config.watches[0].key(), "uploads");
    expect_problem(
        &watch_with(&["name = \"\""]),
        5,
        8,
        &["`name` in [[watch]] #1 is an empty string"],
    );
    expect_problem(
        &watch_with(&["name = 7"]),
        5,
        8,
        &["`name` in [[watch]] #1", "a name", "not an integer"],
    );
    expect_problem(
        &watch_with(&["nmae = \"x\""]),
        5,
        1,
        &["unknown key `nmae`", "did you mean `name`?"],
    );
}

#[test]
fn two_watches_with_one_journal_key_must_be_named() {
    let mut lines = WATCH.to_vec();
    lines.push("");
    lines.extend(WATCH);
    let problem = expect_problem(
        &lines,
        6,
        1,
        &[
            "[[watch]] #2",
            "`log@/srv/uploads`",
            "[[watch]] #1",
            "distinct `name`",
            "name = \"log-2\"",
        ],
    );
    assert!(matches!(
        problem.kind,
        ProblemKind::DuplicateWatch { first: 1, .. }
    ));

    // A name on one of them is enough; other processors or paths never clash.
    let mut named = lines.clone();
    named.push("name = \"second\"");
    let named = config(&named);
    assert_eq!(named.watches[0].key(), "log@/srv/uploads");
    assert_eq!(named.watches[1].key(), "second");
    let mut other = WATCH.to_vec();
    other.extend([
        "",
        "[[watch]]",
        "path = \"/srv/uploads\"",
        "events = 8",
        "processor = \"jsonl\"",
    ]);
    assert_eq!(config(&other).watches.len(), 2);

    // Two equal names clash as well, at the second.
    let mut same_names = WATCH.to_vec();
    same_names.push("name = \"n\"");
    same_names.extend([
        "[[watch]]",
        "path = \"/srv/other\"",
        "events = 8",
        "processor = \"jsonl\"",
        "name = \"n\"",
    ]);
    expect_problem(&same_names, 6, 1, &["`n`", "[[watch]] #2"]);
}

#[test]
fn journal_settings_load_despite_problems_elsewhere() {
    let dir = temp_dir();
    let file = dir.path().join("inotifier.toml");
    std::fs::write(
        &file,
        "[daemon]\npid_file = \"run/d.pid\"\n[journal]\nretain = 7\n\
         [[watch]]\npath = \"gone\"\nevents = \"IN_NOPE\"\n",
    )
    .unwrap();
    let (pid_file, journal) = load_journal_settings(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pid_file, dir.path().join("run/d.pid"));
    assert_eq!(journal.path, Some(dir.path().join("run/d.journal")));
    assert_eq!(journal.retain, 7);

    // A mistake in [journal] itself could point at the wrong file: it is an error.
    std::fs::write(&file, "[journal]\nfirst_start = \"never\"\n").unwrap();
    let error = load_journal_settings(&file).unwrap_err();
    let problems = error.problems();
    assert_eq!(problems.len(), 1, "{error}");
    assert_eq!((problems[0].line, problems[0].column), (2, 15));
}

#[test]
fn metrics_listen_is_an_address_and_port() {
    assert_eq!(config(&then_watch(&[])).metrics.listen, None);
    let listening = config(&then_watch(&["[metrics]", "listen = \"127.0.0.1:9464\""]));
    assert_eq!(
        listening.metrics.listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let v6 = config(&then_watch(&["[metrics]", "listen = \"[::1]:0\""]));
    assert_eq!(v6.metrics.listen, Some("[::1]:0".parse().unwrap()));
    expect_problem(
        &then_watch(&["[metrics]", "listen = \"localhost:9464\""]),
        2,
        10,
        &["listen \"localhost:9464\" in [metrics]", "127.0.0.1:9464"],
    );
    expect_problem(
        &then_watch(&["[metrics]", "port = 9464"]),
        2,
        1,
        &["unknown key `port` in [metrics]", "listen"],
    );
}

#[test]
fn backend_and_poll_interval_default_to_auto_and_one_second() {
    let watch = &config(&WATCH).watches[0];
    assert_eq!(watch.backend, inotifier_core::Backend::Auto);
    assert_eq!(watch.poll_interval, Duration::from_secs(1));
    let watch = &config(&watch_with(&[
        "backend = \"poll\"",
        "poll_interval = \"250ms\"",
    ]))
    .watches[0];
    assert_eq!(watch.backend, inotifier_core::Backend::Poll);
    assert_eq!(watch.poll_interval, Duration::from_millis(250));
    assert_eq!(watch.spec().backend, inotifier_core::Backend::Poll);
}

#[test]
fn an_unknown_backend_and_a_too_short_poll_interval_name_what_is_valid() {
    expect_problem(
        &watch_with(&["backend = \"fanotfy\""]),
        5,
        11,
        &[
            "backend \"fanotfy\"",
            "[[watch]] #1",
            "\"auto\"",
            "\"inotify\"",
            "\"poll\"",
        ],
    );
    expect_problem(
        &watch_with(&["poll_interval = \"1ms\""]),
        5,
        17,
        &["poll_interval in [[watch]] #1 is 1ms", "at least 10ms"],
    );
    expect_problem(
        &watch_with(&["poll_interval = 1"]),
        5,
        17,
        &["poll_interval"],
    );
}
