//! Credentials from the daemon's environment, where they belong: Redis ACL users over TLS,
//! and NATS users, passwords and tokens, against servers of the test's own. One test in a
//! binary of its own: setting environment variables is sound only while no other thread
//! reads the environment.

mod common;

use std::path::Path;
use std::sync::Arc;

use inotifier_core::Event;
use inotifier_sinks::Processor;
use inotifier_test_support::servers::{
    NatsAuth, NatsOptions, NatsServer, RedisSentinelSet, RedisServer, TlsServerOptions,
};
use inotifier_test_support::tls::TestCa;
use serde_json::{Value, json};

fn processor(kind: &str, options: Value) -> Arc<dyn Processor> {
    inotifier_brokers::build(kind, options.as_object().unwrap(), Path::new("/")).unwrap()
}

fn event() -> Event {
    common::events(1).remove(0)
}

fn set(variable: &str, value: String) {
    // SAFETY: this binary runs this one test, on one thread, and nothing else reads the
    // environment meanwhile.
    unsafe { std::env::set_var(variable, value) };
}

/// Connected, authenticated and published: JetStream answers that no stream takes the subject.
fn accepted_by_nats(failure: inotifier_sinks::ProcessError) {
    assert!(
        failure
            .message
            .contains("no JetStream stream takes subject"),
        "{failure:?}"
    );
}

#[test]
fn credentials_from_the_environment_are_used_and_refused_ones_are_outages_without_secrets() {
    let dir = tempfile::tempdir().unwrap();

    // Redis: an ACL user, over TLS.
    let ca = TestCa::new(dir.path(), "ca");
    let cert = ca.server_cert("redis");
    let redis = RedisServer::tls(
        &dir.path().join("redis"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: false,
        },
    )
    .acl_user("alice", "pa:ss")
    .start();
    let variable = "INOTIFIER_TEST_REDIS_URL";
    set(
        variable,
        format!("rediss://alice:pa%3Ass@127.0.0.1:{}/0", redis.port()),
    );
    let options = json!({"url_env": variable, "stream": "s", "ca_file": ca.ca_file()});
    processor("redis_stream", options.clone())
        .process(&event())
        .unwrap();
    set(
        variable,
        format!("rediss://alice:wrong-pw@127.0.0.1:{}/0", redis.port()),
    );
    let failure = processor("redis_stream", options)
        .process(&event())
        .unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure.message.contains(&format!(
            "put the right URL in the environment variable {variable}"
        )),
        "{failure:?}"
    );
    assert!(!failure.message.contains("wrong-pw"), "{failure:?}");

    // NATS: a user and a password in the URL of the environment.
    let nats = NatsServer::start(
        &dir.path().join("nats-user"),
        &NatsOptions {
            authorization: NatsAuth::UserPassword("alice".into(), "pw%1".into()),
            ..NatsOptions::default()
        },
    );
    let variable = "INOTIFIER_TEST_NATS_URL";
    set(variable, format!("nats://alice:pw%251@{}", nats.address()));
    accepted_by_nats(
        processor(
            "jetstream",
            json!({"url_env": variable, "subject": "plain.x"}),
        )
        .process(&event())
        .unwrap_err(),
    );
    set(
        variable,
        format!("nats://alice:wrong-pw@{}", nats.address()),
    );
    let failure = processor("jetstream", json!({"url_env": variable}))
        .process(&event())
        .unwrap_err();
    assert!(
        failure.message.contains("refused the credentials"),
        "{failure:?}"
    );
    assert!(!failure.message.contains("wrong-pw"), "{failure:?}");

    // NATS: a token, in the URL (nats://TOKEN@host) or in the variable token_env names.
    let nats = NatsServer::start(
        &dir.path().join("nats-token"),
        &NatsOptions {
            authorization: NatsAuth::Token("s3cret".into()),
            ..NatsOptions::default()
        },
    );
    set(variable, format!("nats://s3cret@{}", nats.address()));
    accepted_by_nats(
        processor(
            "jetstream",
            json!({"url_env": variable, "subject": "plain.x"}),
        )
        .process(&event())
        .unwrap_err(),
    );
    set("INOTIFIER_TEST_NATS_TOKEN", "s3cret".into());
    let url = format!("nats://{}", nats.address());
    accepted_by_nats(
        processor(
            "jetstream",
            json!({"url": url, "token_env": "INOTIFIER_TEST_NATS_TOKEN", "subject": "plain.x"}),
        )
        .process(&event())
        .unwrap_err(),
    );
    set("INOTIFIER_TEST_NATS_TOKEN", "not-it".into());
    let failure = processor(
        "jetstream",
        json!({"url": url, "token_env": "INOTIFIER_TEST_NATS_TOKEN"}),
    )
    .process(&event())
    .unwrap_err();
    assert!(
        failure.message.contains("refused the credentials"),
        "{failure:?}"
    );
    assert!(!failure.message.contains("not-it"), "{failure:?}");

    // Redis Sentinels with a password of their own (the master has none).
    let topology = RedisSentinelSet::start_with_sentinel_password(
        &dir.path().join("sentinels"),
        "inotifier",
        "sentinel-pw",
    );
    let sentinels = topology.sentinel_addresses();
    let options = |variable: Option<&str>| {
        let mut options =
            json!({"sentinels": sentinels, "service_name": "inotifier", "stream": "s"});
        if let Some(variable) = variable {
            options["sentinel_password_env"] = json!(variable);
        }
        options
    };
    let failure = processor("redis_stream", options(None))
        .process(&event())
        .unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure.message.contains("sentinel_password_env"),
        "{failure:?}"
    );
    set("INOTIFIER_TEST_SENTINEL_PASSWORD", "not-it".into());
    let failure = processor(
        "redis_stream",
        options(Some("INOTIFIER_TEST_SENTINEL_PASSWORD")),
    )
    .process(&event())
    .unwrap_err();
    assert!(
        failure.message.contains(
            "refused the password of the environment variable INOTIFIER_TEST_SENTINEL_PASSWORD"
        ),
        "{failure:?}"
    );
    assert!(!failure.message.contains("not-it"), "{failure:?}");
    set("INOTIFIER_TEST_SENTINEL_PASSWORD", "sentinel-pw".into());
    processor(
        "redis_stream",
        options(Some("INOTIFIER_TEST_SENTINEL_PASSWORD")),
    )
    .process(&event())
    .unwrap();
}
