//! Engine events as `inotifier.Event` objects: the one conversion used by the daemon's Python
//! processors and by `Watcher` alike.

use std::os::unix::ffi::OsStrExt;

use inotifier_core::Event;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// Calls `event_class` (`inotifier.Event`) with the fields of `event`. Names go over as bytes:
/// the Python side decodes them with os.fsdecode, losslessly.
pub fn to_python<'py>(
    event_class: &Bound<'py, PyAny>,
    event: &Event,
) -> PyResult<Bound<'py, PyAny>> {
    let py = event_class.py();
    let fields = PyDict::new(py);
    fields.set_item("id", event.id)?;
    fields.set_item("mask", event.mask.bits())?;
    fields.set_item("cookie", event.cookie)?;
    fields.set_item("wd", event.wd)?;
    fields.set_item("path", PyBytes::new(py, event.path.as_os_str().as_bytes()))?;
    fields.set_item("name", PyBytes::new(py, event.name.as_bytes()))?;
    let source = event
        .src_pathname
        .as_ref()
        .map(|source| PyBytes::new(py, source.as_os_str().as_bytes()));
    fields.set_item("src_pathname", source)?;
    fields.set_item("origin", event.origin.as_str())?;
    fields.set_item("time", event.time_ns as f64 / 1e9)?;
    event_class.call((), Some(&fields))
}
