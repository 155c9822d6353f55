//! Appending, acknowledging, dead letters and what a restart redelivers.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use inotifier_core::{Mask, Origin};
use inotifier_journal::{Journal, JournalError, JournalOptions, State};

#[test]
fn round_trip_keeps_every_field_including_non_utf8_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open(&path);
    let p = journal.processor("jsonl@/srv/in").unwrap();

    let mut moved = event(7, b"caf\xe9-\xff.txt");
    moved.mask = Mask(0x80 | 0x4000_0000);
    moved.cookie = 4242;
    moved.wd = -1;
    moved.path = Arc::from(Path::new(std::ffi::OsStr::from_bytes(b"/srv/\xfein")));
    moved.src_pathname = Some(PathBuf::from(std::ffi::OsStr::from_bytes(
        b"/srv/old/\x80name",
    )));
    moved.origin = Origin::Rescan;
    moved.time_ns = -5;
    let mut scanned = event(8, b"");
    scanned.origin = Origin::Scan;
    let plain = event(9, b"plain");
    append_to(
        &journal,
        &[moved.clone(), scanned.clone(), plain.clone()],
        &[p],
    );

    assert_eq!(
        journal.pending(p).unwrap(),
        vec![moved.clone(), scanned, plain.clone()]
    );

    journal.ack(p, 8);
    journal.flush().unwrap();
    assert_eq!(journal.pending(p).unwrap(), vec![moved, plain]);
}

#[test]
fn ids_continue_after_reopen_even_once_purged_or_unrouted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        let journal = open(&path);
        assert_eq!(journal.next_event_id(), 1);
        let p = journal.processor("log").unwrap();
        append_to(&journal, &events(1..=10), &[p]);
        // Routed nowhere: not stored, but its id is spent.
        append_to(&journal, &events(11..=12), &[]);
        assert_eq!(journal.next_event_id(), 13);
        journal.dead_letter(p, 3, 1, "x");
        journal.flush().unwrap();
        assert_eq!(journal.purge(None, State::Pending, None).unwrap(), 9);
        assert_eq!(journal.purge(None, State::Dead, None).unwrap(), 1);
    }
    let journal = open(&path);
    assert_eq!(journal.next_event_id(), 13);
    let p = journal.processor("log").unwrap();
    assert!(journal.pending(p).unwrap().is_empty());
    let err = journal.append(&[(&event(12, b"x"), &[p][..])]);
    assert!(err.is_ok(), "12 was never stored: {err:?}");
    let err = journal.append(&[(&event(12, b"x"), &[p][..])]).unwrap_err();
    assert!(
        matches!(err, JournalError::DuplicateId { id: 12, .. }),
        "{err}"
    );
}

#[test]
fn processor_ids_are_stable_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (a, b) = {
        let journal = open(&path);
        (
            journal.processor("a").unwrap(),
            journal.processor("b").unwrap(),
        )
    };
    assert_ne!(a, b);
    let journal = open(&path);
    assert_eq!(journal.processor("b").unwrap(), b);
    assert_eq!(journal.processor("a").unwrap(), a);
    assert_eq!(journal.processor("a").unwrap(), a);
}

#[test]
fn two_processors_have_independent_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open(&path);
    let a = journal.processor("a").unwrap();
    let b = journal.processor("b").unwrap();
    append_to(&journal, &events(1..=5), &[a, b]);
    append_to(&journal, &events(6..=6), &[b]);
    for id in [1, 2, 4] {
        journal.ack(a, id);
    }
    journal.ack(b, 5);
    journal.dead_letter(b, 1, 3, "refused");
    journal.flush().unwrap();
    assert_eq!(ids(&journal.pending(a).unwrap()), vec![3, 5]);
    assert_eq!(ids(&journal.pending(b).unwrap()), vec![2, 3, 4, 6]);

    let summary = journal.summary().unwrap();
    let sa = summary.iter().find(|s| s.key == "a").unwrap();
    let sb = summary.iter().find(|s| s.key == "b").unwrap();
    assert_eq!(
        (sa.pending, sa.dead, sa.oldest_pending, sa.last_acked),
        (2, 0, Some(3), Some(4))
    );
    assert_eq!(
        (sb.pending, sb.dead, sb.oldest_pending, sb.last_acked),
        (4, 1, Some(2), Some(5))
    );
}

#[test]
fn dead_letters_leave_pending_and_keep_their_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open(&path);
    let p = journal.processor("webhook@https://x").unwrap();
    append_to(&journal, &events(1..=3), &[p]);
    journal.dead_letter(p, 2, 5, "HTTP 500 from https://x");
    journal.dead_letter(p, 3, 1, &"é".repeat(5000));
    journal.flush().unwrap();
    assert_eq!(ids(&journal.pending(p).unwrap()), vec![1]);
    let dead = journal.list(None, State::Dead, 10).unwrap();
    assert_eq!(dead.len(), 2);
    // A huge error is cut, on a character boundary.
    assert_eq!(dead[1].error.as_deref(), Some("é".repeat(2048).as_str()));
    assert_eq!(dead[0].processor, "webhook@https://x");
    assert_eq!(dead[0].event, event(2, b"f2"));
    assert_eq!(dead[0].attempts, 5);
    assert_eq!(dead[0].error.as_deref(), Some("HTTP 500 from https://x"));
    assert_eq!(dead[0].state, State::Dead);
    let pending = journal
        .list(Some("webhook@https://x"), State::Pending, 1)
        .unwrap();
    assert_eq!(pending.len(), 1, "the limit applies");
    assert_eq!(pending[0].event.id, 1);
    drop(journal);
    // Dead letters are durable too.
    let journal = open(&path);
    assert_eq!(journal.list(None, State::Dead, 10).unwrap().len(), 2);
}

#[test]
fn retry_purge_replay_and_take_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let daemon = open(&path);
    let a = daemon.processor("a").unwrap();
    let b = daemon.processor("b").unwrap();
    append_to(&daemon, &events(1..=10), &[a, b]);
    for id in 1..=10 {
        daemon.ack(a, id);
    }
    for id in [2, 3, 4] {
        daemon.dead_letter(b, id, 3, "boom");
    }
    daemon.flush().unwrap();
    // What restart hands over is not requeued again.
    assert_eq!(daemon.pending(b).unwrap().len(), 7);
    assert!(daemon.take_requeued().unwrap().is_empty());

    // The admin command runs in its own process, with its own connection.
    let admin = open(&path);
    let err = admin.retry_dead(Some("nope"), None).unwrap_err();
    assert!(
        matches!(err, JournalError::UnknownProcessor { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("known: a, b"), "{err}");
    assert_eq!(admin.retry_dead(Some("b"), Some(3..=4)).unwrap(), 2);
    assert_eq!(
        admin.retry_dead(Some("b"), Some(3..=4)).unwrap(),
        0,
        "not dead any more"
    );
    assert_eq!(admin.replay("a", 8..=20).unwrap(), 3);
    assert_eq!(admin.replay("a", 8..=20).unwrap(), 0, "pending already");

    let requeued = daemon.take_requeued().unwrap();
    let got: Vec<(u32, u64)> = requeued.iter().map(|(p, e)| (p.get(), e.id)).collect();
    assert_eq!(
        got,
        vec![
            (b.get(), 3),
            (b.get(), 4),
            (a.get(), 8),
            (a.get(), 9),
            (a.get(), 10)
        ]
    );
    assert_eq!(requeued[0].1, event(3, b"f3"));
    assert!(daemon.take_requeued().unwrap().is_empty(), "each once");
    assert_eq!(ids(&daemon.pending(a).unwrap()), vec![8, 9, 10]);

    // Purge: only the state and range asked for.
    assert_eq!(
        admin.purge(Some("b"), State::Pending, Some(5..=6)).unwrap(),
        2
    );
    assert_eq!(admin.purge(Some("b"), State::Dead, None).unwrap(), 1);
    assert_eq!(ids(&daemon.pending(b).unwrap()), vec![1, 3, 4, 7, 8, 9, 10]);
    assert!(admin.list(Some("b"), State::Dead, 100).unwrap().is_empty());
    // Event 5 is still acked by a, so it can still be replayed to a.
    assert_eq!(admin.replay("a", 5..=5).unwrap(), 1);
    assert_eq!(daemon.take_requeued().unwrap().len(), 1);
}

#[test]
fn pages_and_picked_ids_as_the_admin_page_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let daemon = open(&path);
    let a = daemon.processor("a").unwrap();
    let b = daemon.processor("b").unwrap();
    append_to(&daemon, &events(1..=8), &[a, b]);
    for id in 1..=8 {
        daemon.dead_letter(a, id, 1, "exit status 1");
    }
    daemon.dead_letter(b, 3, 2, "refused");
    daemon.flush().unwrap();

    let admin = open(&path);
    let page = |offset, limit| -> Vec<u64> {
        let entries = admin
            .list_page(Some("a"), State::Dead, offset, limit)
            .unwrap();
        entries.iter().map(|e| e.event.id).collect()
    };
    assert_eq!(page(0, 3), vec![1, 2, 3]);
    assert_eq!(page(3, 3), vec![4, 5, 6]);
    assert_eq!(page(6, 3), vec![7, 8]);
    assert!(page(9, 3).is_empty());
    let first = &admin.list_page(None, State::Dead, 0, 1).unwrap()[0];
    assert_eq!(first.event.time_ns, event(1, b"f1").time_ns);

    // Only the ids picked, of the processor named: b's dead letter 3 stays; an id twice, or
    // not dead, counts once or not at all.
    assert_eq!(admin.retry_dead_ids(Some("a"), &[2, 3, 3, 99]).unwrap(), 2);
    assert_eq!(ids(&daemon.pending(a).unwrap()), vec![2, 3]);
    assert_eq!(
        admin.purge_ids(Some("a"), State::Dead, &[5, 7, 2]).unwrap(),
        2
    );
    assert_eq!(page(0, 10), vec![1, 4, 6, 8]);
    assert_eq!(
        admin.list(Some("b"), State::Dead, 10).unwrap()[0].event.id,
        3
    );
    assert_eq!(admin.retry_dead_ids(Some("a"), &[u64::MAX]).unwrap(), 0);
    assert_eq!(admin.purge_ids(Some("a"), State::Dead, &[]).unwrap(), 0);
}

#[test]
fn retention_prunes_acknowledged_events_but_never_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = Journal::open(&JournalOptions {
        retain: 10,
        ..options(&path)
    })
    .unwrap();
    let p = journal.processor("p").unwrap();
    append_to(&journal, &events(1..=100), &[p]);
    for id in 1..=100 {
        if id != 5 && id != 50 {
            journal.ack(p, id);
        }
    }
    journal.dead_letter(p, 50, 2, "no");
    journal.flush().unwrap();

    let count = || -> i64 {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap()
    };
    // The writer prunes at most a second after the acknowledgements.
    wait_until(Duration::from_secs(10), "pruning", || count() == 12);
    assert_eq!(ids(&journal.pending(p).unwrap()), vec![5]);
    assert_eq!(journal.list(None, State::Dead, 10).unwrap()[0].event.id, 50);
    assert_eq!(journal.replay("p", 1..=90).unwrap(), 0, "pruned");
    assert_eq!(journal.replay("p", 91..=100).unwrap(), 10, "retained");

    // Acknowledged late, below the retained window: gone at once.
    journal.ack(p, 5);
    journal.flush().unwrap();
    assert_eq!(count(), 11);
    assert_eq!(journal.next_event_id(), 101);
}

#[test]
fn acks_from_many_threads_are_all_committed_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = Arc::new(open(&path));
    let p = journal.processor("p").unwrap();
    append_to(&journal, &events(1..=4000), &[p]);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                for id in (1..=4000).filter(|id| id % 4 == t) {
                    journal.ack(p, id);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // No flush: the background writer commits on its own.
    let reader = open(&path);
    let rp = reader.processor("p").unwrap();
    wait_until(Duration::from_secs(10), "background commit", || {
        reader.pending(rp).unwrap().is_empty()
    });
}

#[test]
fn snapshot_saves_loads_and_removes_trees() {
    use inotifier_journal::{EntryKind, SnapshotChange, SnapshotEntry};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let entry = |p: &[u8], inode, kind| SnapshotEntry {
        path: p.to_vec(),
        inode,
        size: inode * 10,
        mtime_ns: inode as i64 * 1000,
        kind,
    };
    {
        let journal = open(&path);
        assert_eq!(journal.load_snapshot("/srv/in").unwrap(), None);
        journal
            .replace_snapshot(
                "/srv/in",
                &[
                    entry(b"a", 1, EntryKind::Dir),
                    entry(b"a/x\xff", 2, EntryKind::File),
                    entry(b"a/y/z", 3, EntryKind::File),
                    entry(b"a0", 4, EntryKind::File),
                    entry(b"l", 5, EntryKind::Symlink),
                ],
            )
            .unwrap();
        journal.save_snapshot("/srv/empty", &[]).unwrap();
        journal
            .save_snapshot(
                "/srv/in",
                &[
                    SnapshotChange::Remove(b"a/y/z".to_vec()),
                    SnapshotChange::Remove(b"a/x\xff".to_vec()),
                    SnapshotChange::Remove(b"a".to_vec()),
                    SnapshotChange::Remove(b"l".to_vec()),
                    SnapshotChange::Upsert(entry(b"a0", 40, EntryKind::Other)),
                    SnapshotChange::Upsert(entry(b"b", 6, EntryKind::File)),
                ],
            )
            .unwrap();
    }
    let journal = open(&path);
    assert_eq!(
        journal.load_snapshot("/srv/in").unwrap(),
        Some(vec![
            entry(b"a0", 40, EntryKind::Other),
            entry(b"b", 6, EntryKind::File)
        ])
    );
    assert_eq!(journal.load_snapshot("/srv/empty").unwrap(), Some(vec![]));
    assert_eq!(journal.load_snapshot("/srv/other").unwrap(), None);
}

#[test]
fn dropping_the_journal_commits_its_queued_acks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        // The writer would wait an hour: only the drop can commit them.
        let journal = Journal::open(&JournalOptions {
            commit_interval: Duration::from_secs(3600),
            ..options(&path)
        })
        .unwrap();
        let p = journal.processor("p").unwrap();
        append_to(&journal, &events(1..=3), &[p, p]);
        journal.ack(p, 1);
        journal.dead_letter(p, 2, 1, "e");
    }
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    assert_eq!(ids(&journal.pending(p).unwrap()), vec![3]);
}

#[test]
fn the_journal_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Journal>();
    shareable::<JournalError>();
}

#[test]
fn pending_can_be_read_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    append_to(&journal, &events(1..=10), &[p]);
    journal.ack(p, 4);
    journal.flush().unwrap();
    let mut seen = Vec::new();
    let mut from = 0;
    loop {
        let page = journal.pending_from(p, from, 3).unwrap();
        let Some(last) = page.last() else { break };
        from = last.id + 1;
        seen.extend(ids(&page));
    }
    assert_eq!(seen, vec![1, 2, 3, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn the_backlog_reader_sees_what_each_processor_is_owed_while_the_journal_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open(&path);
    let uploads = journal.processor("uploads").unwrap();
    journal.processor("idle").unwrap();
    append_to(&journal, &events(1..=5), &[uploads]);
    journal.ack(uploads, 1);
    journal.ack(uploads, 2);
    journal.dead_letter(uploads, 3, 4, "refused");
    journal.flush().unwrap();

    // A second connection, read-only, beside the daemon's own.
    let reader = inotifier_journal::BacklogReader::open(&path).unwrap();
    let backlog = reader.read().unwrap();
    let row = |key: &str| backlog.iter().find(|row| row.key == key).unwrap().clone();
    assert_eq!(row("uploads").pending, 2);
    assert_eq!(row("uploads").dead, 1);
    // Event 4 is the oldest pending (its time is the test events' base plus its id).
    let oldest = 1_764_000_000_000_000_000 + 4;
    assert_eq!(row("uploads").oldest_pending_ns, Some(oldest));
    assert_eq!(
        row("uploads").oldest_pending_age(oldest + 1_500_000_000),
        Some(Duration::from_millis(1500))
    );
    assert_eq!((row("idle").pending, row("idle").dead), (0, 0));
    assert_eq!(row("idle").oldest_pending_ns, None);

    journal.ack(uploads, 4);
    journal.ack(uploads, 5);
    journal.flush().unwrap();
    let backlog = reader.read().unwrap();
    assert_eq!(
        backlog
            .iter()
            .find(|row| row.key == "uploads")
            .unwrap()
            .pending,
        0
    );
}
