//! Python processors run by the Rust daemon: each event becomes an `inotifier.Event` and is
//! handed to the processor object (pyinotify style: the object is called with the event) on the
//! router's worker thread. The GIL is taken once per batch of events, not per event, and
//! released while the worker waits for more.

use std::sync::Arc;

use inotifier_core::Event;
use inotifier_daemon::{NativeProcessors, ProcessorFactory, WatchConfig};
use inotifier_sinks::{BatchOutcome, BuildContext, ProcessError, Processor};
use pyo3::prelude::*;

use crate::config::NativeBuild;
use crate::{event, thread_state};

/// Builds the native processors (`log`, `jsonl`, `exec`, `webhook`) in Rust, so that their
/// events never go through Python, and the others by calling the Python
/// `build(kind, options_json)` (from `inotifier.daemon`), which imports the class and
/// instantiates it with the options.
pub struct PythonProcessors {
    pub build: Py<PyAny>,
    /// The Django project's directory (relative paths in native processors' options start
    /// there: the daemon's own base directory is `/`, as it has no config file), and the
    /// variables given in place of the environment's.
    pub native: NativeBuild,
}

impl ProcessorFactory for PythonProcessors {
    fn build(
        &self,
        watch: &WatchConfig,
        context: &BuildContext<'_>,
    ) -> Result<Arc<dyn Processor>, String> {
        if inotifier_daemon::processors::native_processors()
            .contains(&watch.processor.kind.as_str())
        {
            let context = BuildContext {
                base_dir: &self.native.base_dir,
                ..*context
            };
            return inotifier_sinks::environment::with_given(&self.native.environment, || {
                NativeProcessors.build(watch, &context)
            });
        }
        let options = serde_json::Value::Object(watch.processor.options.clone()).to_string();
        Python::attach(|py| {
            let target = self
                .build
                .bind(py)
                .call1((watch.processor.kind.as_str(), options))
                .map_err(|error| describe(py, &error))?;
            Ok(Arc::new(PythonProcessor {
                target: target.unbind(),
            }) as Arc<dyn Processor>)
        })
    }
}

struct PythonProcessor {
    target: Py<PyAny>,
}

impl Processor for PythonProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        self.process_batch(&[event], &|_| true)
            .failure
            .map_or(Ok(()), Err)
    }

    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn(usize) -> bool) -> BatchOutcome {
        // The worker's thread-locals (its database connections) must last beyond this batch.
        thread_state::keep_for_this_thread();
        Python::attach(|py| {
            let target = self.target.bind(py);
            let mut converter = event::Converter::new(py);
            for (done, event) in events.iter().enumerate() {
                if !go_on(done) {
                    return BatchOutcome::stopped(done);
                }
                let result = converter
                    .convert(event)
                    .and_then(|python_event| target.call1((python_event,)));
                if let Err(error) = result {
                    // Any exception may be transient (a database away, a full disk): the
                    // watch's retry policy decides how often it is tried again.
                    return BatchOutcome::failed(
                        done,
                        ProcessError::retryable(describe(py, &error)),
                    );
                }
            }
            BatchOutcome::all(events.len())
        })
    }

    fn close(&self) {
        Python::attach(|py| {
            let target = self.target.bind(py);
            let Ok(close) = target.getattr("close") else {
                return;
            };
            if close.is_callable()
                && let Err(error) = close.call0()
            {
                tracing::error!(
                    "close() of a Python processor failed: {}",
                    describe(py, &error)
                );
            }
        })
    }
}

/// The exception with its traceback, as Python prints it.
pub fn describe(py: Python<'_>, error: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|traceback| {
        traceback
            // The traceback is passed explicitly: before Python 3.12 a fetched exception's
            // value does not carry it.
            .call_method1(
                "format_exception",
                (error.get_type(py), error.value(py), error.traceback(py)),
            )?
            .extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_string(),
        Err(_) => error.to_string(),
    }
}
