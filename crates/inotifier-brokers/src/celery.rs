//! The `celery` processor. STUB: to be written.

use inotifier_core::Event;
use inotifier_sinks::{BuildError, ProcessError, Processor};
use serde_json::{Map, Value};

pub const NAME: &str = "celery";

pub struct CeleryProcessor {}

impl CeleryProcessor {
    pub fn build(
        options: &Map<String, Value>,
        base_dir: &std::path::Path,
    ) -> Result<CeleryProcessor, BuildError> {
        let _ = base_dir;
        let _ = options;
        Ok(CeleryProcessor {})
    }
}

impl Processor for CeleryProcessor {
    fn process(&self, _event: &Event) -> Result<(), ProcessError> {
        Err(ProcessError::permanent("not written yet"))
    }
}
