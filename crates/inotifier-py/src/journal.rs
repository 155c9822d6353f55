//! The journal commands of `manage.py inotifier_journal`, as `inotifier journal` runs them:
//! each function takes the journal's path (from the settings) and returns plain Python values
//! for the command to print. Errors are `RuntimeError`s whose message says what to do (the
//! journal's own: a corrupt one names the recovery command).

use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use inotifier_core::json::event_json;
use inotifier_journal::{Journal, JournalOptions, State};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn error(error: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(error.to_string())
}

/// Opens an existing journal: the admin commands never create one by mistake.
fn open(path: &Path) -> PyResult<Journal> {
    match fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(error(format!(
                "the daemon has not run with these settings yet: no journal at {} (the daemon \
                 creates it when it starts)",
                path.display()
            )));
        }
        Err(e) => return Err(error(format!("cannot read {}: {e}", path.display()))),
    }
    Journal::open(&JournalOptions::new(path)).map_err(error)
}

fn range(first: Option<u64>, last: Option<u64>) -> PyResult<Option<RangeInclusive<u64>>> {
    match (first, last) {
        (None, None) => Ok(None),
        (Some(first), Some(last)) if first <= last => Ok(Some(first..=last)),
        (Some(_), Some(_)) => Err(PyValueError::new_err("the first id is above the last")),
        _ => Err(PyValueError::new_err("give both the first and the last id")),
    }
}

fn state(dead: bool) -> State {
    if dead { State::Dead } else { State::Pending }
}

/// Per processor: `{"key", "pending", "dead", "oldest_pending", "last_acked"}` (ids or None).
#[pyfunction]
pub fn journal_summary<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let summary = py.detach(|| open(&path)?.summary().map_err(error))?;
    summary
        .into_iter()
        .map(|s| {
            let row = PyDict::new(py);
            row.set_item("key", s.key)?;
            row.set_item("pending", s.pending)?;
            row.set_item("dead", s.dead)?;
            row.set_item("oldest_pending", s.oldest_pending)?;
            row.set_item("last_acked", s.last_acked)?;
            Ok(row)
        })
        .collect()
}

/// Up to `limit` pending (or dead) entries, of one processor or all, in id order, after
/// skipping the first `offset` (a page of the admin's listing): `{"id", "processor", "state",
/// "mask", "maskname", "pathname", "attempts", "error", "time_ns", "json"}`; `pathname` as
/// `os.fsdecode` gives it, `time_ns` when the event happened (nanoseconds since the epoch),
/// `json` the event's line as `inotifier watch` writes it.
#[pyfunction]
#[pyo3(signature = (path, processor=None, dead=false, limit=100, offset=0))]
pub fn journal_list<'py>(
    py: Python<'py>,
    path: PathBuf,
    processor: Option<String>,
    dead: bool,
    limit: usize,
    offset: usize,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let entries = py.detach(|| {
        open(&path)?
            .list_page(processor.as_deref(), state(dead), offset, limit)
            .map_err(error)
    })?;
    entries
        .into_iter()
        .map(|entry| {
            let row = PyDict::new(py);
            let mut line = Vec::new();
            event_json(&mut line, &entry.event);
            row.set_item("id", entry.event.id)?;
            row.set_item("processor", entry.processor)?;
            row.set_item("state", entry.state.as_str())?;
            row.set_item("mask", entry.event.mask.bits())?;
            row.set_item("maskname", entry.event.mask.name())?;
            row.set_item("pathname", entry.event.pathname())?;
            row.set_item("attempts", entry.attempts)?;
            row.set_item("error", entry.error)?;
            row.set_item("time_ns", entry.event.time_ns)?;
            row.set_item("json", String::from_utf8_lossy(&line).into_owned())?;
            Ok(row)
        })
        .collect()
}

/// Which events a retry or purge covers: a range `first..=last`, or the ids picked on the
/// admin page; not both.
enum Ids {
    Range(Option<RangeInclusive<u64>>),
    Picked(Vec<u64>),
}

fn ids(first: Option<u64>, last: Option<u64>, picked: Option<Vec<u64>>) -> PyResult<Ids> {
    match picked {
        None => Ok(Ids::Range(range(first, last)?)),
        Some(_) if first.is_some() || last.is_some() => Err(PyValueError::new_err(
            "give either first and last or ids, not both",
        )),
        Some(picked) => Ok(Ids::Picked(picked)),
    }
}

/// Makes dead-lettered events pending again (a running daemon picks them up); how many. `ids`
/// (a list) instead of `first`/`last`: only those.
#[pyfunction]
#[pyo3(signature = (path, processor=None, first=None, last=None, ids=None))]
pub fn journal_retry(
    py: Python<'_>,
    path: PathBuf,
    processor: Option<String>,
    first: Option<u64>,
    last: Option<u64>,
    ids: Option<Vec<u64>>,
) -> PyResult<usize> {
    let ids = self::ids(first, last, ids)?;
    py.detach(|| {
        let journal = open(&path)?;
        match ids {
            Ids::Range(range) => journal.retry_dead(processor.as_deref(), range),
            Ids::Picked(ids) => journal.retry_dead_ids(processor.as_deref(), &ids),
        }
        .map_err(error)
    })
}

/// Deletes dead (or pending) events for good; how many. `ids` (a list) instead of
/// `first`/`last`: only those. The caller guards against purging every pending event by
/// accident.
#[pyfunction]
#[pyo3(signature = (path, dead, processor=None, first=None, last=None, ids=None))]
pub fn journal_purge(
    py: Python<'_>,
    path: PathBuf,
    dead: bool,
    processor: Option<String>,
    first: Option<u64>,
    last: Option<u64>,
    ids: Option<Vec<u64>>,
) -> PyResult<usize> {
    let ids = self::ids(first, last, ids)?;
    py.detach(|| {
        let journal = open(&path)?;
        match ids {
            Ids::Range(range) => journal.purge(processor.as_deref(), state(dead), range),
            Ids::Picked(ids) => journal.purge_ids(processor.as_deref(), state(dead), &ids),
        }
        .map_err(error)
    })
}

/// Makes the acknowledged events of `processor` with ids `first..=last` pending again; how many.
#[pyfunction]
pub fn journal_replay(
    py: Python<'_>,
    path: PathBuf,
    processor: String,
    first: u64,
    last: u64,
) -> PyResult<usize> {
    let ids = range(Some(first), Some(last))?.expect("both given");
    py.detach(|| open(&path)?.replay(&processor, ids).map_err(error))
}

/// Reads the whole file; a RuntimeError names the damage and the recovery command.
#[pyfunction]
pub fn journal_check(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| open(&path)?.check().map_err(error))
}

/// Moves a damaged journal aside and salvages it into a fresh one; the report, as text. The
/// caller makes sure no daemon runs.
#[pyfunction]
pub fn journal_recover(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| {
        if fs::symlink_metadata(&path).is_err() {
            return Err(error(format!(
                "no journal at {}: nothing to recover",
                path.display()
            )));
        }
        Journal::recover(&path)
            .map(|report| report.to_string())
            .map_err(error)
    })
}

/// Moves a journal aside so that the next start makes a new one (see `inotifier journal
/// reset`); where it went. Refused (RuntimeError) while a daemon holds the journal.
#[pyfunction]
pub fn journal_reset(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| {
        if fs::symlink_metadata(&path).is_err() {
            return Err(error(format!(
                "no journal at {}: nothing to reset",
                path.display()
            )));
        }
        Journal::reset(&path)
            .map(|aside| aside.display().to_string())
            .map_err(error)
    })
}

/// Appends the events of the JSON-lines file `jsonl` (as the jsonl processor writes them) as
/// pending for `processor`, with new ids; `(first, last)` ids given, or None for an empty
/// file. A line that is not an event appends nothing (a ValueError names `FILE:LINE`).
/// Creates the journal if need be.
#[pyfunction]
pub fn journal_import(
    py: Python<'_>,
    path: PathBuf,
    jsonl: PathBuf,
    processor: String,
) -> PyResult<Option<(u64, u64)>> {
    py.detach(|| {
        let events =
            inotifier_sinks::jsonl::read::read_file(&jsonl).map_err(PyValueError::new_err)?;
        let journal = Journal::open(&JournalOptions::new(&path)).map_err(error)?;
        journal.import(&processor, events).map_err(error)
    })
}
