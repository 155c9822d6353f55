//! Faults: a corrupt file, a read-only filesystem, a full disk, a newer schema, a lock held
//! too long. Each is a clear error; none resets the journal.

mod common;

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use common::*;
use inotifier_core::Event;
use inotifier_journal::{Journal, JournalError, ProcessorId};
use inotifier_test_support::damage::{damage_page, middle_leaf, root_page};

fn recovery_command(path: &Path) -> String {
    format!("inotifier journal recover --journal {}", path.display())
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt_and_recovery_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Journal::open(&options(&path)).err().expect("corrupt");
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(message.contains(&recovery_command(&path)), "{message}");
    assert!(message.contains("not a database"), "{message}");
    // Never reset silently: the bytes are still there.
    assert_eq!(fs::read(&path).unwrap(), vec![0x5a; 8192]);

    let report = Journal::recover(&path).unwrap();
    assert_eq!(fs::read(&report.moved_to).unwrap(), vec![0x5a; 8192]);
    assert!(!report.errors.is_empty(), "{report}");
    assert_eq!(report.pending, 0);
    let journal = open(&path);
    assert_eq!(journal.next_event_id(), 1);
}

#[test]
fn a_damaged_page_is_corrupt_and_recovery_salvages_the_pending_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let sent = events(1..=300);
    {
        let journal = open(&path);
        let p = journal.processor("jsonl@/srv/in").unwrap();
        append_to(&journal, &sent, &[p]);
        for id in 1..=100 {
            journal.ack(p, id);
        }
        journal.dead_letter(p, 150, 4, "disk on fire");
        journal.flush().unwrap();
        journal
            .replace_snapshot(
                "/srv/in",
                &[inotifier_journal::SnapshotEntry {
                    path: b"f1".to_vec(),
                    inode: 1,
                    size: 2,
                    mtime_ns: 3,
                    kind: inotifier_journal::EntryKind::File,
                }],
            )
            .unwrap();
    } // Closed: the WAL is checkpointed into the file.
    damage_page(&path, root_page(&path, "deliveries_open"));

    let journal = open(&path);
    let p = journal.processor("jsonl@/srv/in").unwrap();
    let err = journal.check().unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
    let err = journal.pending(p).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&recovery_command(&path)), "{err}");
    drop(journal);

    let report = Journal::recover(&path).unwrap();
    assert!(report.moved_to.exists());
    assert_eq!(
        (report.pending, report.dead, report.lost),
        (199, 1, 0),
        "{report}"
    );
    assert_eq!(report.snapshot_entries, 1);
    let journal = open(&path);
    journal.check().unwrap();
    let p2 = journal.processor("jsonl@/srv/in").unwrap();
    assert_eq!(p2, p);
    let expected: Vec<Event> = sent[100..]
        .iter()
        .filter(|e| e.id != 150)
        .cloned()
        .collect();
    assert_eq!(journal.pending(p2).unwrap(), expected);
    assert_eq!(
        journal
            .list(None, inotifier_journal::State::Dead, 10)
            .unwrap()[0]
            .error
            .as_deref(),
        Some("disk on fire")
    );
    assert_eq!(journal.next_event_id(), 301);
    assert_eq!(journal.load_snapshot("/srv/in").unwrap().unwrap().len(), 1);
    // The fresh journal is 0600 too.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    drop(open(&path));
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Journal::open(&options(&path)).err().expect("refused");
    assert!(
        matches!(
            err,
            JournalError::Version {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn another_sqlite_database_is_not_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = Journal::open(&options(&path)).err().expect("refused");
    assert!(matches!(err, JournalError::NotAJournal { .. }), "{err}");
}

#[test]
fn a_lock_held_past_the_busy_timeout_is_busy_and_transient() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = journal.append(&[(&event(1, b"a"), &[p][..])]).unwrap_err();
    assert!(matches!(err, JournalError::Busy { .. }), "{err}");
    assert!(err.is_transient());
    other.execute_batch("ROLLBACK").unwrap();
    journal.append(&[(&event(1, b"a"), &[p][..])]).unwrap();
}

#[test]
fn a_read_only_filesystem_is_read_only_and_transient() {
    let Some(mount) = Tmpfs::mount(
        "a_read_only_filesystem_is_read_only_and_transient",
        "size=4m,mode=0700",
    ) else {
        return;
    };
    let path = mount.dir.join("journal.db");
    {
        let journal = open(&path);
        append_to(&journal, &events(1..=5), &[journal.processor("p").unwrap()]);
    }
    mount.remount("ro");
    let err = Journal::open(&options(&path)).err().expect("read-only");
    assert!(matches!(err, JournalError::ReadOnly { .. }), "{err}");
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("read-write"), "{err}");

    // Made writable again: nothing was lost.
    mount.remount("rw");
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    assert_eq!(ids(&journal.pending(p).unwrap()), vec![1, 2, 3, 4, 5]);
}

#[test]
fn creating_a_journal_on_a_read_only_filesystem_is_read_only() {
    let Some(mount) = Tmpfs::mount(
        "creating_a_journal_on_a_read_only_filesystem_is_read_only",
        "size=1m,ro",
    ) else {
        return;
    };
    let err = Journal::open(&options(&mount.dir.join("journal.db")))
        .err()
        .expect("read-only");
    assert!(matches!(err, JournalError::ReadOnly { .. }), "{err}");
}

#[test]
fn a_full_disk_is_full_and_transient_and_the_append_succeeds_once_space_is_freed() {
    let Some(mount) = Tmpfs::mount(
        "a_full_disk_is_full_and_transient_and_the_append_succeeds_once_space_is_freed",
        "size=1m",
    ) else {
        return;
    };
    let path = mount.dir.join("journal.db");
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    append_to(&journal, &events(1..=10), &[p]);

    // Fill what is left.
    let filler = mount.dir.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    drop(file);

    let batch: Vec<Event> = (11..=400)
        .map(|id| event(id, format!("{id:0>200}").as_bytes()))
        .collect();
    let routes = [p];
    let rows: Vec<(&Event, &[ProcessorId])> = batch.iter().map(|e| (e, &routes[..])).collect();
    let err = journal.append(&rows).unwrap_err();
    assert!(matches!(err, JournalError::Full { .. }), "{err}");
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("free space"), "{err}");
    assert_eq!(journal.next_event_id(), 11, "the failed batch spent no id");
    // Acknowledgements wait in memory meanwhile; flush says why they cannot be written.
    // (Freeing the pages of acknowledged rows needs the WAL to grow first.)
    for id in 1..=10 {
        journal.dead_letter(p, id, 1, &"x".repeat(4000));
    }
    let err = journal.flush().unwrap_err();
    assert!(matches!(err, JournalError::Full { .. }), "{err}");

    // The daemon retries the same batch once space is back.
    fs::remove_file(&filler).unwrap();
    journal.append(&rows).unwrap();
    journal.flush().unwrap();
    drop(journal);
    let journal = open(&path);
    assert_eq!(journal.pending(p).unwrap().len(), 390);
    assert_eq!(
        journal
            .list(None, inotifier_journal::State::Dead, 100)
            .unwrap()
            .len(),
        10,
        "the dead letters queued while the disk was full were kept and committed"
    );
}

#[test]
fn recovery_reads_events_past_a_damaged_page_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        let journal = open(&path);
        let p = journal.processor("p").unwrap();
        append_to(&journal, &events(1..=3000), &[p]);
    }
    // A leaf of `events` in the middle: a scan stops there, lookups by id go around it.
    let leaf = middle_leaf(&path, "events");
    damage_page(&path, leaf);

    let report = Journal::recover(&path).unwrap();
    assert!(report.lost > 0, "{report}");
    assert!(
        report.errors.iter().any(|e| e.starts_with("events:")),
        "{report}"
    );
    assert_eq!(report.pending + report.lost, 3000, "{report}");
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    let salvaged = ids(&journal.pending(p).unwrap());
    assert_eq!(salvaged.len(), report.pending);
    // Events beyond the damaged page were read one by one.
    assert_eq!(salvaged.last(), Some(&3000), "{report}");
    assert_eq!(journal.next_event_id(), 3001);
}
