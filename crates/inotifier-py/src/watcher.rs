//! `Watcher`: the engine for Python code without Django (`inotifier.watch`, `inotifier.awatch`).
//!
//! One engine per watcher, read by the caller: `next_batch` waits with the GIL released and
//! converts a whole batch under one GIL acquisition. With `IN_READY`, the ready stage runs
//! inside `next_batch`, which wakes up when its next settle timer runs out, as the CLI's
//! pipeline thread does.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inotifier_core::ready::{DEFAULT_SETTLE, ReadyOptions, ReadyStage, delivered_events};
use inotifier_core::{
    Batch, Engine, EngineOptions, Error, Filters, Glob, Mask, Stopper, WatchSpec,
};
use pyo3::exceptions::{
    PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList, PyString};

use crate::event;

/// Watches paths with one inotify engine; see `inotifier.watch` for the options.
#[pyclass(module = "inotifier._native", frozen)]
pub struct Watcher {
    /// None once closed, or once the engine stopped and everything it sent was delivered.
    state: Mutex<Option<Running>>,
    /// Outside the lock: `close` must stop the engine while `next_batch` holds the lock.
    stopper: Stopper,
}

struct Running {
    // Declared before `engine`, so dropped first: a reader blocked on a full channel can then
    // finish, which dropping the engine (it joins the reader) waits for.
    batches: Receiver<Batch>,
    /// Batches received while the watches were being added.
    early: VecDeque<Batch>,
    /// Only when IN_READY is asked for.
    ready: Option<ReadyStage>,
    /// Ready events are made without an id and the stage drops events: with the stage, what
    /// is delivered is numbered again.
    next_id: u64,
    engine: Engine,
}

#[pymethods]
impl Watcher {
    /// `paths` as bytes (os.fsencode), `mask` an int, a str (`"IN_CREATE|IN_DELETE"`) or a list
    /// of both, `settle` in seconds.
    #[new]
    // One parameter per keyword argument of the Python constructor.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (paths, mask, recursive=false, exclude=Vec::new(), include=Vec::new(), settle=None, temp_patterns=None))]
    fn new(
        py: Python<'_>,
        paths: Vec<Vec<u8>>,
        mask: &Bound<'_, PyAny>,
        recursive: bool,
        exclude: Vec<String>,
        include: Vec<String>,
        settle: Option<f64>,
        temp_patterns: Option<Vec<String>>,
    ) -> PyResult<Watcher> {
        if paths.is_empty() {
            return Err(PyValueError::new_err("no path to watch: give at least one"));
        }
        let mask = mask_from_python(mask)?;
        let ready_options = ready_options(mask, settle, temp_patterns)?;
        let filters = Filters {
            include: globs(&include)?,
            exclude: globs(&exclude)?,
        };
        let specs: Vec<WatchSpec> = paths
            .into_iter()
            .map(|path| {
                let mut spec = WatchSpec::new(OsString::from_vec(path), mask).recursive(recursive);
                spec.filters = filters.clone();
                spec
            })
            .collect();
        let running = py
            .detach(|| start(specs, mask, ready_options))
            .map_err(engine_error)?;
        Ok(Watcher {
            stopper: running.engine.stopper(),
            state: Mutex::new(Some(running)),
        })
    }

    /// Waits up to `timeout_ms` for events and returns them as a list of `inotifier.Event`
    /// (empty when none came in time), or None once the watcher is closed. An OSError if the
    /// engine failed.
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
        timeout_ms: u64,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let timeout = Duration::from_millis(timeout_ms);
        let received = py.detach(|| {
            let mut state = self.lock();
            let Some(running) = state.as_mut() else {
                return Ok(None);
            };
            match running.next_batch(timeout) {
                Some(batch) => Ok(Some(batch)),
                // The engine stopped by itself: it failed (or `close` raced us and will
                // find the state gone).
                None => {
                    let running = state.take().expect("checked above");
                    drop(running.batches);
                    running.engine.wait().map(|()| None)
                }
            }
        });
        let Some(batch) = received.map_err(engine_error)? else {
            return Ok(None);
        };
        let mut converter = event::Converter::new(py);
        let events = batch
            .iter()
            .map(|event| converter.convert(event))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Some(PyList::new(py, events)?))
    }

    /// Stops the engine and releases its inotify instance. Idempotent; events not yet
    /// returned are dropped.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            // Makes a `next_batch` waiting in another thread return now, releasing the lock.
            self.stopper.stop();
            let running = self.lock().take();
            drop(running);
        })
    }

    /// Whether `close` was called (or the engine stopped and everything was returned).
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.lock().is_none())
    }

    /// How many kernel watches (directories and files) are in place; 0 once closed.
    fn watch_count(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| match self.lock().as_ref() {
            Some(running) => running.engine.watch_count(),
            None => Ok(0),
        })
        .map_err(engine_error)
    }
}

impl Watcher {
    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        // A panic while holding the lock leaves a usable state: a batch at most is lost.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Running {
    /// The next non-empty batch (after the ready stage), an empty one at the timeout, or None
    /// once the engine has stopped and its channel is drained.
    fn next_batch(&mut self, timeout: Duration) -> Option<Batch> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = match self.early.pop_front() {
                Some(batch) => self.process(batch),
                None => {
                    let wake = match self.ready.as_ref().and_then(ReadyStage::next_deadline) {
                        Some(settled) => settled.min(deadline),
                        None => deadline,
                    };
                    match self
                        .batches
                        .recv_timeout(wake.saturating_duration_since(Instant::now()))
                    {
                        Ok(batch) => self.process(batch),
                        Err(RecvTimeoutError::Timeout) => self.poll_ready(),
                        // Files still settling are not ready: nothing more to deliver.
                        Err(RecvTimeoutError::Disconnected) => return None,
                    }
                }
            };
            if !events.is_empty() || Instant::now() >= deadline {
                return Some(events);
            }
        }
    }

    fn process(&mut self, batch: Batch) -> Batch {
        match self.ready.as_mut() {
            Some(stage) => {
                let events = stage.process(batch, Instant::now());
                self.renumber(events)
            }
            None => batch,
        }
    }

    fn poll_ready(&mut self) -> Batch {
        match self.ready.as_mut() {
            Some(stage) => {
                let events = stage.poll(Instant::now());
                self.renumber(events)
            }
            None => Batch::new(),
        }
    }

    fn renumber(&mut self, mut events: Batch) -> Batch {
        for event in &mut events {
            event.id = self.next_id;
            self.next_id += 1;
        }
        events
    }
}

/// Starts the engine and adds every watch, draining its channel meanwhile: events of the first
/// paths could otherwise fill it and block the reader before it adds the last ones.
fn start(
    specs: Vec<WatchSpec>,
    mask: Mask,
    ready_options: Option<ReadyOptions>,
) -> Result<Running, Error> {
    let (engine, batches) = Engine::start(EngineOptions::default())?;
    let mut early = VecDeque::new();
    let added = std::thread::scope(|scope| {
        let adder = scope.spawn(|| {
            specs
                .into_iter()
                .map(|spec| engine.add_watch(spec))
                .collect::<Result<Vec<_>, Error>>()
        });
        while !adder.is_finished() {
            if let Ok(batch) = batches.recv_timeout(Duration::from_millis(5)) {
                early.push_back(batch);
            }
        }
        adder.join().expect("adding watches does not panic")
    });
    early.extend(batches.try_iter());
    let ready = match (&added, ready_options) {
        (Ok(ids), Some(options)) => {
            let mut stage = ReadyStage::new();
            for &id in ids {
                stage.set_watch(id, mask, Some(options.clone()));
            }
            Some(stage)
        }
        _ => None,
    };
    let running = Running {
        batches,
        early,
        ready,
        next_id: 1,
        engine,
    };
    // On an error `running` is dropped here, which stops the engine in the right order.
    added.map(|_| running)
}

/// An int, a str parsed like the CLI's `-e`, or an iterable of both (united).
fn mask_from_python(value: &Bound<'_, PyAny>) -> PyResult<Mask> {
    let mask = mask_item(value).or_else(|error| {
        if value.is_instance_of::<PyString>() || value.is_instance_of::<PyInt>() {
            return Err(error);
        }
        let mut items = value
            .try_iter()
            .map_err(|_| PyTypeError::new_err("mask must be an int, a str or a list of them"))?;
        items.try_fold(Mask::empty(), |mask, item| {
            Ok(mask.union(mask_item(&item?)?))
        })
    })?;
    if delivered_events(mask).is_empty() {
        return Err(PyValueError::new_err(format!(
            "mask {:#x} asks for no event; name some, e.g. \"IN_CREATE|IN_DELETE\" or ALL_EVENTS",
            mask.bits()
        )));
    }
    Ok(mask)
}

fn mask_item(value: &Bound<'_, PyAny>) -> PyResult<Mask> {
    if value.is_instance_of::<PyString>() {
        let text: String = value.extract()?;
        return text
            .parse::<Mask>()
            .map_err(|error| PyValueError::new_err(error.to_string()));
    }
    if value.is_instance_of::<PyInt>() {
        return value.extract::<u32>().map(Mask).map_err(|_| {
            PyValueError::new_err(format!("mask {value} is not a 32-bit unsigned value"))
        });
    }
    Err(PyTypeError::new_err(format!(
        "mask items must be ints or strs, not {}",
        value.get_type().name()?
    )))
}

/// The ready options when IN_READY is asked for; settle and temp_patterns without it are an
/// error, since they would silently do nothing.
fn ready_options(
    mask: Mask,
    settle: Option<f64>,
    temp_patterns: Option<Vec<String>>,
) -> PyResult<Option<ReadyOptions>> {
    if !mask.contains(Mask::IN_READY) {
        if settle.is_some() || temp_patterns.is_some() {
            return Err(PyValueError::new_err(
                "settle and temp_patterns only apply to IN_READY: add it to the mask",
            ));
        }
        return Ok(None);
    }
    let mut options = ReadyOptions {
        settle: DEFAULT_SETTLE,
        ..ReadyOptions::default()
    };
    if let Some(seconds) = settle {
        options.settle = Duration::try_from_secs_f64(seconds).map_err(|_| {
            PyValueError::new_err(format!("settle {seconds} is not a number of seconds >= 0"))
        })?;
    }
    if let Some(patterns) = temp_patterns {
        if let Some(pattern) = patterns.iter().find(|pattern| pattern.contains('/')) {
            return Err(PyValueError::new_err(format!(
                "temp pattern {pattern:?} contains /: temporary-file patterns are matched \
                 against file names"
            )));
        }
        options.temp_patterns = globs(&patterns)?;
    }
    Ok(Some(options))
}

fn globs(patterns: &[String]) -> PyResult<Vec<Glob>> {
    patterns
        .iter()
        .map(|pattern| {
            Glob::new(pattern).map_err(|error| {
                PyValueError::new_err(format!("invalid glob {pattern:?}: {error}"))
            })
        })
        .collect()
}

/// The engine's error as the matching OSError subclass (with its errno), ValueError for a bad
/// glob; the message is the engine's, which says what to do about it.
fn engine_error(error: Error) -> PyErr {
    let message = error.to_string();
    match &error {
        Error::NotFound { .. } => PyFileNotFoundError::new_err((libc_errno::ENOENT, message)),
        Error::PermissionDenied { .. } => PyPermissionError::new_err((libc_errno::EACCES, message)),
        Error::TooManyWatches { .. } => PyOSError::new_err((libc_errno::ENOSPC, message)),
        Error::TooManyInstances { .. } => PyOSError::new_err((libc_errno::EMFILE, message)),
        Error::Glob(_) => PyValueError::new_err(message),
        Error::Io { source, .. } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, message)),
            None => PyOSError::new_err(message),
        },
        _ => PyRuntimeError::new_err(message),
    }
}

/// The errno values raised with the engine's errors (Linux, every architecture).
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const EACCES: i32 = 13;
    pub const EMFILE: i32 = 24;
    pub const ENOSPC: i32 = 28;
}
