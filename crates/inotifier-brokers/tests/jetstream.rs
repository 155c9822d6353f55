//! The `jetstream` processor against a real NATS server with JetStream (127.0.0.1:4222):
//! batches acknowledged by a stream, redelivered events dropped as duplicates, and the
//! failures an operator has to act on. Each test makes a stream of its own, for a subject of
//! its own, and deletes it.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotifier_brokers::jetstream::JetStreamProcessor;
use inotifier_brokers::nats::{ConnectOptions, Message, NatsConnection};
use inotifier_brokers::url::BrokerUrl;
use inotifier_core::{Event, Mask, Origin, WatchId};
use inotifier_sinks::{BatchOutcome, Processor};
use inotifier_test_support::services::NATS;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

fn client(address: &str) -> NatsConnection {
    let url = BrokerUrl::parse(&format!("nats://{address}"), &[("nats", 4222)]).unwrap();
    NatsConnection::connect(&ConnectOptions {
        url: &url,
        token: None,
        timeout: TIMEOUT,
        name: "inotifier-test",
    })
    .unwrap()
}

fn api(connection: &mut NatsConnection, subject: &str, body: &Value) -> Value {
    let reply: Message = connection
        .request(subject, &[], body.to_string().as_bytes())
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.get("error").is_none(), "{subject}: {reply}");
    reply
}

/// A memory stream taking `subjects`, deleted when dropped.
struct Stream {
    name: String,
    connection: NatsConnection,
}

impl Stream {
    fn create(subjects: &str) -> Stream {
        Stream::create_at(NATS.address, subjects)
    }

    fn create_at(address: &str, subjects: &str) -> Stream {
        let name = unique("INOTIFIER_TEST_");
        let mut connection = client(address);
        api(
            &mut connection,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &json!({
                "name": name,
                "subjects": [subjects],
                "storage": "memory",
                "retention": "limits",
                "discard": "old",
                "duplicate_window": 120_000_000_000u64,
            }),
        );
        Stream { name, connection }
    }

    fn messages(&mut self) -> u64 {
        let info = api(
            &mut self.connection,
            &format!("$JS.API.STREAM.INFO.{}", self.name),
            &json!({}),
        );
        info["state"]["messages"].as_u64().unwrap()
    }

    /// Publishes `payload` with `message_id`, as the processor would, and returns the ack.
    fn publish_raw(&mut self, subject: &str, message_id: &str) -> Value {
        let reply = self
            .connection
            .request(subject, &[("Nats-Msg-Id", message_id)], b"{}")
            .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self
            .connection
            .request(&format!("$JS.API.STREAM.DELETE.{}", self.name), &[], b"");
    }
}

fn events(count: u64) -> Vec<Event> {
    let path: Arc<Path> = Arc::from(Path::new("/srv/in"));
    (1..=count)
        .map(|id| Event {
            id,
            mask: if id % 2 == 1 {
                Mask::IN_CREATE
            } else {
                Mask::IN_CLOSE_WRITE
            },
            cookie: 0,
            wd: 1,
            path: path.clone(),
            name: OsString::from(format!("file {}.txt", id.div_ceil(2))),
            src_pathname: None,
            origin: Origin::Kernel,
            time_ns: 1_764_077_825_000_000_000,
            watches: Arc::from([WatchId(0)]),
        })
        .collect()
}

fn processor(options: Value) -> JetStreamProcessor {
    JetStreamProcessor::build(options.as_object().unwrap()).unwrap()
}

#[test]
fn a_batch_is_acknowledged_and_a_redelivery_is_a_duplicate() {
    if !NATS.available("a_batch_is_acknowledged_and_a_redelivery_is_a_duplicate") {
        return;
    }
    let prefix = unique("inotifier_test.");
    let mut stream = Stream::create(&format!("{prefix}.>"));
    let source = unique("host-");
    let processor = processor(json!({
        "url": format!("nats://{}", NATS.address),
        "subject": format!("{prefix}.{{maskname}}.{{name}}"),
        "stream": stream.name,
        "source": source,
    }));
    let events = events(5000);
    let batch: Vec<&Event> = events.iter().collect();
    let started = Instant::now();
    let outcome = processor.process_batch(&batch, &|_| true);
    let elapsed = started.elapsed();
    assert_eq!(outcome, BatchOutcome::all(5000));
    eprintln!(
        "5000 events published and acknowledged in {elapsed:?} ({:.0}/s)",
        5000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(stream.messages(), 5000);
    assert_eq!(
        processor.subject(&events[0]),
        format!("{prefix}.IN_CREATE.file_1_txt")
    );

    // Delivered again (a restart's redelivery): acknowledged, and dropped as duplicates.
    assert_eq!(
        processor.process_batch(&batch[..100], &|_| true),
        BatchOutcome::all(100)
    );
    processor.process(&events[4999]).unwrap();
    assert_eq!(stream.messages(), 5000);
    let id = inotifier_brokers::identity::message_id(&source, 1);
    let ack = stream.publish_raw(&format!("{prefix}.IN_CREATE.file_1_txt"), &id);
    assert_eq!(ack["duplicate"], true, "{ack}");
    assert_eq!(ack["seq"], 1, "{ack}");
    processor.close();
}

#[test]
fn a_message_taken_by_another_stream_fails_permanently() {
    if !NATS.available("a_message_taken_by_another_stream_fails_permanently") {
        return;
    }
    let prefix = unique("inotifier_test.");
    let _stream = Stream::create(&format!("{prefix}.>"));
    let processor = processor(json!({
        "url": format!("nats://{}", NATS.address),
        "subject": format!("{prefix}.events"),
        "stream": "SOME_OTHER_STREAM",
    }));
    let events = events(3);
    let batch: Vec<&Event> = events.iter().collect();
    let outcome = processor.process_batch(&batch, &|_| true);
    assert_eq!(outcome.processed, 0);
    let failure = outcome.failure.unwrap();
    assert!(!failure.retryable && !failure.outage, "{failure:?}");
    assert!(
        failure.message.contains("expected stream does not match"),
        "{failure:?}"
    );
}

#[test]
fn no_stream_for_the_subject_is_an_outage_saying_how_to_make_one() {
    if !NATS.available("no_stream_for_the_subject_is_an_outage_saying_how_to_make_one") {
        return;
    }
    let subject = format!("{}.events", unique("inotifier_nostream."));
    let processor = processor(json!({
        "url": format!("nats://{}", NATS.address),
        "subject": subject,
    }));
    let events = events(2);
    let started = Instant::now();
    let failure = processor.process(&events[0]).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure
            .message
            .contains(&format!("no JetStream stream takes subject {subject}")),
        "{failure:?}"
    );
    assert!(failure.message.contains("nats stream add"), "{failure:?}");
    // "No responders" comes at once, not after the timeout.
    assert!(started.elapsed() < Duration::from_secs(5));
    let batch: Vec<&Event> = events.iter().collect();
    let outcome = processor.process_batch(&batch, &|_| true);
    assert_eq!(outcome.processed, 0);
    assert!(outcome.failure.unwrap().outage);
}

#[test]
fn an_unreachable_server_is_an_outage_found_quickly() {
    // Nothing listens on a port just freed.
    let port = free_port();
    let processor = processor(json!({
        "url": format!("nats://127.0.0.1:{port}"),
        "timeout": "5s",
    }));
    let events = events(1);
    let started = Instant::now();
    let failure = processor.process(&events[0]).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure.message.contains(&format!(
            "cannot connect to NATS at nats://127.0.0.1:{port}"
        )),
        "{failure:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Stopping before the batch starts: nothing tried.
    let batch: Vec<&Event> = events.iter().collect();
    assert_eq!(
        processor.process_batch(&batch, &|_| false),
        BatchOutcome::stopped(0)
    );
}

/// A nats-server of the test's own, ended by its pid when dropped.
struct PrivateServer(Child);

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl PrivateServer {
    /// Starts `nats-server` with `arguments` on a free port of its own and waits until it
    /// listens; None (the test is skipped) when nats-server is not installed.
    fn start(test: &str, arguments: impl Fn(u16) -> Vec<String>) -> Option<(PrivateServer, u16)> {
        let Ok(program) = which("nats-server") else {
            eprintln!("{test}: skipped: nats-server is not installed");
            return None;
        };
        let port = free_port();
        let server = PrivateServer(
            Command::new(program)
                .args(arguments(port))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for("the private nats-server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some((server, port))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refused_credentials_are_an_outage_naming_the_fix() {
    let test = "refused_credentials_are_an_outage_naming_the_fix";
    let Some((_server, port)) = PrivateServer::start(test, |port| {
        [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--auth",
            "s3cret",
        ]
        .map(String::from)
        .to_vec()
    }) else {
        return;
    };
    let processor = processor(json!({"url": format!("nats://127.0.0.1:{port}")}));
    let failure = processor.process(&events(1)[0]).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure.message.contains("Authorization Violation"),
        "{failure:?}"
    );
    assert!(failure.message.contains("token_env"), "{failure:?}");
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|directory| directory.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(())
}

/// How many clients the server with monitoring port `monitoring_port` has (`/connz`).
fn connections(monitoring_port: u16) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", monitoring_port)) else {
        return u64::MAX;
    };
    stream
        .write_all(b"GET /connz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|connz| connz["num_connections"].as_u64())
        .unwrap_or(u64::MAX)
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_without_a_failure() {
    let test = "a_connection_the_server_closed_while_idle_is_replaced_without_a_failure";
    let monitoring = free_port();
    let directory = std::env::temp_dir().join(unique("inotifier-nats-idle-"));
    std::fs::create_dir_all(&directory).unwrap();
    let config = directory.join("nats.conf");
    // The server pings every 100 ms and closes a client that leaves one PING unanswered: an
    // idle processor, which reads nothing between batches, is closed within a second.
    std::fs::write(
        &config,
        format!(
            "ping_interval: \"100ms\"\nping_max: 1\nhttp_port: {monitoring}\n\
             jetstream {{ store_dir: \"{}\" }}\n",
            directory.join("jetstream").display()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let Some((server, port)) = PrivateServer::start(test, |port| {
        [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            &config_arg,
        ]
        .map(String::from)
        .to_vec()
    }) else {
        return;
    };
    let address = format!("127.0.0.1:{port}");
    let prefix = unique("idle.");
    // Its connection idles too, and is closed alike; the server dies with its streams.
    let _stream = Stream::create_at(&address, &format!("{prefix}.>"));
    let processor = processor(json!({
        "url": format!("nats://{address}"),
        "subject": format!("{prefix}.events"),
    }));
    let events = events(2);
    processor.process(&events[0]).unwrap();
    wait_for("the server to close the idle connection", || {
        connections(monitoring) == 0
    });
    processor.process(&events[1]).unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&directory);
}
