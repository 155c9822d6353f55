//! The `jetstream` processor. STUB: to be written.

use inotifier_core::Event;
use inotifier_sinks::{BuildError, ProcessError, Processor};
use serde_json::{Map, Value};

pub const NAME: &str = "jetstream";

pub struct JetStreamProcessor {}

impl JetStreamProcessor {
    pub fn build(options: &Map<String, Value>) -> Result<JetStreamProcessor, BuildError> {
        let _ = options;
        Ok(JetStreamProcessor {})
    }
}

impl Processor for JetStreamProcessor {
    fn process(&self, _event: &Event) -> Result<(), ProcessError> {
        Err(ProcessError::permanent("not written yet"))
    }
}
