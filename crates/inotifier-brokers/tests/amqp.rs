//! The AMQP client against the RabbitMQ of this machine (guest/guest on 127.0.0.1:5672), with
//! py-amqp (Celery's client) as the independent reader of what was published.

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use inotifier_brokers::amqp::{AmqpConnection, AmqpTarget, FieldValue, Properties, Publish};
use inotifier_brokers::url::BrokerUrl;
use inotifier_test_support::privileges::root_available;
use inotifier_test_support::services::RABBITMQ;
use inotifier_test_support::skip::skip;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);

fn url(text: &str) -> AmqpTarget {
    AmqpTarget {
        url: BrokerUrl::parse(text, inotifier_brokers::amqp::SCHEMES).expect("a valid test URL"),
        tls: Default::default(),
        heartbeat: 10,
        timeout: TIMEOUT,
    }
}

fn connect() -> AmqpConnection {
    AmqpConnection::connect(&url("amqp://guest:guest@127.0.0.1:5672/"))
        .expect("a connection to RabbitMQ")
}

/// A queue or exchange name no other test, or run, uses.
fn unique(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("inotifier-test-{test}-{}-{n}", std::process::id())
}

/// A Python with py-amqp: `INOTIFIER_TEST_PYTHON`, else the repository's `.venv` (which
/// scripts/venv.sh makes, with Celery and so py-amqp).
fn python() -> String {
    if let Some(python) = std::env::var_os("INOTIFIER_TEST_PYTHON") {
        return python.to_string_lossy().into_owned();
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        venv.to_string()
    } else {
        "python3".to_string()
    }
}

/// Takes every message of `queue` with py-amqp and returns them as JSON: body, headers and
/// the other properties.
fn read_queue_with_py_amqp(queue: &str) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, sys
import amqp

messages = []
with amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest") as connection:
    channel = connection.channel()
    while True:
        message = channel.basic_get(queue=sys.argv[1], no_ack=True)
        if message is None:
            break
        body = message.body
        if isinstance(body, bytes):
            body = body.decode()
        properties = dict(message.properties)
        headers = properties.pop("application_headers", None)
        messages.append({"body": body, "headers": headers, "properties": properties})
json.dump(messages, sys.stdout, default=repr)
"#;
    let python = python();
    let output = Command::new(&python)
        .args(["-c", SCRIPT, queue])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    assert!(
        output.status.success(),
        "py-amqp could not read the queue (a Python with py-amqp is needed: \
         INOTIFIER_TEST_PYTHON names one): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from the script")
}

/// Runs `rabbitmqctl`, or returns None when it is not installed here (the broker may run
/// elsewhere, such as in a container).
fn rabbitmqctl(args: &[&str]) -> Option<String> {
    let output = Command::new("rabbitmqctl").args(args).output().ok()?;
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_thousand_messages_with_headers_are_confirmed_and_read_back_by_py_amqp() {
    if !RABBITMQ
        .available("a_thousand_messages_with_headers_are_confirmed_and_read_back_by_py_amqp")
    {
        return;
    }
    let exchange = unique("exchange");
    let queue = unique("thousand");
    let mut connection = connect();
    connection
        .declare_exchange(&exchange, "direct", true)
        .unwrap();
    connection.declare_queue(&queue, true).unwrap();
    connection.bind_queue(&queue, &exchange, "files").unwrap();

    let large_body = "x".repeat(300_000);
    let messages: Vec<(Properties, String)> = (0..1000)
        .map(|i| {
            let id = format!("id-{i}");
            let headers = json!({
                "task": "tasks.on_file",
                "id": id,
                "retries": i,
                "negative": -i64::from(i),
                "eta": null,
                "ignore_result": i % 2 == 0,
                "ratio": 0.5,
                "timelimit": [null, 30],
                "origin": "hôte",
                "nested": {"a": [1, {"b": "c"}], "empty": {}},
            });
            let FieldValue::Table(headers) = FieldValue::from_json(&headers) else {
                unreachable!("an object is a table")
            };
            let properties = Properties {
                content_type: Some("application/json".into()),
                content_encoding: Some("utf-8".into()),
                headers: Some(headers),
                delivery_mode: Some(2),
                priority: Some((i % 10) as u8),
                correlation_id: Some(id.clone()),
                reply_to: Some("replies".into()),
                message_id: Some(id),
            };
            let body = if i == 999 {
                large_body.clone()
            } else {
                json!([[format!("/srv/in/{i}")], {}, {}]).to_string()
            };
            (properties, body)
        })
        .collect();
    let publishes: Vec<Publish<'_>> = messages
        .iter()
        .map(|(properties, body)| Publish {
            exchange: &exchange,
            routing_key: "files",
            properties,
            body: body.as_bytes(),
        })
        .collect();
    let outcome = connection.publish_confirmed(&publishes);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(outcome.confirmed, 1000);

    let read = read_queue_with_py_amqp(&queue);
    assert_eq!(read.len(), 1000);
    for (i, message) in read.iter().enumerate() {
        let (_, body) = &messages[i];
        assert_eq!(message["body"], body.as_str(), "body of message {i}");
        let id = format!("id-{i}");
        assert_eq!(
            message["headers"],
            json!({
                "task": "tasks.on_file",
                "id": id,
                "retries": i,
                "negative": -(i as i64),
                "eta": null,
                "ignore_result": i % 2 == 0,
                "ratio": 0.5,
                "timelimit": [null, 30],
                "origin": "hôte",
                "nested": {"a": [1, {"b": "c"}], "empty": {}},
            }),
            "headers of message {i}"
        );
        assert_eq!(
            message["properties"],
            json!({
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "delivery_mode": 2,
                "priority": i % 10,
                "correlation_id": id,
                "reply_to": "replies",
                "message_id": id,
            }),
            "properties of message {i}"
        );
    }
    assert_eq!(connection.delete_queue(&queue), Ok(0));
    connection.delete_exchange(&exchange).unwrap();
}

#[test]
fn a_wrong_password_is_an_outage_that_names_the_user_and_the_fix() {
    if !RABBITMQ.available("a_wrong_password_is_an_outage_that_names_the_user_and_the_fix") {
        return;
    }
    let url = url("amqp://guest:not-the-password@127.0.0.1:5672/");
    let Err(error) = AmqpConnection::connect(&url) else {
        panic!("a wrong password was accepted");
    };
    // An outage: events wait, undead-lettered, while an operator corrects the credentials.
    assert!(error.outage, "{error:?}");
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.contains("refused the login of user \"guest\""),
        "{message}"
    );
    assert!(message.contains("403 ACCESS_REFUSED"), "{message}");
    assert!(
        message.contains("check the user and password in the broker URL"),
        "{message}"
    );
    assert!(message.contains("environment variable"), "{message}");
    assert!(!message.contains("not-the-password"), "{message}");
}

#[test]
fn an_unknown_virtual_host_is_explained() {
    if !RABBITMQ.available("an_unknown_virtual_host_is_explained") {
        return;
    }
    let url = url("amqp://guest:guest@127.0.0.1:5672/inotifier-no-such-vhost");
    let Err(error) = AmqpConnection::connect(&url) else {
        panic!("an unknown virtual host was opened");
    };
    assert!(error.outage, "{error:?}");
    let message = error.to_string();
    eprintln!("{message}");
    assert!(message.contains("530 NOT_ALLOWED"), "{message}");
    assert!(message.contains("inotifier-no-such-vhost"), "{message}");
    assert!(message.contains("rabbitmqctl add_vhost"), "{message}");
}

#[test]
fn a_port_nobody_listens_on_is_a_quick_outage_naming_the_address() {
    if !RABBITMQ.available("a_port_nobody_listens_on_is_a_quick_outage_naming_the_address") {
        return;
    }
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let url = url(&format!("amqp://guest:secret@127.0.0.1:{port}/"));
    let Err(error) = AmqpConnection::connect(&url) else {
        panic!("connected to a closed port");
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(error.outage, "{error:?}");
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.starts_with(&format!(
            "cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:{port}: "
        )),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
}

#[test]
fn a_queue_declared_again_otherwise_is_refused_clearly_and_a_new_connection_works() {
    if !RABBITMQ
        .available("a_queue_declared_again_otherwise_is_refused_clearly_and_a_new_connection_works")
    {
        return;
    }
    let queue = unique("redeclared");
    let mut connection = connect();
    connection.declare_queue(&queue, true).unwrap();
    let error = connection.declare_queue(&queue, false).unwrap_err();
    assert!(error.outage, "{error:?}");
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.contains(&format!("declaring the queue {queue:?}")),
        "{message}"
    );
    assert!(
        message.contains("406 PRECONDITION_FAILED - inequivalent arg 'durable'"),
        "{message}"
    );
    assert!(
        message.contains("configure the same ones, or delete it"),
        "{message}"
    );
    // The broker closed the channel: this connection is done.
    let error = connection.declare_queue(&queue, true).unwrap_err();
    assert!(error.outage, "{error:?}");
    assert!(error.to_string().contains("unusable"), "{error}");
    drop(connection);

    let mut connection = connect();
    connection.declare_queue(&queue, true).unwrap();
    assert_eq!(connection.delete_queue(&queue), Ok(0));
}

#[test]
fn a_connection_closed_by_the_broker_fails_the_next_publish_as_an_outage() {
    if !RABBITMQ.available("a_connection_closed_by_the_broker_fails_the_next_publish_as_an_outage")
    {
        return;
    }
    if !root_available(
        "a_connection_closed_by_the_broker_fails_the_next_publish_as_an_outage",
        "closes its connection with rabbitmqctl, which only root or the rabbitmq user may run",
    ) {
        return;
    }
    if rabbitmqctl(&["list_connections", "-q", "pid"]).is_none() {
        skip(
            "a_connection_closed_by_the_broker_fails_the_next_publish_as_an_outage: skipped: \
             rabbitmqctl is not installed here",
        );
        return;
    }
    let queue = unique("closed");
    let properties = Properties::default();
    let message = Publish {
        exchange: "",
        routing_key: &queue,
        properties: &properties,
        body: b"event",
    };
    let mut connection = connect();
    connection.declare_queue(&queue, false).unwrap();
    let outcome = connection.publish_confirmed(std::slice::from_ref(&message));
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);

    // Only this connection is closed: the broker may serve other tests meanwhile.
    let name = connection.name().to_string();
    let listing = rabbitmqctl(&["list_connections", "-q", "pid", "client_properties"]).unwrap();
    let pid = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(_, properties)| properties.contains(&format!("\"{name}\"")))
        .map(|(pid, _)| pid.to_string())
        .unwrap_or_else(|| panic!("no connection named {name:?} in {listing}"));
    rabbitmqctl(&["close_connection", &pid, "closed by the test"]).unwrap();

    let outcome = connection.publish_confirmed(std::slice::from_ref(&message));
    assert_eq!(outcome.confirmed, 0);
    let error = outcome.failure.expect("a failure after the close");
    assert!(error.outage, "{error:?}");
    let text = error.to_string();
    eprintln!("{text}");
    assert!(
        text.contains("closed by the test") || text.contains("closed the connection"),
        "{text}"
    );

    let mut connection = connect();
    let outcome = connection.publish_confirmed(&[message.clone(), message]);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(outcome.confirmed, 2);
    assert_eq!(connection.delete_queue(&queue), Ok(3));
}

#[test]
fn a_routing_key_too_long_fails_its_message_only() {
    if !RABBITMQ.available("a_routing_key_too_long_fails_its_message_only") {
        return;
    }
    let queue = unique("long-key");
    let long_key = "k".repeat(256);
    let properties = Properties::default();
    let good = Publish {
        exchange: "",
        routing_key: &queue,
        properties: &properties,
        body: b"ok",
    };
    let bad = Publish {
        routing_key: &long_key,
        ..good.clone()
    };
    let mut connection = connect();
    connection.declare_queue(&queue, false).unwrap();
    let outcome = connection.publish_confirmed(&[good.clone(), bad, good.clone()]);
    assert_eq!(outcome.confirmed, 1);
    let error = outcome.failure.expect("the long routing key fails");
    assert!(!error.retryable, "{error:?}");
    assert!(error.to_string().contains("256 bytes long"), "{error}");
    // The connection is still usable.
    assert_eq!(connection.publish_confirmed(&[good]).confirmed, 1);
    assert_eq!(connection.delete_queue(&queue), Ok(2));
}

#[test]
fn publishing_to_a_missing_exchange_is_an_outage_that_says_to_declare_it() {
    if !RABBITMQ.available("publishing_to_a_missing_exchange_is_an_outage_that_says_to_declare_it")
    {
        return;
    }
    let exchange = unique("missing");
    let properties = Properties::default();
    let message = Publish {
        exchange: &exchange,
        routing_key: "files",
        properties: &properties,
        body: b"event",
    };
    let mut connection = connect();
    let outcome = connection.publish_confirmed(&[message.clone(), message]);
    assert_eq!(outcome.confirmed, 0);
    let error = outcome.failure.expect("no such exchange");
    assert!(error.outage, "{error:?}");
    let text = error.to_string();
    eprintln!("{text}");
    assert!(text.contains("404 NOT_FOUND - no exchange"), "{text}");
    assert!(text.contains("declare it first"), "{text}");
}

#[test]
fn a_message_the_broker_refuses_is_retryable_and_the_connection_stays_usable() {
    if !RABBITMQ
        .available("a_message_the_broker_refuses_is_retryable_and_the_connection_stays_usable")
    {
        return;
    }
    let queue = unique("full");
    let full_at_two = [
        ("x-max-length".to_string(), FieldValue::Long(2)),
        (
            "x-overflow".to_string(),
            FieldValue::LongString(b"reject-publish".to_vec()),
        ),
    ];
    let properties = Properties::default();
    let message = Publish {
        exchange: "",
        routing_key: &queue,
        properties: &properties,
        body: b"event",
    };
    let mut connection = connect();
    connection
        .declare_queue_with(&queue, false, &full_at_two)
        .unwrap();
    let outcome = connection.publish_confirmed(&vec![message.clone(); 5]);
    assert_eq!(outcome.confirmed, 2);
    let error = outcome.failure.expect("the third message is refused");
    assert!(error.retryable && !error.outage, "{error:?}");
    let text = error.to_string();
    eprintln!("{text}");
    assert!(text.contains("refused the message"), "{text}");
    assert!(text.contains(&queue), "{text}");

    assert_eq!(connection.delete_queue(&queue), Ok(2));
    connection.declare_queue(&queue, false).unwrap();
    let outcome = connection.publish_confirmed(&[message]);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(connection.delete_queue(&queue), Ok(1));
}

#[test]
fn a_batch_beyond_the_pipelining_window_is_confirmed_whole() {
    if !RABBITMQ.available("a_batch_beyond_the_pipelining_window_is_confirmed_whole") {
        return;
    }
    let queue = unique("window");
    let properties = Properties::default();
    let message = Publish {
        exchange: "",
        routing_key: &queue,
        properties: &properties,
        body: b"event",
    };
    let mut connection = connect();
    connection.declare_queue(&queue, false).unwrap();
    let outcome = connection.publish_confirmed(&vec![message; 5000]);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(outcome.confirmed, 5000);
    assert_eq!(connection.delete_queue(&queue), Ok(5000));
}
