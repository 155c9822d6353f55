//! Every processor kind the daemon runs natively, without Python: the local ones of
//! `inotifier-sinks` and the broker ones of `inotifier-brokers`.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use inotifier_sinks::{BuildContext, BuildError, Processor, ProcessorKind, find_kind};
use serde_json::{Map, Value};

/// The registry: every kind the daemon runs natively, the rows of each crate's table. The daemon
/// builds its processors from it, and `inotifier check` and the Django checks validate options
/// against it, so that the three cannot disagree on what exists or what its options are.
fn registry() -> &'static [&'static ProcessorKind] {
    static ALL: LazyLock<Vec<&'static ProcessorKind>> = LazyLock::new(|| {
        inotifier_sinks::KINDS
            .iter()
            .chain(inotifier_brokers::KINDS)
            .collect()
    });
    &ALL
}

/// `log`, `jsonl`, `exec`, `webhook`, `celery`, `redis_stream`, `jetstream`.
pub fn native_processors() -> &'static [&'static str] {
    static NAMES: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| registry().iter().map(|kind| kind.name).collect());
    &NAMES
}

/// Makes the native processor `kind`.
pub fn build(
    kind: &str,
    options: &Map<String, Value>,
    context: BuildContext<'_>,
) -> Result<Arc<dyn Processor>, BuildError> {
    (find_kind(registry(), kind)?.build)(options, context)
}

/// Checks `options` as [`build`] does, creating, opening and connecting nothing.
pub fn validate(
    kind: &str,
    options: &Map<String, Value>,
    base_dir: &Path,
) -> Result<(), BuildError> {
    (find_kind(registry(), kind)?.validate)(options, base_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_in_the_registry_once() {
        let mut names = native_processors().to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), native_processors().len(), "{names:?}");
        // What validates is what builds: the same row of the same table.
        let options = serde_json::json!({"path": "events.jsonl"});
        let options = options.as_object().unwrap();
        let dir = tempfile::tempdir().unwrap();
        validate("jsonl", options, dir.path()).unwrap();
        assert!(
            !dir.path().join("events.jsonl").exists(),
            "validating opens nothing"
        );
        build("jsonl", options, BuildContext::at(dir.path())).unwrap();
        assert!(dir.path().join("events.jsonl").exists());
    }

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
