//! `doctor`: the checks of `inotifier doctor` for the Django app's configuration
//! (`manage.py inotifier_doctor`), the same functions of `inotifier_daemon::doctor`.

use std::time::Duration;

use inotifier_daemon::doctor::{DoctorOptions, examine};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The findings for the daemon configuration `config_json` (the document of
/// `inotifier.settings.daemon_config`), as dicts `{level, check, what, hint}`, `level` being
/// "ok", "warning" or "problem". `connect_timeout` bounds each broker or webhook connection,
/// `walk_limit` the counting of directories below recursive watches (seconds).
#[pyfunction]
#[pyo3(signature = (config_json, connect_timeout=5.0, walk_limit=30.0))]
pub fn doctor<'py>(
    py: Python<'py>,
    config_json: &str,
    connect_timeout: f64,
    walk_limit: f64,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let seconds = |value: f64, name: &str| {
        Duration::try_from_secs_f64(value).map_err(|_| {
            PyValueError::new_err(format!("{name} {value} is not a number of seconds >= 0"))
        })
    };
    let options = DoctorOptions {
        connect_timeout: seconds(connect_timeout, "connect_timeout")?,
        walk_limit: seconds(walk_limit, "walk_limit")?,
    };
    let (config, native) =
        crate::config::from_json(config_json).map_err(|e| PyValueError::new_err(e.to_string()))?;
    // Connections and the directory walk take a while: other Python threads run meanwhile.
    let findings = py.detach(|| {
        inotifier_sinks::environment::with_given(&native.environment, || {
            examine(&config, &native.base_dir, &options)
        })
    });
    findings
        .into_iter()
        .map(|finding| {
            let dict = PyDict::new(py);
            dict.set_item("level", finding.level.as_str())?;
            dict.set_item("check", finding.check)?;
            dict.set_item("what", finding.what)?;
            dict.set_item("hint", finding.hint)?;
            Ok(dict)
        })
        .collect()
}
