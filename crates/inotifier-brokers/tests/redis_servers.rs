//! The `redis_stream` processor against Redis servers of the test's own (started and ended
//! by PID, on free loopback ports): TLS with the right CA, a wrong CA refused with the reason,
//! mutual TLS, a server restarted mid-stream, and a
//! Sentinel failover of the master, each without losing an event.

use std::collections::BTreeSet;
mod common;

use common::events;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotifier_brokers::identity::message_id;
use inotifier_core::Event;
use inotifier_sinks::{BatchOutcome, Processor};
use inotifier_test_support::servers::{RedisSentinelSet, RedisServer, TlsServerOptions};
use inotifier_test_support::tls::{CertPair, TestCa};
use serde_json::{Value, json};

fn processor(options: Value) -> Arc<dyn Processor> {
    inotifier_brokers::build("redis_stream", options.as_object().unwrap(), Path::new("/")).unwrap()
}

/// The test's own connection, over TLS when `ca` is given.
fn admin(port: u16, tls: Option<(&TestCa, Option<&CertPair>)>) -> redis::Connection {
    let client = match tls {
        None => redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap(),
        Some((ca, pair)) => redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}/0"),
            redis::TlsCertificates {
                client_tls: pair.map(|pair| redis::ClientTlsConfig {
                    client_cert: std::fs::read(&pair.cert_file).unwrap(),
                    client_key: std::fs::read(&pair.key_file).unwrap(),
                }),
                root_cert: Some(std::fs::read(ca.ca_file()).unwrap()),
            },
        )
        .unwrap(),
    };
    client.get_connection().unwrap()
}

/// The message ids in stream `key`, and how many entries it holds.
fn message_ids(connection: &mut redis::Connection, key: &str) -> (BTreeSet<String>, usize) {
    let read: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(connection)
        .unwrap();
    let entries = read.len();
    let ids = read
        .into_iter()
        .filter_map(|(_, fields)| fields.last().cloned())
        .collect();
    (ids, entries)
}

fn expected_ids(source: &str, count: u64) -> BTreeSet<String> {
    (1..=count).map(|id| message_id(source, id)).collect()
}

/// Fails, with the ids missing (not thousands of them: their count and range) and `context`,
/// unless `ids` holds every event 1 to `count` of `source`.
fn assert_every_event(
    ids: &BTreeSet<String>,
    source: &str,
    count: u64,
    context: impl Fn() -> String,
) {
    let missing: Vec<u64> = (1..=count)
        .filter(|id| !ids.contains(&message_id(source, *id)))
        .collect();
    if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
        panic!(
            "{} of {count} events missing, ids {first} to {last}:\n{}",
            missing.len(),
            context()
        );
    }
}

#[test]
fn tls_with_the_right_ca_delivers_and_a_wrong_ca_is_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "right");
    let stranger = TestCa::new(dir.path(), "wrong");
    let cert = ca.server_cert("redis");
    let server = RedisServer::tls(
        &dir.path().join("redis"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: false,
        },
    )
    .start();
    let url = format!("rediss://127.0.0.1:{}/0", server.port());
    let events = events(300);
    let batch: Vec<&Event> = events.iter().collect();
    let good =
        processor(json!({"url": url, "stream": "s", "source": "a", "ca_file": ca.ca_file()}));
    assert_eq!(
        good.process_batch(&batch, &|_| true),
        BatchOutcome::all(300)
    );
    for options in [json!({}), json!({"ca_file": stranger.ca_file()})] {
        let mut options = options;
        options["url"] = json!(url);
        options["stream"] = json!("s");
        let refused = processor(options);
        let failure = refused.process(&events[0]).unwrap_err();
        assert!(failure.outage, "{failure:?}");
        assert!(
            failure
                .message
                .contains(&format!("127.0.0.1:{}", server.port())),
            "{failure:?}"
        );
        assert!(failure.message.contains("TLS"), "{failure:?}");
        assert!(
            failure.message.contains("UnknownIssuer"),
            "the reason: {failure:?}"
        );
        assert!(
            failure.message.contains("set the option ca_file"),
            "{failure:?}"
        );
    }
    let mut admin = admin(server.port(), Some((&ca, None)));
    let (ids, entries) = message_ids(&mut admin, "s");
    assert_eq!(
        (ids, entries),
        (expected_ids("a", 300), 300),
        "nothing from the refused ones"
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let cert = ca.server_cert("redis");
    let server = RedisServer::tls(
        &dir.path().join("redis"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: true,
        },
    )
    .start();
    let url = format!("rediss://127.0.0.1:{}/0", server.port());
    let without = processor(json!({"url": url, "ca_file": ca.ca_file(), "stream": "s"}));
    let failure = without.process(&events(1)[0]).unwrap_err();
    assert!(
        failure.outage && failure.message.contains("TLS"),
        "{failure:?}"
    );
    let pair = ca.client_cert("inotifier");
    let with = processor(json!({
        "url": url,
        "stream": "s",
        "source": "a",
        "ca_file": ca.ca_file(),
        "cert_file": pair.cert_file,
        "key_file": pair.key_file,
    }));
    let events = events(100);
    let batch: Vec<&Event> = events.iter().collect();
    assert_eq!(
        with.process_batch(&batch, &|_| true),
        BatchOutcome::all(100)
    );
    let mut admin = admin(server.port(), Some((&ca, Some(&pair))));
    assert_eq!(message_ids(&mut admin, "s").0, expected_ids("a", 100));
}

#[test]
fn a_server_restarted_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Every write on disk before its reply: what survives a restart is what was confirmed.
    let mut server = RedisServer::plain(dir.path())
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .start();
    let port = server.port();
    let sender = processor(
        json!({"url": format!("redis://127.0.0.1:{port}/0"), "stream": "s", "source": "a", "timeout": "2s"}),
    );
    let events = events(3000);
    let fault = common::MidStreamFault::holding_at(1500);
    std::thread::scope(|scope| {
        let delivering = scope.spawn(|| {
            common::deliver_all_through(&*sender, &events, 20, Duration::from_secs(60), &fault)
        });
        let mut watcher = admin(port, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while message_ids(&mut watcher, "s").1 < 300 {
            assert!(Instant::now() < deadline, "the first events never came");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(watcher);
        fault.restart(&mut server);
        delivering.join().unwrap();
    });
    let (ids, entries) = message_ids(&mut admin(port, None), "s");
    assert_every_event(&ids, "a", 3000, || server.log());
    assert!(entries >= 3000, "{entries}");
}

#[test]
fn a_sentinel_failover_of_the_master_loses_nothing_with_replicas_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = RedisSentinelSet::start(dir.path(), "inotifier");
    let sender = processor(json!({
        "sentinels": set.sentinel_addresses(),
        "service_name": "inotifier",
        "replicas": 1,
        "stream": "s",
        "source": "a",
        "timeout": "2s",
    }));
    let events = events(2000);
    let fault = common::MidStreamFault::holding_at(1000);
    std::thread::scope(|scope| {
        let delivering = scope.spawn(|| {
            common::deliver_all_through(&*sender, &events, 20, Duration::from_secs(90), &fault)
        });
        let mut watcher = admin(set.master_port(), None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while message_ids(&mut watcher, "s").1 < 300 {
            assert!(Instant::now() < deadline, "the first events never came");
            std::thread::sleep(Duration::from_millis(20));
        }
        let old = set.current_master_port();
        drop(watcher);
        let promoted = set.kill_master();
        assert_ne!(promoted, old);
        fault.injected();
        // Until the old master is back, as a replica of the new one, no write is confirmed by
        // a replica: events wait (outages), none lost.
        fault.wait_for_an_outage(Duration::from_secs(30));
        for node in set.data_nodes() {
            if node.port() == old {
                node.restart();
            }
        }
        delivering.join().unwrap();
    });
    let (ids, entries) = message_ids(&mut admin(set.current_master_port(), None), "s");
    assert_every_event(&ids, "a", 2000, || {
        format!(
            "on the new master, {}:\n{}",
            set.current_master_port(),
            set.logs()
        )
    });
    assert!(entries >= 2000, "{entries}");
}

#[test]
fn sentinels_and_master_over_mutual_tls_with_a_rediss_sentinel_url() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let cert = ca.server_cert("redis");
    let set = RedisSentinelSet::start_tls(
        &dir.path().join("set"),
        "inotifier",
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: true,
        },
    );
    let pair = ca.client_cert("inotifier");
    let url = format!(
        "rediss+sentinel://{}/inotifier/0",
        set.sentinel_addresses().join(",")
    );
    let sender = processor(json!({
        "url": url,
        "stream": "s",
        "source": "a",
        "ca_file": ca.ca_file(),
        "cert_file": pair.cert_file,
        "key_file": pair.key_file,
    }));
    let events = events(500);
    let batch: Vec<&Event> = events.iter().collect();
    assert_eq!(
        sender.process_batch(&batch, &|_| true),
        BatchOutcome::all(500)
    );
    let mut admin = admin(set.current_master_port(), Some((&ca, Some(&pair))));
    assert_eq!(message_ids(&mut admin, "s").0, expected_ids("a", 500));
    // Without the client certificate, the Sentinels refuse the handshake: an outage.
    let refused = processor(json!({"url": url, "stream": "s", "ca_file": ca.ca_file()}));
    let failure = refused.process(&events[0]).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure.message.contains("no Sentinel named a master"),
        "{failure:?}"
    );
}
