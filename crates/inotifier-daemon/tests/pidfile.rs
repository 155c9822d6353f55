//! The pid file on a real filesystem: locking, refusal, takeover, and the places it refuses.

use std::os::unix::fs::PermissionsExt;

use inotifier_daemon::pidfile::{self, Holder, PidFile, PidFileError};

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn the_holder_is_running_and_a_second_acquire_names_it() {
    let dir = private_dir();
    let path = dir.path().join("inotifier.pid");
    let held = PidFile::acquire(&path).unwrap();
    let me = std::process::id() as i32;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{me}\n"));
    assert_eq!(pidfile::probe(&path).unwrap(), Holder::Running { pid: me });
    match PidFile::acquire(&path) {
        Err(PidFileError::Running { pid, .. }) => assert_eq!(pid, me),
        other => panic!("a second acquire must be refused, got {other:?}"),
    }
    let message = PidFile::acquire(&path).unwrap_err().to_string();
    assert!(
        message.contains(&format!("already running with pid {me}")),
        "{message}"
    );
    held.remove();
    assert!(!path.exists());
    assert_eq!(
        pidfile::probe(&path).unwrap(),
        Holder::NotRunning { stale_pid: None }
    );
}

#[test]
fn a_stale_pid_file_is_reported_and_taken_over() {
    let dir = private_dir();
    let path = dir.path().join("inotifier.pid");
    std::fs::write(&path, "999999\n").unwrap();
    assert_eq!(
        pidfile::probe(&path).unwrap(),
        Holder::NotRunning {
            stale_pid: Some(999999)
        }
    );
    let held = PidFile::acquire(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(held);
    // Dropped without remove (as after a crash): the file stays, unlocked.
    assert!(matches!(
        pidfile::probe(&path).unwrap(),
        Holder::NotRunning { stale_pid: Some(_) }
    ));
}

#[test]
fn a_symlink_at_the_pid_file_is_never_followed() {
    let dir = private_dir();
    let target = dir.path().join("victim");
    std::fs::write(&target, "precious").unwrap();
    let path = dir.path().join("inotifier.pid");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let error = PidFile::acquire(&path).unwrap_err().to_string();
    assert!(error.contains("symbolic link"), "{error}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let dir = private_dir();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let error = PidFile::acquire(&shared.join("inotifier.pid"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("writable by other users"), "{error}");
    assert!(error.contains("XDG_RUNTIME_DIR"), "{error}");
    assert!(!shared.join("inotifier.pid").exists());
}

#[test]
fn a_missing_directory_is_created_private() {
    let dir = private_dir();
    let path = dir.path().join("run/inotifier/inotifier.pid");
    let held = PidFile::acquire(&path).unwrap();
    let mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    held.remove();
}

#[test]
fn waiting_for_release_returns_once_the_lock_is_gone() {
    let dir = private_dir();
    let path = dir.path().join("inotifier.pid");
    let held = PidFile::acquire(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waited = path.clone();
    std::thread::spawn(move || tx.send(pidfile::wait_released(&waited)).unwrap());
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(200))
            .is_err(),
        "returned while the lock was held"
    );
    held.remove();
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("not released")
        .unwrap();
}
