//! The `jsonl` processor: appends each event as one JSON line to a file.
//!
//! The line is the event's JSON object, as [`inotifier_core::json`] describes it (the same as
//! the `inotifier watch` output): keys `id`, `mask`, `maskname`, `path`, `name`, `pathname`,
//! `dir`, `wd`, `cookie`, `src_pathname`, `synthetic`, `origin`, `time`. Bytes of a name that
//! are not UTF-8 are written as `\udcXX` escapes, which Python's
//! `os.fsencode(json.loads(line)["pathname"])` turns back into the exact bytes.
//!
//! # Options
//! | option | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `path` | string | required | The file to append to; relative to the configuration file's directory. Created with mode `0640` (less the umask) if missing; its directory must exist. A file that cannot be opened (permissions, a symbolic link, a directory) is an error when the processor is built; [`crate::validate`] checks the same without creating it. |
//! | `fsync` | boolean | `false` | `fdatasync` the file after every line: an event survives a power cut once processed, at the cost of a disk flush per event. |
//!
//! ```toml
//! processor = "jsonl"
//! options = { path = "/var/log/inotifier/uploads.jsonl", fsync = false }
//! ```
//!
//! # Guarantees
//! The file is opened once, when the processor is built, with
//! `O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC|O_NOFOLLOW`: a symbolic link at `path` is refused (so a
//! user who can write to its directory cannot redirect the daemon's writes), and so is
//! anything but a regular file. Each line is written with a single `write()` on the
//! `O_APPEND` descriptor, so lines from concurrent workers, or from other processes appending
//! to the same file, never interleave.
//!
//! A file rotated by renaming keeps being written at its new name until the daemon is
//! restarted or reloaded; rotate with `copytruncate` instead.
//!
//! # Failures
//! A failed write (`ENOSPC`, `EDQUOT`, `EIO`, ...) is a retryable failure. Should a write be
//! cut short (a disk filling up mid-line), a newline ends the partial line so that the next
//! lines stay valid, and the event is retried: a reader skips a line that is not valid JSON.
//! A failed `fsync` is retryable too, and the retry appends the line again: an event may then
//! be written twice, never lost.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use inotifier_core::Event;
use inotifier_core::json::event_json;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::BuildError;
use crate::{ProcessError, Processor, options};

pub mod read;

pub(crate) const NAME: &str = "jsonl";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlOptions {
    path: PathBuf,
    #[serde(default)]
    fsync: bool,
}

/// Appends one JSON line per event; see the [module docs](self).
#[derive(Debug)]
pub struct JsonlProcessor {
    path: PathBuf,
    file: File,
    fsync: bool,
}

/// The options checked, the path resolved; nothing opened.
fn checked(
    options: &Map<String, Value>,
    base_dir: &Path,
) -> Result<(PathBuf, JsonlOptions), BuildError> {
    let parsed: JsonlOptions = options::parse(NAME, options)?;
    if parsed.path.as_os_str().is_empty() {
        return Err(BuildError::invalid(NAME, "path", "the path is empty"));
    }
    let path = options::resolve(base_dir, &parsed.path);
    match std::fs::symlink_metadata(&path) {
        Ok(metadata) => {
            let kind = metadata.file_type();
            if kind.is_symlink() {
                return Err(BuildError::invalid(
                    NAME,
                    "path",
                    format!(
                        "{} is a symbolic link: give the path of the file itself",
                        path.display()
                    ),
                ));
            }
            if !kind.is_file() {
                let what = if kind.is_dir() {
                    "a directory"
                } else if kind.is_fifo() {
                    "a named pipe"
                } else {
                    "not a regular file"
                };
                return Err(BuildError::invalid(
                    NAME,
                    "path",
                    format!("{} is {what}: give the path of a file", path.display()),
                ));
            }
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(BuildError::invalid(
                    NAME,
                    "path",
                    format!(
                        "the directory {} does not exist: create it first",
                        parent.display()
                    ),
                ));
            }
        }
        Err(error) => {
            return Err(BuildError::invalid(
                NAME,
                "path",
                format!("cannot inspect {}: {error}", path.display()),
            ));
        }
    }
    Ok((path, parsed))
}

impl JsonlProcessor {
    pub(crate) fn build(
        options: &Map<String, Value>,
        base_dir: &Path,
    ) -> Result<JsonlProcessor, BuildError> {
        let (path, parsed) = checked(options, base_dir)?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|error| {
                let reason = if error.raw_os_error() == Some(libc::ELOOP) {
                    "it is a symbolic link".to_string()
                } else {
                    error.to_string()
                };
                BuildError::invalid(
                    NAME,
                    "path",
                    format!("cannot open {} to append: {reason}", path.display()),
                )
            })?;
        Ok(JsonlProcessor {
            path,
            file,
            fsync: parsed.fsync,
        })
    }

    pub fn validate(options: &Map<String, Value>, base_dir: &Path) -> Result<(), BuildError> {
        checked(options, base_dir).map(drop)
    }

    /// The file appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failure(&self, what: &str, error: std::io::Error) -> ProcessError {
        ProcessError::retryable(format!(
            "jsonl: cannot {what} {}: {error}",
            self.path.display()
        ))
    }
}

impl Processor for JsonlProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        let mut line = Vec::with_capacity(256);
        event_json(&mut line, event);
        line.push(b'\n');
        let written = loop {
            match (&self.file).write(&line) {
                Ok(written) => break written,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.failure("append to", error)),
            }
        };
        if written < line.len() {
            // End the partial line so the lines after it stay parseable; the event is retried.
            let _ = (&self.file).write(b"\n");
            return Err(ProcessError::retryable(format!(
                "jsonl: short write to {} ({written} of {} bytes; the disk may be full)",
                self.path.display(),
                line.len()
            )));
        }
        if self.fsync {
            self.file
                .sync_data()
                .map_err(|error| self.failure("fsync", error))?;
        }
        Ok(())
    }

    fn close(&self) {
        if let Err(error) = self.file.sync_data() {
            tracing::warn!(path = %self.path.display(), "jsonl: fsync on close failed: {error}");
        }
    }
}
