//! `celery` over AMQP where production puts it: a RabbitMQ node of the test's own with an
//! AMQPS listener that asks for client certificates (mutual TLS), and heartbeats noticing a
//! connection that went silent.

mod common;

use common::events;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inotifier_brokers::amqp::{AmqpConnection, AmqpTarget, Properties, Publish};
use inotifier_brokers::url::BrokerUrl;
use inotifier_core::Event;
use inotifier_sinks::{BatchOutcome, Processor};
use inotifier_test_support::privileges::root_available;
use inotifier_test_support::servers::{RabbitMqNode, TlsServerOptions};
use inotifier_test_support::services::RABBITMQ;
use inotifier_test_support::skip::skip;
use inotifier_test_support::tls::TestCa;
use serde_json::{Value, json};

fn celery(options: Value) -> Arc<dyn Processor> {
    inotifier_brokers::build("celery", options.as_object().unwrap(), Path::new("/")).unwrap()
}

fn target(url: &str, heartbeat: u16) -> AmqpTarget {
    AmqpTarget {
        url: BrokerUrl::parse(url, inotifier_brokers::amqp::SCHEMES).unwrap(),
        tls: Default::default(),
        heartbeat,
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn amqps_with_the_client_certificate_delivers_and_a_wrong_ca_or_none_is_refused() {
    let test = "amqps_with_the_client_certificate_delivers_and_a_wrong_ca_or_none_is_refused";
    if !RabbitMqNode::installed() {
        skip(&format!(
            "{test}: skipped: RabbitMQ is not installed (Debian's rabbitmq-server)"
        ));
        return;
    }
    if !root_available(
        test,
        "starts a RabbitMQ node of its own, which runs as root or rabbitmq",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "right");
    let stranger = TestCa::new(dir.path(), "wrong");
    let cert = ca.server_cert("rabbitmq");
    let node = RabbitMqNode::start_tls(
        &dir.path().join("node"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: true,
        },
    );
    let pair = ca.client_cert("inotifier");
    let queue = format!("inotifier-tls-{}", std::process::id());
    let url = format!("amqps://127.0.0.1:{}//", node.amqps_port);
    let options = |extra: Value| {
        let mut options = json!({"task": "t.on_file", "broker_url": url, "queue": queue});
        options
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        options
    };
    let events = events(100);
    let batch: Vec<&Event> = events.iter().collect();
    let good = celery(options(json!({
        "ca_file": ca.ca_file(), "cert_file": pair.cert_file, "key_file": pair.key_file,
    })));
    assert_eq!(
        good.process_batch(&batch, &|_| true),
        BatchOutcome::all(100)
    );
    for (refused, why) in [
        (options(json!({"ca_file": ca.ca_file()})), "TLS"),
        (
            options(json!({
                "ca_file": stranger.ca_file(), "cert_file": pair.cert_file, "key_file": pair.key_file,
            })),
            "set the option ca_file",
        ),
    ] {
        let failure = celery(refused).process(&events[0]).unwrap_err();
        assert!(failure.outage, "{failure:?}");
        assert!(
            failure.message.contains(&node.amqps_port.to_string()),
            "names the server: {failure:?}"
        );
        assert!(failure.message.contains(why), "{failure:?}");
    }
    // What the queue holds, read on the node's plain port: the 100 events, none of the others.
    let mut plain = AmqpConnection::connect(&target(
        &format!("amqp://127.0.0.1:{}//", node.amqp_port),
        10,
    ))
    .unwrap();
    assert_eq!(plain.delete_queue(&queue), Ok(100));
}

/// A TCP relay between a client and `upstream` that can be frozen: it then passes nothing in
/// either direction, as a network that drops a connection's packets silently.
struct Relay {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let flag = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(&upstream).unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    from.set_read_timeout(Some(Duration::from_millis(20)))
                        .unwrap();
                    std::thread::spawn(move || {
                        let mut buffer = [0; 16384];
                        loop {
                            if flag.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                            match from.read(&mut buffer) {
                                Ok(0) => return,
                                Ok(n) => {
                                    if to.write_all(&buffer[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(error)
                                    if matches!(
                                        error.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Relay { port, frozen }
    }
}

#[test]
fn a_stalled_connection_is_noticed_within_two_heartbeat_intervals() {
    if !RABBITMQ.available("a_stalled_connection_is_noticed_within_two_heartbeat_intervals") {
        return;
    }
    let relay = Relay::start(RABBITMQ.address);
    let heartbeat = 1;
    let mut connection = AmqpConnection::connect(&target(
        &format!("amqp://127.0.0.1:{}/", relay.port),
        heartbeat,
    ))
    .unwrap();
    let queue = format!("inotifier-heartbeat-{}", std::process::id());
    connection.declare_queue(&queue, false).unwrap();
    let properties = Properties::default();
    let message = Publish {
        exchange: "",
        routing_key: &queue,
        properties: &properties,
        body: b"x",
    };
    assert!(
        connection
            .publish_confirmed(std::slice::from_ref(&message))
            .failure
            .is_none()
    );
    // Several intervals of an idle connection: heartbeats keep it.
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(3) {
        assert!(
            connection.usable(),
            "an idle connection with heartbeats stays usable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    relay.frozen.store(true, Ordering::SeqCst);
    let frozen = Instant::now();
    while connection.usable() {
        // Two intervals, and lapin's check every half interval.
        assert!(
            frozen.elapsed() < Duration::from_millis(2 * 1000 * heartbeat as u64 + 500),
            "still usable {:?} after the network went silent",
            frozen.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let noticed = frozen.elapsed();
    eprintln!("a silent connection noticed after {noticed:?} (heartbeat {heartbeat} s)");
    let outcome = connection.publish_confirmed(std::slice::from_ref(&message));
    assert_eq!(outcome.confirmed, 0);
    assert!(outcome.failure.is_some_and(|failure| failure.outage));
    relay.frozen.store(false, Ordering::SeqCst);
    let mut fresh =
        AmqpConnection::connect(&target(&format!("amqp://{}/", RABBITMQ.address), 10)).unwrap();
    assert_eq!(fresh.delete_queue(&queue), Ok(1));
}
