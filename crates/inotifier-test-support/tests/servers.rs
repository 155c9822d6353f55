//! The server helpers against the real programs: `openssl`, `redis-server` (with Sentinel),
//! `redis-cli` and `nats-server`, each test in a directory of its own.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use inotifier_test_support::servers::{
    NatsAuth, NatsOptions, NatsServer, RedisSentinelSet, RedisServer, ServerProcess,
    TlsServerOptions, accepts_connections,
};
use inotifier_test_support::tls::{CertPair, TestCa};

fn test_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inotifier-servers-")
        .tempdir()
        .expect("a temporary directory")
}

/// How redis-cli reaches a TLS server: the CA it trusts, and the certificate it presents.
struct ClientTls<'a> {
    ca: &'a Path,
    cert: Option<&'a CertPair>,
}

fn redis_cli(port: u16, tls: Option<&ClientTls>, args: &[&str]) -> Output {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(tls) = tls {
        command.arg("--tls").arg("--cacert").arg(tls.ca);
        if let Some(cert) = tls.cert {
            command
                .arg("--cert")
                .arg(&cert.cert_file)
                .arg("--key")
                .arg(&cert.key_file);
        }
    }
    command.args(args).output().expect("redis-cli runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Whether `output` is the reply `expected` (redis-cli exits 0 even for some failures).
fn replied(output: &Output, expected: &str) -> bool {
    output.status.success() && stdout(output) == expected
}

fn assert_gone(pids: &[u32]) {
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there after its guard was dropped"
        );
    }
}

fn openssl_text(cert: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .expect("openssl runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn strictly_verified(ca: &TestCa, cert: &Path, purpose: &str) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
        .arg(ca.ca_file())
        .arg(cert)
        .output()
        .expect("openssl runs");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn certificates_have_what_webpki_requires() {
    let dir = test_dir();
    let ca = TestCa::new(dir.path(), "webpki");
    let server = ca.server_cert("server");
    let client = ca.client_cert("alice");

    let ca_text = openssl_text(&ca.ca_file());
    assert!(ca_text.contains("Version: 3 (0x2)"), "{ca_text}");
    assert!(
        ca_text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
        "{ca_text}"
    );
    assert!(
        ca_text.contains("X509v3 Key Usage: critical\n                Certificate Sign"),
        "{ca_text}"
    );

    let server_text = openssl_text(&server.cert_file);
    assert!(server_text.contains("Version: 3 (0x2)"), "{server_text}");
    assert!(server_text.contains("CA:FALSE"), "{server_text}");
    assert!(
        server_text.contains("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
        "{server_text}"
    );
    assert!(
        server_text.contains("TLS Web Server Authentication"),
        "{server_text}"
    );
    assert!(server_text.contains("Digital Signature"), "{server_text}");
    let client_text = openssl_text(&client.cert_file);
    assert!(
        client_text.contains("TLS Web Client Authentication"),
        "{client_text}"
    );
    assert!(client_text.contains("Subject: CN = alice"), "{client_text}");

    strictly_verified(&ca, &server.cert_file, "sslserver").unwrap();
    strictly_verified(&ca, &client.cert_file, "sslclient").unwrap();
    assert!(strictly_verified(&ca, &client.cert_file, "sslserver").is_err());
    let other = TestCa::new(dir.path(), "other");
    assert!(strictly_verified(&other, &server.cert_file, "sslserver").is_err());

    for key in [&server.key_file, &client.key_file, &ca.ca_key_file()] {
        let pem = std::fs::read_to_string(key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
}

#[test]
fn tls_redis_answers_a_client_of_its_ca_and_no_other() {
    let dir = test_dir();
    let ca = TestCa::new(dir.path(), "redis");
    let stranger = TestCa::new(dir.path(), "stranger");
    let cert = ca.server_cert("redis-server");
    let server = RedisServer::tls(
        &dir.path().join("redis"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: false,
        },
    )
    .start();
    let ca_file = ca.ca_file();
    let trusting = ClientTls {
        ca: &ca_file,
        cert: None,
    };
    let reply = redis_cli(server.port(), Some(&trusting), &["PING"]);
    assert!(replied(&reply, "PONG"), "{reply:?}\n{}", server.log());

    let stranger_file = stranger.ca_file();
    let distrusting = ClientTls {
        ca: &stranger_file,
        cert: None,
    };
    let refused = redis_cli(server.port(), Some(&distrusting), &["PING"]);
    assert!(!replied(&refused, "PONG"), "{refused:?}");
    // Plain text gets no answer from a TLS-only server either.
    let plain = redis_cli(server.port(), None, &["PING"]);
    assert!(!replied(&plain, "PONG"), "{plain:?}");

    let pid = server.pid().unwrap();
    drop(server);
    assert_gone(&[pid]);
}

#[test]
fn tls_redis_requiring_client_certificates_refuses_a_client_without_one() {
    let dir = test_dir();
    let ca = TestCa::new(dir.path(), "mtls");
    let cert = ca.server_cert("redis-server");
    let client = ca.client_cert("inotifier");
    let server = RedisServer::tls(
        &dir.path().join("redis"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: true,
        },
    )
    .start();
    let ca_file = ca.ca_file();
    let without = redis_cli(
        server.port(),
        Some(&ClientTls {
            ca: &ca_file,
            cert: None,
        }),
        &["PING"],
    );
    assert!(!replied(&without, "PONG"), "{without:?}");
    let with = redis_cli(
        server.port(),
        Some(&ClientTls {
            ca: &ca_file,
            cert: Some(&client),
        }),
        &["PING"],
    );
    assert!(replied(&with, "PONG"), "{with:?}\n{}", server.log());
    // A certificate of another CA is no better than none.
    let stranger = TestCa::new(dir.path(), "stranger").client_cert("mallory");
    let foreign = redis_cli(
        server.port(),
        Some(&ClientTls {
            ca: &ca_file,
            cert: Some(&stranger),
        }),
        &["PING"],
    );
    assert!(!replied(&foreign, "PONG"), "{foreign:?}");
}

#[test]
fn redis_passwords_and_acl_users_are_required_and_accepted() {
    let dir = test_dir();
    let server = RedisServer::plain(dir.path())
        .requirepass("top")
        .acl_user("alice", "secret")
        .start();
    let anonymous = redis_cli(server.port(), None, &["PING"]);
    assert!(!replied(&anonymous, "PONG"), "{anonymous:?}");
    let default = redis_cli(
        server.port(),
        None,
        &["--no-auth-warning", "-a", "top", "PING"],
    );
    assert!(replied(&default, "PONG"), "{default:?}\n{}", server.log());
    let alice = ["--no-auth-warning", "--user", "alice", "--pass", "secret"];
    let set = redis_cli(
        server.port(),
        None,
        &[&alice[..], &["SET", "k", "v"]].concat(),
    );
    assert!(replied(&set, "OK"), "{set:?}");
    // Channels too: Redis 7 gives a new user none unless told.
    let published = redis_cli(
        server.port(),
        None,
        &[&alice[..], &["PUBLISH", "events", "x"]].concat(),
    );
    assert!(replied(&published, "0"), "{published:?}");
    let wrong = redis_cli(
        server.port(),
        None,
        &[
            "--no-auth-warning",
            "--user",
            "alice",
            "--pass",
            "nope",
            "PING",
        ],
    );
    assert!(!replied(&wrong, "PONG"), "{wrong:?}");
}

#[test]
fn a_restarted_server_answers_again_on_the_same_port() {
    let dir = test_dir();
    let ca = TestCa::new(dir.path(), "restart");
    let cert = ca.server_cert("redis-server");
    let mut server = RedisServer::tls(
        &dir.path().join("redis"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: false,
        },
    )
    .requirepass("pw")
    .start();
    let ca_file = ca.ca_file();
    let tls = ClientTls {
        ca: &ca_file,
        cert: None,
    };
    let ping = |server: &ServerProcess| {
        redis_cli(
            server.port(),
            Some(&tls),
            &["--no-auth-warning", "-a", "pw", "PING"],
        )
    };
    let port = server.port();
    let first_pid = server.pid().unwrap();
    assert!(replied(&ping(&server), "PONG"));

    server.stop();
    assert_gone(&[first_pid]);
    assert!(!accepts_connections(port));
    assert_eq!(server.pid(), None);

    server.restart();
    assert_eq!(server.port(), port);
    let second_pid = server.pid().unwrap();
    assert_ne!(second_pid, first_pid);
    let reply = ping(&server);
    assert!(replied(&reply, "PONG"), "{reply:?}\n{}", server.log());
    // A restart of a running server stops it first.
    server.restart();
    assert_gone(&[second_pid]);
    assert!(replied(&ping(&server), "PONG"));
    assert!(server.log().contains("Ready to accept connections"));
}

fn assert_fails_over(mut set: RedisSentinelSet, tls: Option<&ClientTls>) {
    let master = set.master_port();
    let replica = set.replica_port();
    assert_eq!(set.current_master_port(), master);
    assert_eq!(set.sentinel_addresses().len(), 3);
    let sentinel_port: u16 = set.sentinel_addresses()[0]
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let asked = redis_cli(
        sentinel_port,
        tls,
        &["SENTINEL", "get-master-addr-by-name", set.service_name()],
    );
    assert_eq!(stdout(&asked), format!("127.0.0.1\n{master}"), "{asked:?}");
    let pids = set.pids();
    assert_eq!(pids.len(), 5);

    let promoted = set.kill_master();
    assert_eq!(promoted, replica, "{}", set.logs());
    assert_eq!(set.current_master_port(), replica);
    let role = redis_cli(replica, tls, &["ROLE"]);
    assert!(
        stdout(&role).starts_with("master"),
        "{role:?}\n{}",
        set.logs()
    );
    let write = redis_cli(replica, tls, &["SET", "after-failover", "1"]);
    assert!(replied(&write, "OK"), "{write:?}");
    drop(set);
    assert_gone(&pids);
}

#[test]
fn sentinel_promotes_the_replica_when_the_master_is_killed() {
    let dir = test_dir();
    let set = RedisSentinelSet::start(dir.path(), "inotifier-master");
    assert_fails_over(set, None);
}

#[test]
fn sentinel_over_tls_promotes_the_replica_when_the_master_is_killed() {
    let dir = test_dir();
    let ca = TestCa::new(dir.path(), "sentinel");
    let cert = ca.server_cert("redis-server");
    let client = ca.client_cert("inotifier");
    let set = RedisSentinelSet::start_tls(
        &dir.path().join("redis"),
        "inotifier-master",
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: true,
        },
    );
    let ca_file = ca.ca_file();
    let tls = ClientTls {
        ca: &ca_file,
        cert: Some(&client),
    };
    assert_fails_over(set, Some(&tls));
}

/// The INFO line a NATS server sends first, in plain text even when it requires TLS.
fn nats_info(server: &ServerProcess) -> String {
    let stream = TcpStream::connect(server.address()).expect("NATS accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO {"), "{line:?}\n{}", server.log());
    line
}

#[test]
fn nats_with_tls_and_a_password_announces_both() {
    let dir = test_dir();
    let ca = TestCa::new(dir.path(), "nats");
    let cert = ca.server_cert("nats-server");
    let server = NatsServer::start(
        &dir.path().join("nats"),
        &NatsOptions {
            tls: Some(TlsServerOptions {
                ca: &ca,
                cert: &cert,
                require_client_cert: false,
            }),
            jetstream: true,
            authorization: NatsAuth::UserPassword("alice".into(), "secret".into()),
        },
    );
    let info = nats_info(&server);
    assert!(info.contains("\"tls_required\":true"), "{info}");
    assert!(info.contains("\"auth_required\":true"), "{info}");
    assert!(info.contains("\"jetstream\":true"), "{info}");
    let pid = server.pid().unwrap();
    drop(server);
    assert_gone(&[pid]);
}

#[test]
fn nats_token_and_nkey_authorization_are_announced_and_survive_a_restart() {
    let dir = test_dir();
    let mut server = NatsServer::start(
        &dir.path().join("token"),
        &NatsOptions {
            authorization: NatsAuth::Token("s3cret".into()),
            ..NatsOptions::default()
        },
    );
    let info = nats_info(&server);
    assert!(info.contains("\"auth_required\":true"), "{info}");
    assert!(!info.contains("tls_required"), "{info}");
    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port);
    assert!(nats_info(&server).contains("\"auth_required\":true"));

    // The public user key of the NKey example in the NATS documentation.
    let nkey = NatsServer::start(
        &dir.path().join("nkey"),
        &NatsOptions {
            authorization: NatsAuth::Nkey(
                "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4".into(),
            ),
            ..NatsOptions::default()
        },
    );
    let info = nats_info(&nkey);
    assert!(info.contains("\"nonce\":"), "{info}");
    assert!(info.contains("\"auth_required\":true"), "{info}");
}
