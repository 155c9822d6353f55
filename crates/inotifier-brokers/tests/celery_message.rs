//! The exact Celery message of an event, pinned by golden files that
//! tests/test_broker_celery.py checks against the message Celery's own `send_task` makes.
//! `INOTIFIER_BLESS=1` rewrites the golden files after a deliberate change.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotifier_brokers::amqp::FieldValue;
use inotifier_brokers::celery::message::{Route, TaskMessage, TaskSpec};
use inotifier_brokers::fields::Field;
use inotifier_core::{Event, Mask, Origin, WatchId};

fn event() -> Event {
    Event {
        id: 42,
        mask: Mask::IN_CLOSE_WRITE,
        cookie: 0,
        wd: 1,
        path: Arc::from(Path::new("/srv/in")),
        name: OsStr::from_bytes("report 'q1'.csv".as_bytes()).to_os_string(),
        src_pathname: None,
        origin: Origin::Kernel,
        time_ns: 1_764_077_825_123_456_789,
        watches: Arc::from([WatchId(0)]),
    }
}

fn spec() -> TaskSpec {
    TaskSpec {
        journal: None,
        task: "tasks.record".into(),
        args: vec![Field::Event],
        kwargs: vec![
            ("kind".into(), Field::Maskname),
            ("event_id".into(), Field::Id),
        ],
        source: "web-1".into(),
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check(name: &str, actual: &[u8]) {
    let path = golden(name);
    if std::env::var_os("INOTIFIER_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(&expected),
        "{name} changed; if on purpose, rerun with INOTIFIER_BLESS=1 and check the Python test"
    );
}

#[test]
fn the_redis_message_is_pinned() {
    let message = TaskMessage::new(&spec(), &event());
    assert_eq!(message.id, "666fc22e-095c-221f-0000-00000000002a");
    let route = Route {
        queue: "files".into(),
        exchange: String::new(),
        routing_key: "files".into(),
    };
    let mut envelope = message.redis_envelope(
        &route,
        "666fc22e-095c-221f-0000-000000000000",
        "11111111-2222-4333-8444-555555555555",
    );
    envelope.push(b'\n');
    check("celery-redis.json", &envelope);
    let mut body = message.body.clone();
    body.push(b'\n');
    check("celery-body.json", &body);
}

#[test]
fn the_amqp_headers_are_the_same_as_over_redis() {
    let message = TaskMessage::new(&spec(), &event());
    let properties = message.amqp_properties("reply");
    let headers = properties.headers.expect("headers");
    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    let expected: Vec<&str> = message.headers.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected);
    let find = |name: &str| &headers.iter().find(|(key, _)| key == name).unwrap().1;
    assert_eq!(
        find("task"),
        &FieldValue::LongString(b"tasks.record".to_vec())
    );
    assert_eq!(
        find("timelimit"),
        &FieldValue::Array(vec![FieldValue::Void, FieldValue::Void])
    );
    assert_eq!(find("retries"), &FieldValue::Long(0));
    assert_eq!(find("stamps"), &FieldValue::Table(Vec::new()));
    assert_eq!(
        properties.correlation_id.as_deref(),
        Some(message.id.as_str())
    );
    assert_eq!(properties.delivery_mode, Some(2));
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
}
