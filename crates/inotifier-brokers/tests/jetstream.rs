//! The `jetstream` processor against a real NATS server with JetStream (127.0.0.1:4222):
//! batches acknowledged by a stream, redelivered events dropped as duplicates, and the
//! failures an operator has to act on. Each test makes a stream of its own, for a subject of
//! its own, and deletes it.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotifier_brokers::jetstream::JetStreamProcessor;
use inotifier_brokers::runtime::block_on;
use inotifier_core::{Event, Mask, Origin, WatchId};
use inotifier_sinks::{BatchOutcome, Processor};
use inotifier_test_support::servers::{
    NatsAuth, NatsOptions, NatsServer, ServerProcess, TlsServerOptions, free_port,
};
use inotifier_test_support::services::NATS;
use inotifier_test_support::tls::TestCa;
use serde_json::{Value, json};

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

/// The test's own client of the server at `address` (plain, no authentication).
fn client(address: &str) -> async_nats::Client {
    block_on(async_nats::connect(format!("nats://{address}"))).unwrap()
}

fn api(client: &async_nats::Client, subject: &str, body: &Value) -> Value {
    let reply = block_on(client.request(subject.to_string(), body.to_string().into())).unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.get("error").is_none(), "{subject}: {reply}");
    reply
}

/// How many messages stream `name` holds.
fn stored(client: &async_nats::Client, name: &str) -> u64 {
    let info = api(client, &format!("$JS.API.STREAM.INFO.{name}"), &json!({}));
    info["state"]["messages"].as_u64().unwrap()
}

/// A stream taking `subjects`, deleted when dropped.
struct Stream {
    name: String,
    client: async_nats::Client,
}

impl Stream {
    fn create(subjects: &str) -> Stream {
        Stream::create_at(NATS.address, subjects, "memory")
    }

    fn create_at(address: &str, subjects: &str, storage: &str) -> Stream {
        let name = unique("INOTIFIER_TEST_");
        let client = client(address);
        api(
            &client,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &json!({
                "name": name,
                "subjects": [subjects],
                "storage": storage,
                "retention": "limits",
                "discard": "old",
                "duplicate_window": 120_000_000_000u64,
            }),
        );
        Stream { name, client }
    }

    fn messages(&mut self) -> u64 {
        stored(&self.client, &self.name)
    }

    /// Publishes `{}` with `message_id`, as the processor would, and returns the ack.
    fn publish_raw(&mut self, subject: &str, message_id: &str) -> Value {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id);
        let reply = block_on(self.client.request_with_headers(
            subject.to_string(),
            headers,
            "{}".into(),
        ))
        .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = block_on(
            self.client
                .request(format!("$JS.API.STREAM.DELETE.{}", self.name), "".into()),
        );
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
    processor_in(Path::new("/"), options)
}

fn processor_in(base_dir: &Path, options: Value) -> JetStreamProcessor {
    JetStreamProcessor::build(options.as_object().unwrap(), base_dir).unwrap()
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
        failure
            .message
            .contains(&format!("NATS at nats://127.0.0.1:{port}: cannot connect")),
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

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory of the test's own, removed when dropped.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn refused_credentials_are_an_outage_naming_the_fix() {
    let dir = scratch();
    let server = NatsServer::start(
        dir.path(),
        &NatsOptions {
            authorization: NatsAuth::Token("s3cret".into()),
            ..NatsOptions::default()
        },
    );
    let url = format!("nats://{}", server.address());
    let anonymous = processor(json!({"url": url}));
    let failure = anonymous.process(&events(1)[0]).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure.message.contains("refused the credentials"),
        "{failure:?}"
    );
    assert!(failure.message.contains("token_env"), "{failure:?}");
}

#[test]
fn an_nkey_seed_is_accepted_and_another_refused() {
    let dir = scratch();
    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::start(
        &dir.path().join("nkey"),
        &NatsOptions {
            authorization: NatsAuth::Nkey(user.public_key()),
            ..NatsOptions::default()
        },
    );
    std::fs::write(
        dir.path().join("user.nk"),
        format!("{}\n", user.seed().unwrap()),
    )
    .unwrap();
    let url = format!("nats://{}", server.address());
    let signed = processor_in(
        dir.path(),
        json!({"url": url, "nkey_file": "user.nk", "subject": "plain.x"}),
    );
    let failure = signed.process(&events(1)[0]).unwrap_err();
    assert!(
        failure
            .message
            .contains("no JetStream stream takes subject"),
        "{failure:?}"
    );
    let other = nkeys::KeyPair::new_user();
    std::fs::write(dir.path().join("other.nk"), other.seed().unwrap()).unwrap();
    let stranger = processor_in(dir.path(), json!({"url": url, "nkey_file": "other.nk"}));
    let failure = stranger.process(&events(1)[0]).unwrap_err();
    assert!(
        failure.message.contains("refused the credentials"),
        "{failure:?}"
    );
}

/// A JetStream server over TLS (its certificate signed by `ca`), and a file stream on it.
fn tls_server(dir: &Path, ca: &TestCa, require_client_cert: bool) -> ServerProcess {
    let cert = ca.server_cert("nats");
    NatsServer::start(
        dir,
        &NatsOptions {
            tls: Some(TlsServerOptions {
                ca,
                cert: &cert,
                require_client_cert,
            }),
            jetstream: true,
            authorization: NatsAuth::None,
        },
    )
}

/// A client of a TLS server, for creating streams.
fn tls_client(
    address: &str,
    ca: &TestCa,
    client: Option<&inotifier_test_support::tls::CertPair>,
) -> async_nats::Client {
    let mut options = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(ca.ca_file());
    if let Some(pair) = client {
        options = options.add_client_certificate(pair.cert_file.clone(), pair.key_file.clone());
    }
    block_on(options.connect(format!("tls://{address}"))).unwrap()
}

#[test]
fn tls_with_the_right_ca_delivers_and_a_wrong_ca_is_refused_naming_the_fix() {
    let dir = scratch();
    let ca = TestCa::new(dir.path(), "right");
    let stranger = TestCa::new(dir.path(), "wrong");
    let server = tls_server(&dir.path().join("nats"), &ca, false);
    let client = tls_client(&server.address(), &ca, None);
    let prefix = unique("tls.");
    let name = unique("INOTIFIER_TLS_");
    api(
        &client,
        &format!("$JS.API.STREAM.CREATE.{name}"),
        &json!({"name": name, "subjects": [format!("{prefix}.>")], "storage": "memory"}),
    );
    let count = |client: &async_nats::Client| stored(client, &name);
    let events = events(200);
    // nats:// with a server whose INFO says tls_required, and tls://: both verified.
    for scheme in ["nats", "tls"] {
        let sender = processor(json!({
            "url": format!("{scheme}://{}", server.address()),
            "subject": format!("{prefix}.{scheme}"),
            "ca_file": ca.ca_file(),
            "source": scheme,
        }));
        let batch: Vec<&Event> = events.iter().collect();
        assert_eq!(
            sender.process_batch(&batch, &|_| true),
            BatchOutcome::all(200),
            "{scheme}"
        );
    }
    assert_eq!(count(&client), 400);
    // The Mozilla roots do not know the test CA, nor does another CA's file.
    for options in [json!({}), json!({"ca_file": stranger.ca_file()})] {
        let mut options = options;
        options["url"] = json!(format!("nats://{}", server.address()));
        options["subject"] = json!(format!("{prefix}.refused"));
        let refused = processor(options);
        let failure = refused.process(&events[0]).unwrap_err();
        assert!(failure.outage, "{failure:?}");
        assert!(failure.message.contains("TLS"), "{failure:?}");
        assert!(
            failure.message.contains(&server.address()),
            "names the server: {failure:?}"
        );
        assert!(
            failure.message.contains("set the option ca_file"),
            "{failure:?}"
        );
    }
    assert_eq!(
        count(&client),
        400,
        "nothing delivered without verification"
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let dir = scratch();
    let ca = TestCa::new(dir.path(), "ca");
    let server = tls_server(&dir.path().join("nats"), &ca, true);
    let pair = ca.client_cert("inotifier");
    let client = tls_client(&server.address(), &ca, Some(&pair));
    let prefix = unique("mtls.");
    let name = unique("INOTIFIER_MTLS_");
    api(
        &client,
        &format!("$JS.API.STREAM.CREATE.{name}"),
        &json!({"name": name, "subjects": [format!("{prefix}.>")], "storage": "memory"}),
    );
    let url = format!("tls://{}", server.address());
    let without =
        processor(json!({"url": url, "subject": format!("{prefix}.x"), "ca_file": ca.ca_file()}));
    let failure = without.process(&events(1)[0]).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(failure.message.contains("TLS"), "{failure:?}");
    let with = processor(json!({
        "url": url,
        "subject": format!("{prefix}.x"),
        "ca_file": ca.ca_file(),
        "cert_file": pair.cert_file,
        "key_file": pair.key_file,
    }));
    let events = events(50);
    let batch: Vec<&Event> = events.iter().collect();
    assert_eq!(with.process_batch(&batch, &|_| true), BatchOutcome::all(50));
    let info = api(&client, &format!("$JS.API.STREAM.INFO.{name}"), &json!({}));
    assert_eq!(info["state"]["messages"], 50);
}

#[test]
fn a_server_restarted_mid_stream_loses_nothing_and_stores_each_event_once() {
    let dir = scratch();
    let mut server = NatsServer::start(
        dir.path(),
        &NatsOptions {
            jetstream: true,
            ..NatsOptions::default()
        },
    );
    let address = server.address();
    let prefix = unique("restart.");
    // File storage: the stream and what it stored survive the restart.
    let mut stream = Stream::create_at(&address, &format!("{prefix}.>"), "file");
    let processor = processor(json!({
        "url": format!("nats://{address}"),
        "subject": format!("{prefix}.events"),
        "timeout": "2s",
    }));
    let events = events(3000);
    let fault = common::MidStreamFault::holding_at(1500);
    std::thread::scope(|scope| {
        let delivering = scope.spawn(|| {
            common::deliver_all_through(&processor, &events, 20, Duration::from_secs(60), &fault)
        });
        let watcher = client(&address);
        wait_for("the first events to be stored", || {
            stored(&watcher, &stream.name) >= 300
        });
        drop(watcher);
        fault.restart(&mut server);
        delivering.join().unwrap();
    });
    assert_eq!(
        stored(&client(&address), &stream.name),
        3000,
        "every event once: duplicates dropped by Nats-Msg-Id"
    );
    assert_eq!(stream.messages(), 3000);
}

/// A JWT of the NATS decentralised model: `claims` (with `iss`, the signer's public key, and
/// `sub`) signed by `signer`, as `nsc` makes them.
fn nats_jwt(signer: &nkeys::KeyPair, claims: Value) -> String {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    let signature = encode(&signer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{signature}")
}

fn claims(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> Value {
    json!({
        "jti": format!("{name}{}", std::process::id()),
        "iat": 1_764_000_000,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    })
}

#[test]
fn a_credentials_file_signs_in_to_a_server_of_the_decentralised_model() {
    let dir = scratch();
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        claims(
            &operator,
            &operator.public_key(),
            "operator",
            json!({"type": "operator", "version": 2}),
        ),
    );
    let unlimited = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    let account_jwt = nats_jwt(
        &operator,
        claims(
            &operator,
            &account.public_key(),
            "account",
            json!({
                "limits": unlimited, "default_permissions": {"pub": {}, "sub": {}},
                "type": "account", "version": 2,
            }),
        ),
    );
    let user_jwt = nats_jwt(
        &account,
        claims(
            &account,
            &user.public_key(),
            "user",
            json!({
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                "type": "user", "version": 2,
            }),
        ),
    );
    let port = free_port();
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "host: 127.0.0.1\nport: {port}\noperator: \"{operator_jwt}\"\nresolver: MEMORY\n\
             resolver_preload: {{ {}: \"{account_jwt}\" }}\n",
            account.public_key()
        ),
    )
    .unwrap();
    let log = dir.path().join("nats.log");
    let _server = ServerProcess::start(
        "nats-server",
        vec![
            "-c".into(),
            config.into_os_string(),
            "-l".into(),
            log.clone().into_os_string(),
        ],
        port,
        &log,
    );
    let creds = |jwt: &str, seed: &str| {
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        )
    };
    std::fs::write(
        dir.path().join("user.creds"),
        creds(&user_jwt, &user.seed().unwrap()),
    )
    .unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    let signed = processor_in(
        dir.path(),
        json!({"url": url, "creds_file": "user.creds", "subject": "plain.x"}),
    );
    let failure = signed.process(&events(1)[0]).unwrap_err();
    // Signed in and published; no stream takes the subject: the answer expected.
    assert!(
        failure
            .message
            .contains("no JetStream stream takes subject"),
        "{failure:?}"
    );
    // The same JWT with another user's seed: the server refuses the signature.
    let other = nkeys::KeyPair::new_user();
    std::fs::write(
        dir.path().join("other.creds"),
        creds(&user_jwt, &other.seed().unwrap()),
    )
    .unwrap();
    let forged = processor_in(dir.path(), json!({"url": url, "creds_file": "other.creds"}));
    let failure = forged.process(&events(1)[0]).unwrap_err();
    assert!(failure.outage, "{failure:?}");
    assert!(
        failure.message.contains("refused the credentials"),
        "{failure:?}"
    );
}
