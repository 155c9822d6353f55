//! The `redis_stream` processor against the real Redis of this machine (127.0.0.1:6379):
//! entries as documented, a key of the wrong type refused for good, trimming, and a Redis
//! that is not there waited out as an outage. Each test uses a stream of its own and deletes
//! it.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use inotifier_brokers::identity::message_id;
use inotifier_core::{Event, Mask, Origin, WatchId};
use inotifier_sinks::Processor;
use inotifier_test_support::services::REDIS;
use serde_json::{Value, json};

fn processor(options: Value) -> Arc<dyn Processor> {
    inotifier_brokers::build("redis_stream", options.as_object().unwrap(), Path::new("/")).unwrap()
}

fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn redis() -> redis::Connection {
    connect("redis://127.0.0.1:6379/0")
}

fn del(redis: &mut redis::Connection, key: &str) {
    redis::cmd("DEL").arg(key).exec(redis).unwrap();
}

fn stream_key(test: &str) -> String {
    format!("inotifier-test:{test}:{}", std::process::id())
}

fn event(id: u64, name: &str) -> Event {
    Event {
        id,
        mask: Mask::IN_CLOSE_WRITE,
        cookie: 0,
        wd: 1,
        path: Arc::from(Path::new("/srv/in")),
        name: OsString::from(name),
        src_pathname: None,
        origin: Origin::Kernel,
        time_ns: 1_764_077_825_123_456_789,
        watches: Arc::from([WatchId(0)]),
    }
}

/// The entries of `key`, each as its (field, value) pairs.
fn entries(redis: &mut redis::Connection, key: &str) -> Vec<Vec<(String, String)>> {
    let read: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(redis)
        .unwrap();
    read.into_iter()
        .map(|(_, fields)| {
            fields
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect()
        })
        .collect()
}

#[test]
fn a_batch_becomes_entries_with_the_fields_and_a_message_id() {
    if !REDIS.available("a_batch_becomes_entries_with_the_fields_and_a_message_id") {
        return;
    }
    let key = stream_key("entries");
    let mut redis = redis();
    del(&mut redis, &key);
    let processor = processor(json!({
        "url": "redis://127.0.0.1:6379/0",
        "stream": key,
        "fields": ["pathname", "maskname", "id"],
        "source": "web-1",
    }));
    let events: Vec<Event> = (1..=3).map(|id| event(id, &format!("f{id}.txt"))).collect();
    let batch: Vec<&Event> = events.iter().collect();
    let outcome = processor.process_batch(&batch, &|_| true);
    assert_eq!(outcome.processed, 3, "{outcome:?}");
    processor.process(&events[0]).unwrap();
    let read = entries(&mut redis, &key);
    assert_eq!(read.len(), 4);
    for (entry, id) in read.iter().zip([1, 2, 3, 1]) {
        let expected = [
            ("pathname", format!("/srv/in/f{id}.txt")),
            ("maskname", "IN_CLOSE_WRITE".to_string()),
            ("id", id.to_string()),
            ("message_id", message_id("web-1", id)),
        ]
        .map(|(name, value)| (name.to_string(), value));
        assert_eq!(entry[..], expected);
    }
    del(&mut redis, &key);
    processor.close();
}

#[test]
fn a_key_that_is_not_a_stream_fails_for_good_and_maxlen_trims() {
    if !REDIS.available("a_key_that_is_not_a_stream_fails_for_good_and_maxlen_trims") {
        return;
    }
    let key = stream_key("wrongtype");
    let mut redis = redis();
    redis::cmd("SET")
        .arg(&key)
        .arg("a string")
        .exec(&mut redis)
        .unwrap();
    let wrong = processor(json!({"url": "redis://127.0.0.1:6379/0", "stream": key}));
    let (first, second) = (event(1, "a"), event(2, "b"));
    let outcome = wrong.process_batch(&[&first, &second], &|_| true);
    assert_eq!(outcome.processed, 0);
    let error = outcome.failure.unwrap();
    assert!(!error.retryable && !error.outage, "{error:?}");
    assert!(
        error
            .message
            .contains("holds something other than a stream"),
        "{}",
        error.message
    );

    del(&mut redis, &key);
    let trimmed =
        processor(json!({"url": "redis://127.0.0.1:6379/0", "stream": key, "maxlen": 10}));
    let events: Vec<Event> = (1..=2000).map(|id| event(id, "x")).collect();
    for chunk in events.chunks(500) {
        let batch: Vec<&Event> = chunk.iter().collect();
        assert_eq!(trimmed.process_batch(&batch, &|_| true).processed, 500);
    }
    let length: i64 = redis::cmd("XLEN").arg(&key).query(&mut redis).unwrap();
    // `~` trims by whole nodes of the stream: about 10, far fewer than 2000.
    assert!((10..=200).contains(&length), "{length}");
    del(&mut redis, &key);
}

/// The ids of the clients of database `db` whose last command was XADD.
fn xadd_clients(redis: &mut redis::Connection, db: u32) -> Vec<i64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query(redis)
        .unwrap();
    list.lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            fields.contains(&format!("db={db}").as_str()) && fields.contains(&"cmd=xadd")
        })
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn a_connection_closed_while_idle_is_replaced_without_a_failure() {
    if !REDIS.available("a_connection_closed_while_idle_is_replaced_without_a_failure") {
        return;
    }
    // A database of its own, to tell this test's connection from the others'.
    let db = 9;
    let key = stream_key("idle");
    let url = format!("redis://127.0.0.1:6379/{db}");
    let mut redis = connect(&url);
    let before = xadd_clients(&mut redis, db);
    let processor = processor(json!({"url": url, "stream": key, "source": "web-1"}));
    processor.process(&event(1, "a")).unwrap();
    let ours: Vec<i64> = xadd_clients(&mut redis, db)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(ours[0])
        .query(&mut redis)
        .unwrap();
    assert_eq!(killed, 1);
    processor.process(&event(2, "b")).unwrap();
    let ids: Vec<String> = entries(&mut redis, &key)
        .iter()
        .map(|entry| entry.last().unwrap().1.clone())
        .collect();
    assert_eq!(ids, [message_id("web-1", 1), message_id("web-1", 2)]);
    del(&mut redis, &key);
}

#[test]
fn a_redis_that_is_not_there_is_an_outage_and_stopping_sends_nothing() {
    if !REDIS.available("a_redis_that_is_not_there_is_an_outage_and_stopping_sends_nothing") {
        return;
    }
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let absent = processor(json!({"url": format!("redis://127.0.0.1:{port}/0")}));
    let only = event(1, "a");
    let error = absent.process(&only).unwrap_err();
    assert!(error.outage, "{error:?}");
    let outcome = absent.process_batch(&[&only], &|_| false);
    assert_eq!((outcome.processed, outcome.failure), (0, None));
}
