//! The Redis client against the real Redis of this machine (127.0.0.1:6379): large
//! pipelines, error replies in place, a connection killed by the server, a server that is not
//! there. Each test uses keys of its own and deletes them.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use inotifier_brokers::link::Link;
use inotifier_brokers::resp::{Command, RedisConnection, Reply};
use inotifier_brokers::url::BrokerUrl;
use inotifier_test_support::services::REDIS;

const TIMEOUT: Duration = Duration::from_secs(10);

fn url(text: &str) -> BrokerUrl {
    BrokerUrl::parse(text, &[("redis", 6379)]).unwrap()
}

fn connect() -> RedisConnection {
    RedisConnection::connect(&url("redis://127.0.0.1:6379/0"), TIMEOUT).unwrap()
}

/// A key no other test (or run) uses.
fn key(test: &str) -> String {
    format!("inotifier-test:{test}:{}", std::process::id())
}

fn del(connection: &mut RedisConnection, key: &str) {
    connection
        .pipeline(&[Command::new("DEL").arg(key)])
        .unwrap();
}

fn client_id(connection: &mut RedisConnection) -> i64 {
    match connection
        .pipeline(&[Command::new("CLIENT").arg("ID")])
        .unwrap()[..]
    {
        [Reply::Integer(id)] => id,
        ref other => panic!("CLIENT ID answered {other:?}"),
    }
}

fn kill_client(id: i64) {
    let replies = connect()
        .pipeline(&[Command::new("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id.to_string())])
        .unwrap();
    assert_eq!(replies, [Reply::Integer(1)]);
}

#[test]
fn a_pipeline_of_ten_thousand_commands_gets_every_reply_in_order() {
    if !REDIS.available("a_pipeline_of_ten_thousand_commands_gets_every_reply_in_order") {
        return;
    }
    let key = key("pipeline");
    let mut connection = connect();
    del(&mut connection, &key);
    let commands: Vec<Command> = (0..10_000)
        .map(|index| {
            Command::new("RPUSH")
                .arg(&key)
                .arg(format!("value {index}\r\n"))
        })
        .collect();
    let replies = connection.pipeline(&commands).unwrap();
    let expected: Vec<Reply> = (1..=10_000).map(Reply::Integer).collect();
    assert_eq!(replies, expected);
    let replies = connection
        .pipeline(&[
            Command::new("LINDEX").arg(&key).arg("9999"),
            Command::new("LRANGE").arg(&key).arg("0").arg("1"),
            Command::new("GET").arg(format!("{key}:missing")),
        ])
        .unwrap();
    assert_eq!(
        replies,
        [
            Reply::Bulk(Some(b"value 9999\r\n".to_vec())),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"value 0\r\n".to_vec())),
                Reply::Bulk(Some(b"value 1\r\n".to_vec())),
            ])),
            Reply::Bulk(None),
        ]
    );
    del(&mut connection, &key);
}

#[test]
fn an_error_reply_mid_pipeline_is_returned_in_place() {
    if !REDIS.available("an_error_reply_mid_pipeline_is_returned_in_place") {
        return;
    }
    let list = key("error-list");
    let text = key("error-text");
    let mut connection = connect();
    let replies = connection
        .pipeline(&[
            Command::new("SET").arg(&text).arg("x"),
            Command::new("RPUSH").arg(&list).arg("a"),
            // A list command on a string: WRONGTYPE.
            Command::new("RPUSH").arg(&text).arg("b"),
            Command::new("RPUSH").arg(&list).arg("c"),
            Command::new("NOSUCHCOMMAND"),
            Command::new("LLEN").arg(&list),
        ])
        .unwrap();
    assert_eq!(replies[0], Reply::Status("OK".into()));
    assert_eq!(replies[1], Reply::Integer(1));
    assert!(
        replies[2]
            .error()
            .is_some_and(|e| e.starts_with("WRONGTYPE")),
        "{:?}",
        replies[2]
    );
    assert_eq!(replies[3], Reply::Integer(2));
    assert!(
        replies[4]
            .error()
            .is_some_and(|e| e.contains("unknown command")),
        "{:?}",
        replies[4]
    );
    assert_eq!(replies[5], Reply::Integer(2));
    connection
        .pipeline(&[Command::new("DEL").arg(&list).arg(&text)])
        .unwrap();
}

#[test]
fn a_killed_connection_is_an_outage_and_a_link_connects_again() {
    if !REDIS.available("a_killed_connection_is_an_outage_and_a_link_connects_again") {
        return;
    }
    let mut connection = connect();
    kill_client(client_id(&mut connection));
    let error = connection
        .pipeline(&[Command::new("PING")])
        .expect_err("the connection was killed");
    assert!(error.outage && error.retryable, "{error:?}");
    assert!(
        error
            .message
            .starts_with("Redis redis://127.0.0.1:6379/0: "),
        "{}",
        error.message
    );

    let target = url("redis://127.0.0.1:6379/0");
    let link = Link::new(target.to_string(), move || {
        RedisConnection::connect(&target, TIMEOUT)
    });
    let first = link.with(|connection| Ok(client_id(connection))).unwrap();
    kill_client(first);
    let broken = link.with(|connection| connection.pipeline(&[Command::new("PING")]));
    assert!(broken.as_ref().is_err_and(|e| e.outage), "{broken:?}");
    let again = link
        .with(|connection| connection.pipeline(&[Command::new("PING")]))
        .unwrap();
    assert_eq!(again, [Reply::Status("PONG".into())]);
    let second = link.with(|connection| Ok(client_id(connection))).unwrap();
    assert_ne!(second, first, "a new connection");
}

#[test]
fn a_database_is_selected_and_a_wrong_password_says_where_to_fix_it() {
    if !REDIS.available("a_database_is_selected_and_a_wrong_password_says_where_to_fix_it") {
        return;
    }
    let key = key("select");
    let mut db3 = RedisConnection::connect(&url("redis://127.0.0.1:6379/3"), TIMEOUT).unwrap();
    db3.pipeline(&[Command::new("SET").arg(&key).arg("in 3")])
        .unwrap();
    let mut db0 = connect();
    let replies = db0.pipeline(&[Command::new("EXISTS").arg(&key)]).unwrap();
    assert_eq!(replies, [Reply::Integer(0)]);
    del(&mut db3, &key);

    let error = RedisConnection::connect(&url("redis://127.0.0.1:6379/99999"), TIMEOUT)
        .expect_err("no database 99999");
    assert!(error.outage, "{error:?}");
    assert!(error.message.contains("has no database 99999"), "{error}");

    // The machine's Redis has no password (or this one is wrong): AUTH fails either way.
    let error = RedisConnection::connect_from(
        &url("redis://nobody:wrong-secret@127.0.0.1:6379/0"),
        "the environment variable REDIS_URL",
        TIMEOUT,
    )
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
    if !REDIS.available("a_port_nobody_listens_on_is_an_outage_at_once") {
        return;
    }
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let error = RedisConnection::connect(&url(&format!("redis://127.0.0.1:{port}/0")), TIMEOUT)
        .expect_err("nothing listens");
    assert!(error.outage && error.retryable, "{error:?}");
    assert!(
        error
            .message
            .starts_with(&format!("Redis redis://127.0.0.1:{port}/0: cannot connect")),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
