//! The processors' Redis connection ([`RedisLink`]) against the real Redis of this machine
//! (127.0.0.1:6379): error replies in place, a connection killed by the server replaced at
//! once, the database of the URL, a refused password, a server that is not there. Each test
//! uses keys of its own and deletes them.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use inotifier_brokers::redis_client::{self, RedisLink, TargetOptions};
use inotifier_brokers::tls::TlsOptions;
use inotifier_brokers::url::BrokerUrl;
use inotifier_test_support::services::REDIS;

const TIMEOUT: Duration = Duration::from_secs(10);

fn link(url: &str) -> RedisLink {
    let url = BrokerUrl::parse(url, redis_client::SCHEMES).unwrap();
    TargetOptions {
        processor: "redis_stream",
        url_option: "url",
        sentinels: None,
        service_name: None,
        tls: &TlsOptions::default(),
        base_dir: Path::new("/"),
        timeout: TIMEOUT,
        url_origin: "the environment variable REDIS_URL".into(),
        replicas: 0,
        sentinel_password_env: None,
    }
    .target(url)
    .unwrap()
    .link()
    .unwrap()
}

fn pipe(commands: &[&[&str]]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for command in commands {
        let added = pipe.cmd(command[0]);
        for arg in &command[1..] {
            added.arg(*arg);
        }
    }
    pipe
}

fn send(link: &RedisLink, commands: &[&[&str]]) -> Vec<redis::Value> {
    link.send(pipe(commands)).unwrap()
}

/// A key no other test (or run) uses.
fn key(test: &str) -> String {
    format!("inotifier-test:{test}:{}", std::process::id())
}

fn client_id(link: &RedisLink) -> i64 {
    match send(link, &[&["CLIENT", "ID"]])[..] {
        [redis::Value::Int(id)] => id,
        ref other => panic!("CLIENT ID answered {other:?}"),
    }
}

fn kill_client(id: i64) {
    let mut admin = redis::Client::open("redis://127.0.0.1:6379/0")
        .unwrap()
        .get_connection()
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut admin)
        .unwrap();
    assert_eq!(killed, 1);
}

#[test]
fn an_error_reply_mid_pipeline_is_returned_in_place() {
    if !REDIS.available("an_error_reply_mid_pipeline_is_returned_in_place") {
        return;
    }
    let (list, text) = (key("error-list"), key("error-text"));
    let link = link("redis://127.0.0.1:6379/0");
    let replies = send(
        &link,
        &[
            &["SET", &text, "x"],
            &["RPUSH", &list, "a"],
            // A list command on a string: WRONGTYPE.
            &["RPUSH", &text, "b"],
            &["RPUSH", &list, "c"],
            &["NOSUCHCOMMAND"],
            &["LLEN", &list],
        ],
    );
    assert_eq!(replies.len(), 6, "{replies:?}");
    assert_eq!(replies[1], redis::Value::Int(1));
    let (code, error) = redis_client::error_reply(&replies[2]).unwrap();
    assert_eq!(code, "WRONGTYPE", "{error}");
    assert_eq!(replies[3], redis::Value::Int(2));
    let (_, error) = redis_client::error_reply(&replies[4]).unwrap();
    assert!(error.contains("unknown command"), "{error}");
    assert_eq!(replies[5], redis::Value::Int(2));
    assert_eq!(redis_client::error_reply(&replies[5]), None);
    send(&link, &[&["DEL", &list, &text]]);
}

#[test]
fn a_connection_the_server_killed_is_replaced_and_the_pipeline_sent_again() {
    if !REDIS.available("a_connection_the_server_killed_is_replaced_and_the_pipeline_sent_again") {
        return;
    }
    let key = key("killed");
    let link = link("redis://127.0.0.1:6379/0");
    let first = client_id(&link);
    kill_client(first);
    // The dead connection is found on sending, replaced, and the pipeline sent once more.
    let replies = send(&link, &[&["RPUSH", &key, "after the kill"]]);
    assert_eq!(replies, [redis::Value::Int(1)]);
    let second = client_id(&link);
    assert_ne!(second, first, "a new connection");
    send(&link, &[&["DEL", &key]]);
}

#[test]
fn the_database_of_the_url_is_selected_and_a_wrong_password_says_where_to_fix_it() {
    if !REDIS
        .available("the_database_of_the_url_is_selected_and_a_wrong_password_says_where_to_fix_it")
    {
        return;
    }
    let key = key("select");
    let db3 = link("redis://127.0.0.1:6379/3");
    send(&db3, &[&["SET", &key, "in 3"]]);
    let db0 = link("redis://127.0.0.1:6379/0");
    assert_eq!(send(&db0, &[&["EXISTS", &key]]), [redis::Value::Int(0)]);
    assert_eq!(send(&db3, &[&["EXISTS", &key]]), [redis::Value::Int(1)]);
    send(&db3, &[&["DEL", &key]]);

    let error = link("redis://127.0.0.1:6379/99999")
        .send(pipe(&[&["PING"]]))
        .expect_err("no database 99999");
    assert!(error.outage, "{error:?}");
    assert!(
        error.message.contains("DB index is out of range"),
        "{error}"
    );

    // The machine's Redis has no such user: AUTH fails.
    let error = link("redis://nobody:wrong-secret@127.0.0.1:6379/0")
        .send(pipe(&[&["PING"]]))
        .expect_err("a wrong password");
    assert!(error.outage, "{error:?}");
    assert!(
        error
            .message
            .contains("put the right URL in the environment variable REDIS_URL"),
        "{error}"
    );
    assert!(!error.message.contains("wrong-secret"), "{error}");
}

#[test]
fn a_port_nobody_listens_on_is_an_outage_at_once() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let error = link(&format!("redis://127.0.0.1:{port}/0"))
        .send(pipe(&[&["PING"]]))
        .expect_err("nothing listens");
    assert!(error.outage && error.retryable, "{error:?}");
    assert!(
        error
            .message
            .starts_with(&format!("Redis redis://127.0.0.1:{port}/0: connecting: ")),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
