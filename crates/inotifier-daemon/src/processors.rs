//! Every processor kind the daemon runs natively, without Python: the local ones of
//! `inotifier-sinks` and the broker ones of `inotifier-brokers`.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use inotifier_sinks::{BuildContext, BuildError, Processor};
use serde_json::{Map, Value};

/// `log`, `jsonl`, `exec`, `webhook`, `celery`, `redis_stream`, `jetstream`.
pub fn native_processors() -> &'static [&'static str] {
    static ALL: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        let mut all = inotifier_sinks::NATIVE_PROCESSORS.to_vec();
        all.extend_from_slice(inotifier_brokers::BROKER_PROCESSORS);
        all
    });
    &ALL
}

/// Makes the native processor `kind`.
pub fn build(
    kind: &str,
    options: &Map<String, Value>,
    context: BuildContext<'_>,
) -> Result<Arc<dyn Processor>, BuildError> {
    if inotifier_brokers::BROKER_PROCESSORS.contains(&kind) {
        inotifier_brokers::build(kind, options, context)
    } else {
        inotifier_sinks::build(kind, options, context).map_err(with_all_kinds)
    }
}

/// Checks `options` as [`build`] does, creating, opening and connecting nothing.
pub fn validate(
    kind: &str,
    options: &Map<String, Value>,
    base_dir: &Path,
) -> Result<(), BuildError> {
    if inotifier_brokers::BROKER_PROCESSORS.contains(&kind) {
        inotifier_brokers::validate(kind, options, base_dir)
    } else {
        inotifier_sinks::validate(kind, options, base_dir).map_err(with_all_kinds)
    }
}

fn with_all_kinds(error: BuildError) -> BuildError {
    match error {
        BuildError::UnknownProcessor { kind, .. } => BuildError::UnknownProcessor {
            kind,
            expected: native_processors().to_vec(),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_kind_lists_every_native_processor() {
        let error = validate("rabbit", &Map::new(), Path::new("/")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown processor `rabbit`: expected one of log, jsonl, exec, webhook, celery, \
             redis_stream, jetstream"
        );
    }
}
