//! The brokers' async runtime is made by the first connection, never by building or checking
//! a processor: the daemon builds its processors before it forks into the background, and a
//! runtime's threads would not survive the fork. A test binary of its own, so that no other
//! test made the runtime first.

mod common;

use std::net::TcpListener;
use std::path::Path;

use inotifier_brokers::runtime;
use serde_json::json;

#[test]
fn building_and_checking_make_no_runtime_and_the_first_connection_does() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let amqp = json!({"task": "t", "broker_url": format!("amqp://127.0.0.1:{port}//")});
    let nats = json!({"url": format!("nats://127.0.0.1:{port}")});
    let redis = json!({"url": format!("redis://127.0.0.1:{port}/0")});
    let mut built = Vec::new();
    for (kind, options) in [
        ("celery", &amqp),
        ("jetstream", &nats),
        ("redis_stream", &redis),
    ] {
        let options = options.as_object().unwrap();
        let processor = inotifier_brokers::build(kind, options, Path::new("/")).unwrap();
        let check = inotifier_brokers::KINDS
            .iter()
            .find(|k| k.name == kind)
            .unwrap();
        (check.validate)(options, Path::new("/")).unwrap();
        built.push(processor);
    }
    assert!(
        !runtime::started(),
        "building or checking a processor made the runtime"
    );
    let event = common::events(1).remove(0);
    // Nothing listens: an outage, after trying to connect on the runtime.
    let failure = built[1].process(&event).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(runtime::started(), "the first connection makes the runtime");
}
