//! The webhook processor against a real HTTP server in another process
//! (`fixtures/hook_server.py`), which checks the HMAC signature itself with Python's `hmac`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event, options, temp_dir};
use inotifier_sinks::{BuildError, Processor, RetryPolicy, build};
use inotifier_test_support::hook_server::HookServer;
use serde_json::{Value, json};

/// The secret the tests sign with: set once in this process's environment.
const SECRET_ENV: &str = "INOTIFIER_TEST_WEBHOOK_SECRET";
const SECRET: &str = "s3cr3t-for-tests";

fn set_secret() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the variable is set once, before any processor reads it; std serializes its
        // own environment accesses, and no C code of these tests reads the environment
        // concurrently (the servers are reached by IP address, with no resolver).
        unsafe { std::env::set_var(SECRET_ENV, SECRET) };
    });
}

/// A `hook_server.py` with the tests' secrets in its environment, and its log in a directory
/// of its own.
struct Server {
    server: HookServer,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let dir = temp_dir();
        let server = HookServer::start(
            &dir.path().join("requests.jsonl"),
            args,
            &[(SECRET_ENV, SECRET), ("OTHER_SECRET", "not-the-secret")],
        );
        Server { server, _dir: dir }
    }

    fn port(&self) -> u16 {
        self.server.port
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/inotifier?x=1", self.port())
    }

    /// The requests the server recorded.
    fn requests(&self) -> Vec<Value> {
        self.server
            .request_lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn webhook(value: Value) -> Arc<dyn Processor> {
    build("webhook", &options(value), Path::new("/")).unwrap_or_else(|e| panic!("{e}"))
}

fn webhook_error(value: Value) -> BuildError {
    match build("webhook", &options(value), Path::new("/")) {
        Ok(_) => panic!("built"),
        Err(error) => error,
    }
}

#[test]
fn five_hundreds_are_retried_with_backoff_until_the_server_recovers() {
    set_secret();
    let server = Server::start(&["--fail", "3", "--secret-env", SECRET_ENV]);
    let processor = webhook(json!({
        "url": server.url(),
        "secret_env": SECRET_ENV,
        "headers": {"Authorization": "Bearer token-1"},
        "timeout": "5s",
    }));
    let policy = RetryPolicy {
        attempts: 5,
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
    };
    let event = event(Path::new("/srv/in"), "rapport d'été.pdf".as_bytes());
    let mut waits = Vec::new();
    let attempts = policy
        .run(processor.as_ref(), &event, |delay| {
            waits.push(delay);
            std::thread::sleep(delay);
            true
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(attempts, 4, "three 500s, then a 200");
    assert_eq!(waits.len(), 3);
    for (attempt, wait) in (1..).zip(&waits) {
        let backoff = policy.backoff(attempt);
        assert!(*wait >= backoff / 2 && *wait <= backoff, "{wait:?}");
    }

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!(request["method"], "POST");
        assert_eq!(request["path"], "/hooks/inotifier?x=1");
        let headers = &request["headers"];
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-inotifier-event-id"], "42");
        assert_eq!(headers["authorization"], "Bearer token-1");
        assert!(
            headers["user-agent"]
                .as_str()
                .unwrap()
                .starts_with("inotifier/")
        );
        assert_eq!(
            request["signature_ok"], true,
            "Python's hmac verified the signature: {request}"
        );
        let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["id"], 42);
        assert_eq!(body["maskname"], "IN_CLOSE_WRITE");
        assert_eq!(body["pathname"], "/srv/in/rapport d'été.pdf");
        assert_eq!(body["name"], "rapport d'été.pdf");
        assert_eq!(body["src_pathname"], Value::Null);
        assert_eq!(body["synthetic"], false);
    }
    let ports: Vec<&Value> = requests.iter().map(|r| &r["client_port"]).collect();
    assert!(
        ports.iter().all(|port| *port == ports[0]),
        "one kept-alive connection for every request: {ports:?}"
    );
}

#[test]
fn a_500_is_retryable_and_the_next_call_succeeds() {
    let server = Server::start(&["--fail", "1"]);
    let processor = webhook(json!({"url": server.url()}));
    let event = event(Path::new("/srv/in"), b"a.txt");
    let error = processor.process(&event).unwrap_err();
    assert!(error.retryable, "{error:?}");
    for part in ["answered 500", "reply 1: 500", "event 42", "/srv/in/a.txt"] {
        assert!(error.message.contains(part), "{part:?} in {error}");
    }
    processor.process(&event).unwrap();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(
        server.requests()[0]["signature_ok"],
        Value::Null,
        "the server checks no signature"
    );
    assert!(
        server.requests()[0]["headers"]
            .get("x-inotifier-signature")
            .is_none(),
        "no secret, no signature"
    );
}

#[test]
fn a_404_is_permanent_and_a_429_retryable() {
    let not_found = Server::start(&["--status", "404"]);
    let error = webhook(json!({"url": not_found.url()}))
        .process(&event(Path::new("/d"), b"f"))
        .unwrap_err();
    assert!(!error.retryable, "{error:?}");
    assert!(error.message.contains("answered 404"), "{error}");

    let too_many = Server::start(&["--status", "429"]);
    let error = webhook(json!({"url": too_many.url()}))
        .process(&event(Path::new("/d"), b"f"))
        .unwrap_err();
    assert!(error.retryable, "{error:?}");
    assert!(error.message.contains("answered 429"), "{error}");
}

#[test]
fn a_refused_connection_is_retryable() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = webhook(json!({"url": format!("http://127.0.0.1:{port}/")}))
        .process(&event(Path::new("/d"), b"f"))
        .unwrap_err();
    assert!(error.retryable, "{error:?}");
    assert!(
        error.outage,
        "a receiver that is down is an outage: {error:?}"
    );
    assert!(error.message.contains(&port.to_string()), "{error}");
}

#[test]
fn a_receiver_that_is_down_is_waited_for_beyond_the_attempts() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let processor = webhook(json!({"url": format!("http://127.0.0.1:{port}/hooks")}));
    let event = event(Path::new("/d"), b"f");
    let policy = RetryPolicy {
        attempts: 2,
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        multiplier: 2.0,
    };
    let first = processor.process(&event).unwrap_err();
    // The receiver comes up after five more refused tries, far beyond the two attempts.
    let mut waits = 0;
    let mut server = None;
    let port_text = port.to_string();
    let tries = policy
        .retry_failed(&*processor, &event, first, |_| {
            waits += 1;
            if waits == 5 {
                server = Some(Server::start(&["--port", &port_text]));
            }
            true
        })
        .expect("delivered once the receiver is up");
    assert_eq!(tries, 6);
    assert_eq!(server.expect("started").requests().len(), 1);
}

#[test]
fn a_slow_server_times_out_and_that_is_retryable() {
    let server = Server::start(&["--delay", "5"]);
    let processor = webhook(json!({"url": server.url(), "timeout": "300ms"}));
    let started = Instant::now();
    let error = processor
        .process(&event(Path::new("/d"), b"f"))
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.retryable, "{error:?}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert!(error.message.to_lowercase().contains("timeout"), "{error}");
}

#[test]
fn a_signature_with_another_secret_does_not_verify() {
    set_secret();
    // The server checks against OTHER_SECRET; we sign with SECRET: Python must say no.
    let server = Server::start(&["--secret-env", "OTHER_SECRET"]);
    webhook(json!({"url": server.url(), "secret_env": SECRET_ENV}))
        .process(&event(Path::new("/d"), b"f"))
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests[0]["signature_ok"], false);
    assert!(
        requests[0]["headers"]["x-inotifier-signature"]
            .as_str()
            .unwrap()
            .starts_with("sha256=")
    );
}

/// A CA and a certificate it signed for 127.0.0.1, made by the `openssl` command.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command makes the test certificates");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
        &["-subj", "/CN=inotifier test CA", "-days", "2"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

#[test]
fn https_with_a_private_ca_is_verified_against_ca_file() {
    let dir = temp_dir();
    let (ca, cert, key) = certificates(dir.path());
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let url = format!("https://127.0.0.1:{}/hook", server.port());
    let event = event(Path::new("/srv/in"), b"secure.txt");

    // The Mozilla roots do not know the test CA: a TLS failure, retryable (certificates get
    // fixed), and nothing reached the server's handler.
    let error = webhook(json!({"url": url})).process(&event).unwrap_err();
    assert!(error.retryable, "{error:?}");
    assert!(server.requests().is_empty());

    // With the CA trusted, the event arrives, relative ca_file resolved against the base.
    let processor = build(
        "webhook",
        &options(json!({"url": url, "ca_file": "ca.pem"})),
        ca.parent().unwrap(),
    )
    .unwrap();
    processor.process(&event).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["pathname"], "/srv/in/secure.txt");

    let error = webhook_error(json!({"url": url, "ca_file": key.to_str().unwrap()}));
    assert_eq!(error.option(), Some("ca_file"));
    assert!(error.to_string().contains("no certificate"), "{error}");
}

#[test]
fn options_are_checked_and_secrets_come_from_the_environment() {
    let error = webhook_error(json!({"url": "http://127.0.0.1:1/", "secret": "hunter2"}));
    assert_eq!(error.option(), Some("secret"));
    assert!(
        error.to_string().contains("environment variable")
            && error.to_string().contains("secret_env"),
        "{error}"
    );
    let error = webhook_error(
        json!({"url": "http://127.0.0.1:1/", "secret_env": "INOTIFIER_TEST_UNSET_VARIABLE"}),
    );
    assert_eq!(error.option(), Some("secret_env"));
    assert!(error.to_string().contains("is not set"), "{error}");
    let error = webhook_error(json!({"url": "ftp://example.com/"}));
    assert_eq!(error.option(), Some("url"));
    let error = webhook_error(json!({"timeout": "1s"}));
    assert_eq!(
        error.to_string(),
        "missing option `url` for processor webhook"
    );
    let error = webhook_error(json!({"url": "http://127.0.0.1:1/", "header": {}}));
    assert_eq!(
        error.to_string(),
        "unknown option `header` for processor webhook: expected one of url, timeout, headers, \
         secret_env, ca_file"
    );
    let error = webhook_error(
        json!({"url": "http://127.0.0.1:1/", "headers": {"Content-Type": "text/plain"}}),
    );
    assert_eq!(error.option(), Some("headers"));
    let error = webhook_error(json!({"url": "http://127.0.0.1:1/", "ca_file": "/no/such.pem"}));
    assert_eq!(error.option(), Some("ca_file"));
    assert!(
        inotifier_sinks::validate(
            "webhook",
            &options(json!({"url": "https://example.com/hook", "timeout": 2})),
            Path::new("/")
        )
        .is_ok()
    );
}
