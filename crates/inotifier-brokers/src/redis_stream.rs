//! The `redis_stream` processor. STUB: to be written.

use inotifier_core::Event;
use inotifier_sinks::{BuildError, ProcessError, Processor};
use serde_json::{Map, Value};

pub const NAME: &str = "redis_stream";

pub struct RedisStreamProcessor {}

impl RedisStreamProcessor {
    pub fn build(options: &Map<String, Value>) -> Result<RedisStreamProcessor, BuildError> {
        let _ = options;
        Ok(RedisStreamProcessor {})
    }
}

impl Processor for RedisStreamProcessor {
    fn process(&self, _event: &Event) -> Result<(), ProcessError> {
        Err(ProcessError::permanent("not written yet"))
    }
}
