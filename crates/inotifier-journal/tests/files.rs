//! The journal's files: mode 0600 whatever the umask, never through a symlink.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::*;
use inotifier_journal::{Journal, JournalError};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

fn companion(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    name.into()
}

#[test]
fn journal_wal_and_shm_are_0600_even_with_an_open_umask() {
    // This binary's only test that cares about the umask, so changing it is safe.
    // SAFETY: umask only swaps the process's mask.
    unsafe { libc::umask(0) };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open(&path);
    let p = journal.processor("p").unwrap();
    append_to(&journal, &events(1..=3), &[p]);
    for suffix in ["", "-wal", "-shm"] {
        let file = companion(&path, suffix);
        assert!(file.exists(), "{} exists while open", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(journal);

    // One left world-readable (by hand, or an older version) is tightened on open.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let journal = open(&path);
    append_to(&journal, &events(4..=4), &[journal.processor("p").unwrap()]);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&companion(&path, "-wal")), 0o600);
}

#[test]
fn a_symlinked_journal_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs::write(&target, b"precious").unwrap();
    let path = dir.path().join("journal.db");
    symlink(&target, &path).unwrap();
    let err = Journal::open(&options(&path)).err().expect("refused");
    assert!(matches!(err, JournalError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(fs::read(&target).unwrap(), b"precious");

    // A dangling one too: creating the journal must not create its target.
    let dangling = dir.path().join("dangling.db");
    symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let err = Journal::open(&options(&dangling)).err().expect("refused");
    assert!(matches!(err, JournalError::Symlink { .. }), "{err}");
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn a_symlinked_wal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    drop(open(&path));
    let target = dir.path().join("elsewhere");
    fs::write(&target, b"").unwrap();
    symlink(&target, companion(&path, "-wal")).unwrap();
    let err = Journal::open(&options(&path)).err().expect("refused");
    assert!(matches!(err, JournalError::Symlink { .. }), "{err}");
}

#[test]
fn a_missing_directory_is_a_plain_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/journal.db");
    let err = Journal::open(&options(&path)).err().expect("fails");
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("no/such/journal.db"), "{err}");
}
