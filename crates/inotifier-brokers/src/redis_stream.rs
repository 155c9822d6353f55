//! The `redis_stream` processor: appends each event to a Redis stream (`XADD`), for any number
//! of consumers (`XREAD`, or consumer groups with `XREADGROUP`).
//!
//! Each event is one entry, whose fields are the `fields` of the options, in their order, as
//! text (strings without quotes, names byte for byte, numbers in decimal, `event` as the JSON
//! object of [`inotifier_core::json`]), followed by `message_id`:
//!
//! ```text
//! source     web-1
//! id         1234
//! pathname   /srv/in/report.csv
//! maskname   IN_CLOSE_WRITE
//! event      {"id":1234,"mask":8,"maskname":"IN_CLOSE_WRITE",...}
//! message_id 666fc22e-095c-221f-0000-0000000004d2
//! ```
//!
//! `message_id` ([`crate::identity::message_id`]) is the same every time the same event is
//! delivered again, and differs between hosts: delivery is at least once (an event whose
//! `XADD` Redis executed but whose reply was lost to a broken connection is sent again), so
//! a consumer that must not act twice drops the entries whose `message_id` it has seen.
//!
//! # Options
//! | option | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `url` | string | `"redis://127.0.0.1:6379/0"` | `redis://[user@]host[:port][/db]`, `rediss://` for TLS, `redis+sentinel://host:26379,host2:26379/SERVICE[/db]` for Sentinel; without a password (see below). Used when given, else the environment variable `url_env` names, else the default. |
//! | `url_env` | string | `"REDIS_URL"` | The environment variable of the daemon holding the URL, with its password: `redis://[user:]password@host:port/db`. |
//! | `stream` | string | `"inotifier"` | The stream's key. |
//! | `maxlen` | integer ≥ 1 | none (unbounded) | Trims the stream to about this many entries (`XADD key MAXLEN ~ N`), dropping the oldest. |
//! | `fields` | array of strings | `["source", "id", "pathname", "maskname", "event"]` | The event's fields in each entry: `event`, `id`, `pathname`, `path`, `name`, `mask`, `maskname`, `dir`, `cookie`, `src_pathname`, `origin`, `time`, `source`. |
//! | `source` | string | the host name | Names the sending host, in the `source` field and in `message_id`. |
//! | `timeout` | duration | `"10s"` | For connecting, and for each read or write of a batch. |
//! | `sentinels` | array of `"host:port"` | none | Redis Sentinels to ask for the master of `service_name` (instead of a `redis+sentinel://host:26379,host2:26379/SERVICE/DB` URL). |
//! | `service_name` | string | none | The master's name the Sentinels monitor. |
//! | `sentinel_password_env` | string | none | The environment variable holding the Sentinels' own password (their `requirepass`); the URL's password is the master's. |
//! | `replicas` | integer | `0` | Replicas that must hold each batch (`WAIT`) before it counts as delivered: with 1 or more, a failover loses nothing. |
//! | `ca_file`, `cert_file`, `key_file` | path | none | TLS (`rediss://`): CAs to trust instead of the Mozilla roots, a client certificate and its key; relative to the configuration's directory. |
//!
//! A URL with a password is a secret: it is refused in `url`, and read from the environment
//! variable instead. Building the processor opens no connection: the first batch of events
//! connects, so a Redis that is down at start delays delivery, not the daemon.
//!
//! ```toml
//! processor = "redis_stream"
//! options = { stream = "uploads", maxlen = 1000000, url_env = "UPLOADS_REDIS_URL" }
//! ```
//!
//! # Batches
//! The events of a batch are sent as one pipeline, one `XADD` each, in one write, and their
//! replies read in order: an event counts as processed once Redis answered its `XADD` with
//! the new entry's id.
//!
//! # Failures
//! - Redis cannot be reached, the connection broke, or no answer came within `timeout`: an
//!   outage, retried with backoff for as long as it lasts, never dead-lettered; the next try
//!   connects again. A connection that broke while idle (Redis restarted) is replaced at once,
//!   without waiting.
//! - A refused password, a password Redis requires but the URL lacks, a database Redis does
//!   not have: an outage too, so that no event is given up while an operator fixes the URL
//!   in the environment variable (and restarts the daemon); the message says so.
//! - Error replies meaning Redis cannot take writes now (`OOM`, `LOADING`, `READONLY`,
//!   `MASTERDOWN`, `BUSY`, `MISCONF`, `TRYAGAIN`, `CLUSTERDOWN`, `NOREPLICAS`, `NOAUTH`):
//!   outages.
//! - Any other error reply is a permanent failure of that event, with a message saying what
//!   to fix; for instance `WRONGTYPE`: the key holds something other than a stream.

use std::path::Path;
use std::time::Duration;

use inotifier_core::Event;
use inotifier_sinks::{BatchOutcome, BuildError, ProcessError, Processor, options};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::fields::Field;
use crate::identity;
use crate::redis_client::{self, OUTAGE_CODES, RedisLink, TargetOptions};
use crate::tls::TlsOptions;
use crate::url::UrlSource;

pub const NAME: &str = "redis_stream";

const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";
const DEFAULT_URL_ENV: &str = "REDIS_URL";
fn default_stream() -> String {
    "inotifier".to_string()
}

fn default_fields() -> Vec<String> {
    ["source", "id", "pathname", "maskname", "event"]
        .map(String::from)
        .to_vec()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisStreamOptions {
    url: Option<String>,
    url_env: Option<String>,
    #[serde(default = "default_stream")]
    stream: String,
    maxlen: Option<u64>,
    #[serde(default = "default_fields")]
    fields: Vec<String>,
    source: Option<String>,
    #[serde(default = "default_timeout", deserialize_with = "options::duration")]
    timeout: Duration,
    sentinels: Option<Vec<String>>,
    service_name: Option<String>,
    #[serde(default)]
    replicas: u32,
    sentinel_password_env: Option<String>,
    ca_file: Option<std::path::PathBuf>,
    cert_file: Option<std::path::PathBuf>,
    key_file: Option<std::path::PathBuf>,
}

/// Appends events to a Redis stream; see the [module docs](self).
pub struct RedisStreamProcessor {
    stream: String,
    maxlen: Option<u64>,
    fields: Vec<Field>,
    source: String,
    ids: crate::identity::MessageIds,
    link: RedisLink,
    /// What `link` connects to, for `inotifier doctor`.
    pub(crate) endpoints: Vec<crate::reach::Endpoint>,
}

impl RedisStreamProcessor {
    /// Message ids for the events of the journal whose instance is `journal`.
    pub fn with_journal(mut self, journal: Option<u64>) -> RedisStreamProcessor {
        self.ids = crate::identity::MessageIds::new(&self.source, journal);
        self
    }
}

impl std::fmt::Debug for RedisStreamProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamProcessor")
            .field("server", &self.link.what())
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl RedisStreamProcessor {
    /// Reads the options and the environment; connects to nothing.
    pub fn build(
        options: &Map<String, Value>,
        base_dir: &Path,
    ) -> Result<RedisStreamProcessor, BuildError> {
        let parsed: RedisStreamOptions = options::parse(NAME, options)?;
        let env_name = parsed.url_env.as_deref().unwrap_or(DEFAULT_URL_ENV);
        if env_name.is_empty() {
            return Err(BuildError::invalid(
                NAME,
                "url_env",
                "the name of an environment variable may not be empty",
            ));
        }
        let source = UrlSource {
            processor: NAME,
            url_option: "url",
            env_option: "url_env",
            default_env: DEFAULT_URL_ENV,
            default: Some(DEFAULT_URL),
            schemes: redis_client::SCHEMES,
        };
        let url = source.resolve(parsed.url.as_deref(), Some(env_name))?;
        let url_option = if parsed.url.is_some() {
            "url"
        } else {
            "url_env"
        };
        if parsed.stream.is_empty() {
            return Err(BuildError::invalid(
                NAME,
                "stream",
                "the stream's key may not be empty",
            ));
        }
        if parsed.maxlen == Some(0) {
            return Err(BuildError::invalid(
                NAME,
                "maxlen",
                "must be at least 1 (leave it out for a stream that is never trimmed)",
            ));
        }
        let mut fields = Vec::with_capacity(parsed.fields.len());
        for name in &parsed.fields {
            let field =
                Field::parse(name).map_err(|error| BuildError::invalid(NAME, "fields", error))?;
            if fields.contains(&field) {
                return Err(BuildError::invalid(
                    NAME,
                    "fields",
                    format!("{name:?} is listed twice"),
                ));
            }
            fields.push(field);
        }
        let source_name = parsed.source.unwrap_or_else(identity::host_name);
        if source_name.is_empty() {
            return Err(BuildError::invalid(
                NAME,
                "source",
                "may not be empty: it tells the hosts apart (leave it out for the host name)",
            ));
        }
        // Where an operator fixes a refused password: always the environment variable.
        let url_origin = if parsed.url.is_some() {
            format!("the environment variable {env_name} (and leave out the option url)")
        } else {
            format!("the environment variable {env_name}")
        };
        let tls = TlsOptions {
            ca_file: parsed.ca_file,
            cert_file: parsed.cert_file,
            key_file: parsed.key_file,
        };
        let target = TargetOptions {
            processor: NAME,
            url_option,
            sentinels: parsed.sentinels.as_deref(),
            service_name: parsed.service_name.as_deref(),
            replicas: parsed.replicas,
            sentinel_password_env: parsed.sentinel_password_env.as_deref(),
            tls: &tls,
            base_dir,
            timeout: parsed.timeout,
            url_origin,
        }
        .target(url)?;
        let endpoints = target.endpoints();
        let link = target
            .link()
            .map_err(|error| BuildError::invalid(NAME, url_option, error))?;
        Ok(RedisStreamProcessor {
            endpoints,
            stream: parsed.stream,
            maxlen: parsed.maxlen,
            fields,
            ids: identity::MessageIds::new(&source_name, None),
            source: source_name,
            link,
        })
    }

    /// The stream's key.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Adds the `XADD` of `event` to `pipe`.
    fn add_command(&self, pipe: &mut redis::Pipeline, event: &Event, value: &mut Vec<u8>) {
        let command = pipe.cmd("XADD").arg(&self.stream);
        if let Some(maxlen) = self.maxlen {
            command.arg("MAXLEN").arg("~").arg(maxlen);
        }
        command.arg("*");
        for field in &self.fields {
            value.clear();
            field.write_text(value, event, &self.source);
            command.arg(field_name(*field)).arg(&value[..]);
        }
        command
            .arg("message_id")
            .arg(self.ids.of(event.id).as_str());
    }

    /// The leading run of events whose `XADD` got an entry id, and the failure of the first
    /// that did not.
    fn outcome(&self, events: &[&Event], replies: &[redis::Value]) -> BatchOutcome {
        for (done, (event, reply)) in events.iter().zip(replies).enumerate() {
            if !matches!(reply, redis::Value::BulkString(_)) {
                return BatchOutcome::failed(done, self.refused(event, reply));
            }
        }
        BatchOutcome::all(events.len())
    }

    /// The failure of `event`, whose `XADD` got `reply`.
    fn refused(&self, event: &Event, reply: &redis::Value) -> ProcessError {
        match redis_client::error_reply(reply) {
            Some((code, error)) => {
                self.link.answered(&code);
                self.refused_with(event, &code, &error)
            }
            None => ProcessError::retryable(format!(
                "{}: unexpected reply {reply:?} to XADD",
                self.refusal(event)
            )),
        }
    }

    fn refusal(&self, event: &Event) -> String {
        format!(
            "Redis {} refused event {} ({}) on stream {}",
            self.link.what(),
            event.id,
            event.pathname().display(),
            self.stream
        )
    }

    /// The failure of `event`, whose `XADD` got the error reply `error` (whose first word is
    /// `code`).
    fn refused_with(&self, event: &Event, code: &str, error: &str) -> ProcessError {
        let what = self.refusal(event);
        let stream = &self.stream;
        if OUTAGE_CODES.contains(&code) {
            return ProcessError::outage(format!(
                "{what}: {error}: Redis cannot take writes now; retried until it can"
            ));
        }
        let fix = match code {
            "WRONGTYPE" => format!(
                "the key {stream} holds something other than a stream: delete or rename it, \
                 or set the option stream to another key"
            ),
            "NOPERM" => format!(
                "the user of the URL may not XADD to {stream}: grant it with ACL SETUSER, or \
                 use another user"
            ),
            "MOVED" | "ASK" | "CROSSSLOT" => {
                "Redis Cluster is not supported: point the URL at a standalone Redis (or a \
                 primary with replicas)"
                    .to_string()
            }
            _ if error.contains("unknown command") => {
                "this Redis has no streams (XADD is Redis 5.0 or later): upgrade it".to_string()
            }
            _ => "fix the options stream, maxlen or fields, or the server".to_string(),
        };
        ProcessError::permanent(format!("{what}: {error}: {fix}"))
    }
}

/// The entry field's name: the option's own spelling.
fn field_name(field: Field) -> &'static str {
    crate::fields::NAMES
        .iter()
        .find(|(_, known)| *known == field)
        .map(|(name, _)| *name)
        .unwrap_or("field")
}

impl Processor for RedisStreamProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        let outcome = self.process_batch(&[event], &|_| true);
        match outcome.failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn(usize) -> bool) -> BatchOutcome {
        if events.is_empty() {
            return BatchOutcome::all(0);
        }
        if !go_on(0) {
            return BatchOutcome::stopped(0);
        }
        let mut value = Vec::new();
        let mut pipe = redis::Pipeline::with_capacity(events.len());
        pipe.ignore_errors();
        for event in events {
            self.add_command(&mut pipe, event, &mut value);
        }
        match self.link.send(pipe) {
            Ok(replies) => self.outcome(events, &replies),
            Err(error) => BatchOutcome::failed(0, error),
        }
    }

    fn close(&self) {
        self.link.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inotifier_core::{Mask, Origin, WatchId};
    use serde_json::json;
    use std::ffi::OsString;
    use std::path::Path;
    use std::sync::Arc;

    fn build(options: Value) -> Result<RedisStreamProcessor, BuildError> {
        RedisStreamProcessor::build(options.as_object().unwrap(), Path::new("/nonexistent"))
    }

    fn error(options: Value) -> String {
        build(options).unwrap_err().to_string()
    }

    fn event() -> Event {
        Event {
            id: 42,
            mask: Mask::IN_CLOSE_WRITE,
            cookie: 0,
            wd: 1,
            path: Arc::from(Path::new("/srv/in")),
            name: OsString::from("a b.txt"),
            src_pathname: None,
            origin: Origin::Kernel,
            time_ns: 1_764_077_825_123_456_789,
            watches: Arc::from([WatchId(0)]),
        }
    }

    /// The arguments of the XADD of `event`.
    fn xadd(processor: &RedisStreamProcessor, event: &Event) -> Vec<String> {
        let mut pipe = redis::pipe();
        processor.add_command(&mut pipe, event, &mut Vec::new());
        let command = pipe.cmd_iter().next().unwrap();
        command
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
                _ => panic!("only plain arguments in XADD"),
            })
            .collect()
    }

    #[test]
    fn defaults_build_without_connecting() {
        // Nothing listens on port 1: building must not try.
        let processor = build(json!({"url": "redis://127.0.0.1:1/0"})).unwrap();
        assert_eq!(processor.stream(), "inotifier");
        assert_eq!(processor.fields.len(), 5);
        assert_eq!(processor.maxlen, None);
        assert!(!processor.source.is_empty());
    }

    #[test]
    fn each_event_is_one_xadd_with_its_fields_and_message_id() {
        let processor = build(json!({
            "url": "redis://127.0.0.1:1/0",
            "stream": "uploads",
            "maxlen": 1000,
            "fields": ["pathname", "id", "dir"],
            "source": "web-1",
        }))
        .unwrap();
        let args = xadd(&processor, &event());
        assert_eq!(
            args,
            [
                "XADD",
                "uploads",
                "MAXLEN",
                "~",
                "1000",
                "*",
                "pathname",
                "/srv/in/a b.txt",
                "id",
                "42",
                "dir",
                "false",
                "message_id",
                "666fc22e-095c-221f-0000-00000000002a",
            ]
        );
        let plain = build(json!({"url": "redis://h", "source": "web-1"})).unwrap();
        let args = xadd(&plain, &event());
        assert_eq!(
            args[..8],
            [
                "XADD",
                "inotifier",
                "*",
                "source",
                "web-1",
                "id",
                "42",
                "pathname"
            ]
        );
        assert_eq!(args[10], "IN_CLOSE_WRITE");
        assert!(args[12].starts_with(r#"{"id":42,"#), "{}", args[12]);
    }

    #[test]
    fn bad_options_say_what_is_valid() {
        let unknown = error(json!({"streams": "x"}));
        assert_eq!(
            unknown,
            "unknown option `streams` for processor redis_stream: expected one of url, \
             url_env, stream, maxlen, fields, source, timeout, sentinels, service_name, \
             replicas, sentinel_password_env, ca_file, cert_file, key_file"
        );
        let password = error(json!({"url": "redis://:secret@h:6379/0"}));
        assert!(
            password.contains("put the whole URL in the environment variable REDIS_URL"),
            "{password}"
        );
        assert!(!password.contains("secret@"), "{password}");
        let password = error(json!({"url": "redis://u:secret@h/0", "url_env": "MY_REDIS"}));
        assert!(password.contains("variable MY_REDIS"), "{password}");
        let field = error(json!({"fields": ["pathname", "file"]}));
        assert!(
            field.starts_with(
                "option `fields` of processor redis_stream: unknown event field \"file\": \
                 expected one of event, id"
            ),
            "{field}"
        );
        let twice = error(json!({"fields": ["id", "id"]}));
        assert!(twice.contains("\"id\" is listed twice"), "{twice}");
        let zero = error(json!({"maxlen": 0}));
        assert!(
            zero.starts_with("option `maxlen` of processor redis_stream: must be at least 1"),
            "{zero}"
        );
        assert!(error(json!({"maxlen": -5})).contains("`maxlen`"));
        assert!(error(json!({"stream": ""})).contains("may not be empty"));
        assert!(error(json!({"source": ""})).contains("`source`"));
        assert!(error(json!({"timeout": 0})).contains("`timeout`"));
        let scheme = error(json!({"url": "http://h"}));
        assert!(
            scheme.contains("expected redis:// or rediss://"),
            "{scheme}"
        );
        let plain = error(json!({"url": "redis://h", "ca_file": "ca.pem"}));
        assert!(plain.contains("is not TLS: use rediss://"), "{plain}");
        let unreadable = error(json!({"url": "rediss://h", "ca_file": "ca.pem"}));
        assert!(
            unreadable.contains("cannot read /nonexistent/ca.pem"),
            "{unreadable}"
        );
        let several = error(json!({"url": "redis://a:1,b:2"}));
        assert!(
            several.contains("only a redis+sentinel:// URL"),
            "{several}"
        );
        let unnamed = error(json!({"url": "redis+sentinel://a:26379,b"}));
        assert!(unnamed.contains("names no service"), "{unnamed}");
        let nameless = error(json!({"sentinels": ["a:26379"]}));
        assert!(nameless.contains("service_name"), "{nameless}");
        let lonely = error(json!({"service_name": "mymaster"}));
        assert!(lonely.contains("without Sentinels"), "{lonely}");
        let sentinel = build(json!({"url": "redis+sentinel://a,b:26380/mymaster/2"})).unwrap();
        assert_eq!(
            sentinel.link.what(),
            "redis+sentinel://a:26379,b:26380/mymaster"
        );
        let database = error(json!({"url": "redis://h/cache"}));
        assert!(
            database.starts_with("option `url` of processor redis_stream: the path"),
            "{database}"
        );
    }

    #[test]
    fn error_replies_are_outages_or_permanent_failures() {
        let processor = build(json!({"url": "redis://127.0.0.1:1/0", "stream": "s"})).unwrap();
        let refused = |text: &str| {
            let code = text.split_whitespace().next().unwrap();
            processor.refused_with(&event(), code, text)
        };
        for busy in [
            "OOM command not allowed when used memory > 'maxmemory'.",
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "BUSY Redis is busy running a script.",
        ] {
            let error = refused(busy);
            assert!(error.outage && error.retryable, "{busy}: {error:?}");
        }
        let wrong = refused("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert!(!wrong.retryable && !wrong.outage);
        assert!(
            wrong
                .message
                .contains("the key s holds something other than a stream"),
            "{}",
            wrong.message
        );
        assert!(wrong.message.contains("event 42 (/srv/in/a b.txt)"));
        let other = refused("ERR The ID specified in XADD is equal or smaller");
        assert!(!other.retryable, "{other:?}");
    }

    #[test]
    fn a_batch_is_processed_up_to_its_first_refused_event() {
        let processor = build(json!({"url": "redis://127.0.0.1:1/0"})).unwrap();
        let (first, second, third) = (event(), event(), event());
        let events = [&first, &second, &third];
        let entry = || redis::Value::BulkString(b"1-0".to_vec());
        let error =
            |text: &str| redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap();
        assert_eq!(
            processor.outcome(&events, &[entry(), entry(), entry()]),
            BatchOutcome::all(3)
        );
        let outcome = processor.outcome(&events, &[entry(), error("OOM no memory"), entry()]);
        assert_eq!(outcome.processed, 1);
        assert!(outcome.failure.is_some_and(|error| error.outage));
        let outcome = processor.outcome(&events, &[redis::Value::Nil, entry(), entry()]);
        assert_eq!(outcome.processed, 0);
        assert!(
            outcome
                .failure
                .is_some_and(|error| error.retryable && !error.outage)
        );
    }
}
