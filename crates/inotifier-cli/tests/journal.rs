//! `inotifier journal` run as a real process against real journals, filled here through the
//! `inotifier-journal` API (or the `import` subcommand), and read back through the API to see
//! the effect of each command.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Finished, run_inotifier};
use inotifier_core::{Event, Mask, Origin};
use inotifier_journal::{Journal, JournalOptions, ProcessorId, State};

const A: &str = "jsonl@/srv/in";
const B: &str = "webhook@/srv/in";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("inotifier-journal-")
            .tempdir()
            .expect("temporary directory");
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn journal_path(&self) -> PathBuf {
        self.path("inotifier.journal")
    }

    fn open(&self) -> Journal {
        Journal::open(&JournalOptions {
            commit_interval: Duration::from_millis(1),
            ..JournalOptions::new(self.journal_path())
        })
        .expect("open journal")
    }

    /// `inotifier journal ARGS... --journal PATH`.
    fn run(&self, args: &[&str]) -> Finished {
        let journal = self.journal_path();
        let mut all: Vec<&str> = vec!["journal"];
        all.extend(args);
        all.extend(["--journal", s(&journal)]);
        run_inotifier(&all)
    }

    /// Ids 1..=6: all to A and B; A acknowledged 1-3; B dead-lettered 2 and 5.
    fn fill(&self) {
        let journal = self.open();
        let a = journal.processor(A).unwrap();
        let b = journal.processor(B).unwrap();
        let events: Vec<Event> = (1..=6).map(|id| event(id, &format!("f{id}"))).collect();
        let both = [a, b];
        let batch: Vec<(&Event, &[ProcessorId])> = events.iter().map(|e| (e, &both[..])).collect();
        journal.append(&batch).unwrap();
        for id in 1..=3 {
            journal.ack(a, id);
        }
        journal.dead_letter(b, 2, 5, "HTTP 500 from http://hook/\nretry later");
        journal.dead_letter(b, 5, 5, "connection refused");
        journal.flush().unwrap();
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn event(id: u64, name: &str) -> Event {
    Event {
        id,
        mask: Mask::IN_CLOSE_WRITE,
        cookie: 0,
        wd: 1,
        path: Arc::from(Path::new("/srv/in")),
        name: OsString::from(name),
        src_pathname: None,
        origin: Origin::Kernel,
        time_ns: 1_764_000_000_000_000_000 + id as i64,
        watches: Arc::from([]),
    }
}

fn ids(journal: &Journal, processor: &str, state: State) -> Vec<u64> {
    journal
        .list(Some(processor), state, usize::MAX)
        .unwrap()
        .iter()
        .map(|entry| entry.event.id)
        .collect()
}

#[track_caller]
fn assert_exit(finished: &Finished, code: i32) {
    assert_eq!(
        finished.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        finished.stdout,
        finished.stderr
    );
}

#[test]
fn the_summary_counts_per_processor() {
    let setup = Setup::new();
    setup.fill();
    for args in [&[][..], &["summary"][..]] {
        let finished = setup.run(args);
        assert_exit(&finished, 0);
        let lines: Vec<Vec<&str>> = finished
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines,
            [
                vec![
                    "PROCESSOR",
                    "PENDING",
                    "DEAD",
                    "OLDEST",
                    "PENDING",
                    "LAST",
                    "ACKED"
                ],
                vec![A, "3", "0", "4", "3"],
                vec![B, "4", "2", "1", "-"],
            ],
            "{}",
            finished.stdout
        );
    }
}

#[test]
fn list_shows_pending_or_dead_entries() {
    let setup = Setup::new();
    setup.fill();
    let pending = setup.run(&["list", "--processor", A]);
    assert_exit(&pending, 0);
    let rows: Vec<Vec<&str>> = pending
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "ID",
            "PROCESSOR",
            "MASKNAME",
            "PATHNAME",
            "ATTEMPTS",
            "ERROR"
        ]
    );
    assert_eq!(
        rows[1..],
        [
            ["4", A, "IN_CLOSE_WRITE", "/srv/in/f4", "0", "-"],
            ["5", A, "IN_CLOSE_WRITE", "/srv/in/f5", "0", "-"],
            ["6", A, "IN_CLOSE_WRITE", "/srv/in/f6", "0", "-"],
        ]
    );

    let dead = setup.run(&["list", "--dead"]);
    assert_exit(&dead, 0);
    let rows: Vec<&str> = dead.stdout.lines().skip(1).collect();
    assert_eq!(
        rows,
        [
            format!(
                "2\t{B}\tIN_CLOSE_WRITE\t/srv/in/f2\t5\tHTTP 500 from http://hook/ retry later"
            ),
            format!("5\t{B}\tIN_CLOSE_WRITE\t/srv/in/f5\t5\tconnection refused"),
        ]
    );

    let limited = setup.run(&["list", "--limit", "2"]);
    assert_exit(&limited, 0);
    assert_eq!(limited.stdout.lines().count(), 3, "{}", limited.stdout);
    assert!(limited.stderr.contains("--limit"), "{}", limited.stderr);

    let json = setup.run(&["list", "--dead", "--json"]);
    assert_exit(&json, 0);
    let objects: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["processor"], B);
    assert_eq!(objects[0]["state"], "dead");
    assert_eq!(objects[0]["attempts"], 5);
    assert_eq!(objects[1]["error"], "connection refused");
    assert_eq!(objects[1]["event"]["id"], 5);
    assert_eq!(objects[1]["event"]["pathname"], "/srv/in/f5");
    assert_eq!(objects[1]["event"]["maskname"], "IN_CLOSE_WRITE");
}

#[test]
fn retry_makes_dead_letters_pending_again() {
    let setup = Setup::new();
    setup.fill();
    let finished = setup.run(&["retry", "--processor", B, "--ids", "5"]);
    assert_exit(&finished, 0);
    assert_eq!(
        finished.stdout,
        "1 dead-lettered events made pending again\n"
    );
    let journal = setup.open();
    assert_eq!(ids(&journal, B, State::Dead), [2]);
    assert_eq!(ids(&journal, B, State::Pending), [1, 3, 4, 5, 6]);
    // A running daemon gets it through take_requeued.
    let requeued: Vec<u64> = journal
        .take_requeued()
        .unwrap()
        .iter()
        .map(|(_, e)| e.id)
        .collect();
    assert_eq!(requeued, [5]);
    drop(journal);

    let all = setup.run(&["retry"]);
    assert_exit(&all, 0);
    assert_eq!(all.stdout, "1 dead-lettered events made pending again\n");
    assert!(ids(&setup.open(), B, State::Dead).is_empty());
}

#[test]
fn purge_deletes_and_guards_pending_events() {
    let setup = Setup::new();
    setup.fill();
    let dead = setup.run(&["purge", "--dead"]);
    assert_exit(&dead, 0);
    assert_eq!(dead.stdout, "2 dead events purged\n");
    assert!(ids(&setup.open(), B, State::Dead).is_empty());

    let refused = setup.run(&["purge", "--pending"]);
    assert_exit(&refused, 2);
    assert!(refused.stderr.contains("--all"), "{}", refused.stderr);
    assert_eq!(ids(&setup.open(), A, State::Pending), [4, 5, 6]);

    let neither = setup.run(&["purge"]);
    assert_exit(&neither, 2);

    let scoped = setup.run(&["purge", "--pending", "--processor", A, "--ids", "5-6"]);
    assert_exit(&scoped, 0);
    assert_eq!(scoped.stdout, "2 pending events purged\n");
    assert_eq!(ids(&setup.open(), A, State::Pending), [4]);
    assert_eq!(ids(&setup.open(), B, State::Pending), [1, 3, 4, 6]);

    let all = setup.run(&["purge", "--pending", "--all"]);
    assert_exit(&all, 0);
    assert_eq!(all.stdout, "5 pending events purged\n");
    assert!(
        setup
            .open()
            .list(None, State::Pending, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn replay_makes_acknowledged_events_pending_again() {
    let setup = Setup::new();
    setup.fill();
    let finished = setup.run(&["replay", "--processor", A, "--ids", "2-3"]);
    assert_exit(&finished, 0);
    assert!(
        finished
            .stdout
            .starts_with(&format!("2 acknowledged events of {A} (ids 2-3)")),
        "{}",
        finished.stdout
    );
    assert_eq!(ids(&setup.open(), A, State::Pending), [2, 3, 4, 5, 6]);

    let missing = setup.run(&["replay", "--processor", A]);
    assert_exit(&missing, 2);
    assert!(missing.stderr.contains("--ids"), "{}", missing.stderr);
}

#[test]
fn unknown_processors_are_named_with_the_known_ones() {
    let setup = Setup::new();
    setup.fill();
    for args in [
        &["list", "--processor", "nope"][..],
        &["retry", "--processor", "nope"][..],
        &["replay", "--processor", "nope", "--ids", "1-2"][..],
    ] {
        let finished = setup.run(args);
        assert_exit(&finished, 1);
        assert!(
            finished.stderr.contains("\"nope\"")
                && finished.stderr.contains(A)
                && finished.stderr.contains(B),
            "{}",
            finished.stderr
        );
    }
}

#[test]
fn the_journal_is_found_through_the_config_file() {
    let setup = Setup::new();
    std::fs::create_dir(setup.path("run")).unwrap();
    let config = setup.path("inotifier.toml");
    std::fs::write(
        &config,
        "[daemon]\npid_file = \"run/d.pid\"\n\n[[watch]]\npath = \"gone\"\nevents = 8\nprocessor = \"log\"\n",
    )
    .unwrap();
    // Nothing there yet: said so, and nothing is created.
    let absent = run_inotifier(&["journal", "-c", s(&config)]);
    assert_exit(&absent, 1);
    let expected = setup.path("run/d.journal");
    assert!(
        absent.stderr.contains(&format!(
            "the daemon has not run with this config yet: no journal at {}",
            expected.display()
        )),
        "{}",
        absent.stderr
    );
    assert!(!expected.exists());

    // The default path follows the pid file, though the watch path does not exist.
    let journal = Journal::open(&JournalOptions::new(&expected)).unwrap();
    let p = journal.processor(A).unwrap();
    journal.append(&[(&event(1, "x"), &[p][..])]).unwrap();
    drop(journal);
    let found = run_inotifier(&["journal", "summary", "--config", s(&config)]);
    assert_exit(&found, 0);
    assert!(found.stdout.contains(A), "{}", found.stdout);

    std::fs::write(
        &config,
        "[journal]\nenabled = false\n\n[[watch]]\npath = \"gone\"\nevents = 8\nprocessor = \"log\"\n",
    )
    .unwrap();
    let disabled = run_inotifier(&["journal", "-c", s(&config)]);
    assert_exit(&disabled, 1);
    assert!(disabled.stderr.contains("disabled"), "{}", disabled.stderr);

    std::fs::write(&config, "[journal]\nretain = -3\n").unwrap();
    let invalid = run_inotifier(&["journal", "-c", s(&config)]);
    assert_exit(&invalid, 1);
    assert!(
        invalid
            .stderr
            .contains(&format!("{}:2:10:", config.display())),
        "{}",
        invalid.stderr
    );

    let neither = run_inotifier(&["journal", "list"]);
    assert_exit(&neither, 2);
    assert!(neither.stderr.contains("--config"), "{}", neither.stderr);
}

#[test]
fn a_corrupt_journal_names_the_recovery_and_recover_salvages_it() {
    let setup = Setup::new();
    setup.fill();
    let check = setup.run(&["check"]);
    assert_exit(&check, 0);
    assert_eq!(
        check.stdout,
        format!("{}: ok\n", setup.journal_path().display())
    );

    // Refused while a daemon holds the journal (here this process, for the daemon).
    let lock = inotifier_journal::JournalLock::acquire(&setup.journal_path()).expect("lock");
    let refused = setup.run(&["recover"]);
    assert_exit(&refused, 1);
    assert!(
        refused.stderr.contains(&format!(
            "in use by another daemon (pid {})",
            std::process::id()
        )),
        "{}",
        refused.stderr
    );
    assert!(setup.journal_path().exists());
    drop(lock);

    let recovered = setup.run(&["recover"]);
    assert_exit(&recovered, 0);
    assert!(
        recovered
            .stdout
            .contains("salvaged: 2 processors, 6 events"),
        "{}",
        recovered.stdout
    );
    assert_eq!(ids(&setup.open(), B, State::Dead), [2, 5]);
    assert_eq!(ids(&setup.open(), A, State::Pending), [4, 5, 6]);

    // Not a database at all: every command says how to recover.
    std::fs::write(setup.journal_path(), b"this is not SQLite, just junk").unwrap();
    for args in [&["summary"][..], &["check"][..]] {
        let finished = setup.run(args);
        assert_exit(&finished, 1);
        assert!(
            finished.stderr.contains(&format!(
                "inotifier journal recover --journal {}",
                setup.journal_path().display()
            )),
            "{}",
            finished.stderr
        );
    }
    let recovered = setup.run(&["recover"]);
    assert_exit(&recovered, 0);
    assert!(recovered.stdout.contains("damaged journal moved to"));
    assert!(setup.open().summary().unwrap().is_empty());
}

#[test]
fn import_appends_jsonl_events_as_pending() {
    let setup = Setup::new();
    setup.fill();
    let file = setup.path("captured.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id":70,"mask":8,"maskname":"IN_CLOSE_WRITE","path":"/srv/in","name":"caf\udce9","pathname":"/srv/in/caf\udce9","dir":false,"wd":1,"cookie":0,"src_pathname":null,"synthetic":false,"origin":"kernel","time":1764077825.000000042}"#,
            "\n\n",
            r#"{"mask":128,"path":"/srv/in","name":"b","src_pathname":"/srv/in/b.part","origin":"scan"}"#,
            "\n",
        ),
    )
    .unwrap();
    let finished = setup.run(&["import", "--jsonl", s(&file), "--processor", "new"]);
    assert_exit(&finished, 0);
    assert_eq!(
        finished.stdout,
        "imported 2 events for new as pending, ids 7-8\n"
    );
    let journal = setup.open();
    let entries = journal.list(Some("new"), State::Pending, 10).unwrap();
    assert_eq!(entries.len(), 2);
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(entries[0].event.name.as_bytes(), b"caf\xe9");
    assert_eq!(entries[0].event.time_ns, 1_764_077_825_000_000_042);
    assert_eq!(
        entries[1].event.src_pathname.as_deref(),
        Some(Path::new("/srv/in/b.part"))
    );
    assert_eq!(entries[1].event.origin, Origin::Scan);
    drop(journal);

    std::fs::write(
        &file,
        "{\"mask\":8,\"path\":\"/a\",\"name\":\"x\"}\nnot json\n",
    )
    .unwrap();
    let bad = setup.run(&["import", "--jsonl", s(&file), "--processor", "new"]);
    assert_exit(&bad, 1);
    assert!(
        bad.stderr
            .contains(&format!("{}:2: not a JSON object", file.display())),
        "{}",
        bad.stderr
    );
    assert_eq!(ids(&setup.open(), "new", State::Pending), [7, 8]);
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "summary", "list", "retry", "purge", "replay", "check", "recover", "import",
    ] {
        let finished = run_inotifier(&["journal", sub, "--help"]);
        assert_exit(&finished, 0);
        assert!(
            finished.stdout.contains("--journal"),
            "{sub}: {}",
            finished.stdout
        );
    }
}
