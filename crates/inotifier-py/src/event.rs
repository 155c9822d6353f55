//! `inotifier.Event`: the event handed to Python processors and yielded by `inotifier.watch`.
//!
//! A native class rather than a Python one because the daemon makes one per event: building
//! it from Rust is a single allocation, where a Python `__init__` costs a call, a dict of
//! keyword arguments and three `os.fsdecode` calls, which measured as most of the cost of
//! delivering an event to a no-op processor.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use inotifier_core::{Event, Mask};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// One file event.
///
/// pyinotify's attributes: ``mask``, ``maskname`` (``"IN_CREATE|IN_ISDIR"``), ``path`` (the
/// watched directory), ``name`` (the entry in it, ``""`` for events about ``path`` itself),
/// ``pathname``, ``dir``, ``wd``, ``cookie`` and ``src_pathname`` (on an ``IN_MOVED_TO``
/// paired with its ``IN_MOVED_FROM``: where the entry came from, else ``None``). inotifier's:
/// ``id`` (increases per event; a redelivery after a restart keeps it), ``origin``
/// (``"kernel"``, or ``"scan"``/``"rescan"``/``"catchup"`` for events the engine
/// synthesized), ``synthetic`` and ``time`` (seconds since the epoch).
/// Names are ``str`` decoded as ``os.fsdecode`` does; ``os.fsencode(event.name)`` gives the
/// kernel's bytes. Like pyinotify's events, an event takes attributes of the processor's own.
#[pyclass(name = "Event", module = "inotifier", subclass, dict)]
pub struct PyEvent {
    #[pyo3(get, set)]
    id: u64,
    #[pyo3(get, set)]
    mask: u32,
    #[pyo3(get, set)]
    cookie: u32,
    #[pyo3(get, set)]
    wd: i32,
    #[pyo3(get, set)]
    path: Py<PyString>,
    #[pyo3(get, set)]
    name: Py<PyString>,
    #[pyo3(get, set)]
    src_pathname: Option<Py<PyString>>,
    #[pyo3(get, set)]
    origin: Py<PyString>,
    #[pyo3(get, set)]
    time: f64,
}

#[pymethods]
impl PyEvent {
    /// Paths and names may be given as ``str`` or as the kernel's ``bytes``.
    #[new]
    // One parameter per keyword argument, as pyinotify's event has attributes.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, mask, path, name=None, wd=-1, cookie=0, src_pathname=None, id=0, origin=None, time=0.0))]
    fn new(
        py: Python<'_>,
        mask: u32,
        path: &Bound<'_, PyAny>,
        name: Option<&Bound<'_, PyAny>>,
        wd: i32,
        cookie: u32,
        src_pathname: Option<&Bound<'_, PyAny>>,
        id: u64,
        origin: Option<Bound<'_, PyString>>,
        time: f64,
    ) -> PyResult<PyEvent> {
        Ok(PyEvent {
            id,
            mask,
            cookie,
            wd,
            path: as_str(path)?,
            name: match name {
                Some(name) => as_str(name)?,
                None => PyString::intern(py, "").unbind(),
            },
            src_pathname: src_pathname.map(as_str).transpose()?,
            origin: origin
                .unwrap_or_else(|| PyString::intern(py, "kernel"))
                .unbind(),
            time,
        })
    }

    #[getter]
    fn maskname(&self) -> String {
        Mask(self.mask).name()
    }

    /// ``path/name``, or ``path`` for events about the watched object itself.
    #[getter]
    fn pathname<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let path = self.path.bind(py).clone().into_any();
        let name = self.name.bind(py);
        if name.len()? == 0 {
            return Ok(path);
        }
        // Concatenated as Python strings: a name decoded with surrogateescape is not valid
        // UTF-8 and cannot go through a Rust string.
        let path = if path.call_method1("endswith", ("/",))?.is_truthy()? {
            path
        } else {
            path.add("/")?
        };
        path.add(name)
    }

    #[getter]
    fn dir(&self) -> bool {
        self.mask & Mask::IN_ISDIR.bits() != 0
    }

    /// Made by the engine (a scan, rescan or catch-up) rather than read from the kernel.
    #[getter]
    fn synthetic(&self, py: Python<'_>) -> bool {
        !self.origin.bind(py).eq("kernel")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut fields = vec![
            format!("id={}", self.id),
            format!("mask={:#x}", self.mask),
            format!("maskname={}", self.maskname()),
            format!("pathname={}", self.pathname(py)?.repr()?),
            format!("wd={}", self.wd),
            format!("cookie={}", self.cookie),
        ];
        if let Some(source) = &self.src_pathname {
            fields.push(format!("src_pathname={}", source.bind(py).repr()?));
        }
        if self.synthetic(py) {
            fields.push(format!("origin={}", self.origin.bind(py)));
        }
        Ok(format!("<Event {}>", fields.join(" ")))
    }
}

/// A ``str`` as it is, ``bytes`` as ``os.fsdecode`` decodes them.
fn as_str(value: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.clone().unbind());
    }
    let bytes = value.cast::<PyBytes>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "paths and names are str or bytes, not {}",
            value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    Ok(decode(
        value.py(),
        std::ffi::OsStr::from_bytes(bytes.as_bytes()),
    ))
}

fn decode<'py>(py: Python<'py>, text: &std::ffi::OsStr) -> Py<PyString> {
    // PyO3 converts an OsStr as os.fsdecode does (surrogateescape for undecodable bytes).
    text.into_pyobject(py)
        .expect("converting an OsStr cannot fail")
        .unbind()
}

/// Makes `inotifier.Event`s from engine events, reusing the `str` of a directory for the
/// events that follow in it (a burst is mostly events of one directory).
pub struct Converter<'py> {
    py: Python<'py>,
    last_path: Option<(Arc<Path>, Py<PyString>)>,
}

impl<'py> Converter<'py> {
    pub fn new(py: Python<'py>) -> Converter<'py> {
        Converter {
            py,
            last_path: None,
        }
    }

    pub fn convert(&mut self, event: &Event) -> PyResult<Bound<'py, PyEvent>> {
        let py = self.py;
        let path = match &self.last_path {
            Some((known, text)) if Arc::ptr_eq(known, &event.path) => text.clone_ref(py),
            _ => {
                let text = decode(py, event.path.as_os_str());
                self.last_path = Some((event.path.clone(), text.clone_ref(py)));
                text
            }
        };
        let fields = PyEvent {
            id: event.id,
            mask: event.mask.bits(),
            cookie: event.cookie,
            wd: event.wd,
            path,
            name: decode(py, &event.name),
            src_pathname: event
                .src_pathname
                .as_ref()
                .map(|source| decode(py, source.as_os_str())),
            origin: PyString::intern(py, event.origin.as_str()).unbind(),
            time: event.time_ns as f64 / 1e9,
        };
        Bound::new(py, fields)
    }
}
