//! The `celery` processor: each event becomes one Celery task, sent to the broker a Celery 5
//! worker reads, over Redis or AMQP (RabbitMQ), in Celery's message protocol v2 with a JSON
//! body ([`message`]).
//!
//! The task id is the event's message id ([`crate::identity`]): an event delivered again
//! (a retry, a redelivery after a crash) is sent with the same task id. A worker runs such a
//! duplicate again; a task that must run once per event checks its id (a result backend or
//! its own table) before acting.
//!
//! # Options
//! | option | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `task` | string | required | The task's registered name, such as `"myapp.tasks.on_file"`. |
//! | `broker_url` | string | from `broker_url_env` | `redis://host:port/db` (`rediss://` for TLS, `redis+sentinel://` for Sentinel) or `amqp://user@host:port/vhost` (`amqps://` for TLS; also `pyamqp://`). A URL with a password is not accepted here: put it in the environment. |
//! | `broker_url_env` | string | `"CELERY_BROKER_URL"` | The environment variable of the daemon that holds the broker URL when `broker_url` is not given, as in a Django project's settings. |
//! | `queue` | string | `"celery"` | The queue the workers consume (`celery worker -Q`). |
//! | `exchange` | string | `""` | The exchange to publish to; `""` is AMQP's default exchange, which routes by queue name, as Celery does for a queue named in `send_task`. Over AMQP, a named exchange is declared (direct, durable) and the queue bound to it. |
//! | `routing_key` | string | the queue | The routing key. |
//! | `args` | list of fields | `["event"]` | The task's positional arguments, each an event field. |
//! | `kwargs` | table | `{}` | The task's keyword arguments: name = event field. |
//! | `source` | string | the host name | This sender's name: the `origin` header is `inotifier@<source>`, and task ids of different sources never collide. |
//! | `timeout` | duration | `"10s"` | For connecting and for each broker confirmation. |
//! | `sentinels`, `service_name`, `sentinel_password_env`, `replicas` | | | Over Redis: as for `redis_stream` (Sentinel, and `WAIT` for replicas). |
//! | `ca_file`, `cert_file`, `key_file` | path | none | TLS (`rediss://`, `amqps://`): CAs to trust instead of the Mozilla roots, a client certificate and its key, relative to the configuration's directory. |
//! | `heartbeat` | duration | `"10s"` | Over AMQP: the heartbeat interval; a silent broker or network is noticed within two. |
//!
//! Event fields: `event` (the whole event as the JSON object of `jsonl` and `webhook`), `id`,
//! `pathname`, `path`, `name`, `mask`, `maskname`, `dir`, `cookie`, `src_pathname`,
//! `origin`, `time`, `source`. With the defaults the task is called with one dict:
//!
//! ```python
//! @app.task(name="myapp.tasks.on_file")
//! def on_file(event):
//!     print(event["pathname"], event["maskname"])
//! ```
//!
//! ```toml
//! processor = "celery"
//! options = { task = "myapp.tasks.on_file", queue = "files", args = ["pathname"], kwargs = { kind = "maskname" } }
//! ```
//!
//! # Delivery
//! - Redis: `LPUSH` of kombu's JSON envelope onto the queue's list; the reply is the
//!   confirmation. A batch of events is one pipeline; a connection Redis closed while idle (a
//!   restart) is replaced and the pipeline sent again at once ([`RedisLink::send`]).
//! - AMQP: publisher confirms on a channel; the queue (durable, as Celery declares it) and a
//!   named exchange are declared at each connection, so messages sent before any worker
//!   started wait in the queue. Persistent messages (delivery mode 2).
//! - The broker down or unreachable is an outage: retried with backoff until it is back,
//!   never dead-lettered.

pub mod message;
mod pyrepr;

use std::path::Path;
use std::time::Duration;

use inotifier_core::Event;
use inotifier_sinks::{BatchOutcome, BuildError, ProcessError, Processor, options};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::amqp::{AmqpConnection, AmqpTarget, Publish};
use crate::fields::Field;
use crate::link::Link;
use crate::redis_client::{self, RedisLink, TargetOptions};
use crate::tls::TlsOptions;
use crate::url::UrlSource;
use message::{Route, TaskMessage, TaskSpec};

pub const NAME: &str = "celery";

fn default_queue() -> String {
    "celery".into()
}

fn default_args() -> Vec<String> {
    vec!["event".into()]
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    options::duration(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CeleryOptions {
    task: String,
    broker_url: Option<String>,
    broker_url_env: Option<String>,
    #[serde(default = "default_queue")]
    queue: String,
    #[serde(default)]
    exchange: String,
    routing_key: Option<String>,
    #[serde(default = "default_args")]
    args: Vec<String>,
    #[serde(default)]
    kwargs: std::collections::BTreeMap<String, String>,
    source: Option<String>,
    #[serde(default = "default_timeout", deserialize_with = "options::duration")]
    timeout: Duration,
    sentinels: Option<Vec<String>>,
    service_name: Option<String>,
    #[serde(default)]
    replicas: u32,
    sentinel_password_env: Option<String>,
    #[serde(default, deserialize_with = "optional_duration")]
    heartbeat: Option<Duration>,
    ca_file: Option<std::path::PathBuf>,
    cert_file: Option<std::path::PathBuf>,
    key_file: Option<std::path::PathBuf>,
}

enum Transport {
    Redis(RedisLink),
    Amqp(Box<Link<AmqpConnection>>),
}

/// Sends one Celery task per event; see the [module docs](self).
pub struct CeleryProcessor {
    spec: TaskSpec,
    route: Route,
    /// Celery's `reply_to`: one per sender, as one per client process in Celery.
    reply_to: String,
    transport: Transport,
    /// What `transport` connects to, for `inotifier doctor`.
    pub(crate) endpoints: Vec<crate::reach::Endpoint>,
}

impl CeleryProcessor {
    /// Task ids for the events of the journal whose instance is `journal`.
    pub fn with_journal(mut self, journal: Option<u64>) -> CeleryProcessor {
        self.spec.journal = journal;
        self
    }
}

impl std::fmt::Debug for CeleryProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeleryProcessor")
            .field("task", &self.spec.task)
            .field("queue", &self.route.queue)
            .finish_non_exhaustive()
    }
}

impl CeleryProcessor {
    pub fn build(
        options: &Map<String, Value>,
        base_dir: &Path,
    ) -> Result<CeleryProcessor, BuildError> {
        let parsed: CeleryOptions = options::parse(NAME, options)?;
        if parsed.task.trim().is_empty() {
            return Err(BuildError::invalid(NAME, "task", "the task name is empty"));
        }
        if parsed.queue.is_empty() {
            return Err(BuildError::invalid(
                NAME,
                "queue",
                "the queue name is empty",
            ));
        }
        let args = parsed
            .args
            .iter()
            .map(|name| {
                Field::parse(name).map_err(|error| BuildError::invalid(NAME, "args", error))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kwargs = parsed
            .kwargs
            .iter()
            .map(|(key, name)| {
                Field::parse(name)
                    .map(|field| (key.clone(), field))
                    .map_err(|error| BuildError::invalid(NAME, "kwargs", error))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let url = UrlSource {
            processor: NAME,
            url_option: "broker_url",
            env_option: "broker_url_env",
            default_env: "CELERY_BROKER_URL",
            default: None,
            schemes: &[redis_client::SCHEMES, crate::amqp::SCHEMES].concat(),
        }
        .resolve(
            parsed.broker_url.as_deref(),
            parsed.broker_url_env.as_deref(),
        )?;
        let source = parsed.source.unwrap_or_else(crate::identity::host_name);
        let route = Route {
            routing_key: parsed.routing_key.unwrap_or_else(|| parsed.queue.clone()),
            queue: parsed.queue,
            exchange: parsed.exchange,
        };
        let timeout = parsed.timeout;
        let tls = TlsOptions {
            ca_file: parsed.ca_file,
            cert_file: parsed.cert_file,
            key_file: parsed.key_file,
        };
        let url_option = if parsed.broker_url.is_some() {
            "broker_url"
        } else {
            "broker_url_env"
        };
        let env_name = parsed
            .broker_url_env
            .as_deref()
            .unwrap_or("CELERY_BROKER_URL");
        let endpoints;
        let transport = if url.scheme.starts_with("redis") {
            if parsed.heartbeat.is_some() {
                return Err(BuildError::invalid(
                    NAME,
                    "heartbeat",
                    "is for an AMQP broker (RabbitMQ), not Redis",
                ));
            }
            let target = TargetOptions {
                processor: NAME,
                url_option,
                sentinels: parsed.sentinels.as_deref(),
                service_name: parsed.service_name.as_deref(),
                replicas: parsed.replicas,
                sentinel_password_env: parsed.sentinel_password_env.as_deref(),
                tls: &tls,
                base_dir,
                timeout,
                url_origin: if parsed.broker_url.is_some() {
                    format!(
                        "the environment variable {env_name} (and leave out the option broker_url)"
                    )
                } else {
                    format!("the environment variable {env_name}")
                },
            }
            .target(url)?;
            endpoints = target.endpoints();
            let link = target
                .link()
                .map_err(|error| BuildError::invalid(NAME, url_option, error))?;
            Transport::Redis(link)
        } else {
            if parsed.sentinels.is_some()
                || parsed.service_name.is_some()
                || parsed.sentinel_password_env.is_some()
                || parsed.replicas > 0
            {
                let option = if parsed.replicas > 0 {
                    "replicas"
                } else {
                    "sentinels"
                };
                return Err(BuildError::invalid(
                    NAME,
                    option,
                    "is for a Redis broker, not AMQP",
                ));
            }
            if !url.more_hosts.is_empty() {
                return Err(BuildError::invalid(
                    NAME,
                    url_option,
                    format!("the URL {url} lists several hosts: an AMQP URL names one broker"),
                ));
            }
            let tls = tls.for_url(NAME, &url, url.scheme.ends_with('s'), "amqps://", base_dir)?;
            let heartbeat = match parsed.heartbeat {
                None => crate::amqp::DEFAULT_HEARTBEAT,
                Some(every) => u16::try_from(every.as_secs())
                    .ok()
                    .filter(|&seconds| seconds >= 1 && every.subsec_nanos() == 0)
                    .ok_or_else(|| {
                        BuildError::invalid(
                            NAME,
                            "heartbeat",
                            "must be whole seconds from 1s to 65535s",
                        )
                    })?,
            };
            let target = AmqpTarget {
                url,
                tls,
                heartbeat,
                timeout,
            };
            endpoints = target.endpoints();
            amqp_transport(target, route.clone())
        };
        Ok(CeleryProcessor {
            endpoints,
            reply_to: crate::identity::message_id(&source, 0),
            spec: TaskSpec {
                task: parsed.task,
                args,
                kwargs,
                source,
                journal: None,
            },
            route,
            transport,
        })
    }

    fn send_redis(&self, link: &RedisLink, events: &[&Event]) -> BatchOutcome {
        let mut pipe = redis::Pipeline::with_capacity(events.len());
        pipe.ignore_errors();
        for event in events {
            let message = TaskMessage::new(&self.spec, event);
            let envelope = message.redis_envelope(
                &self.route,
                &self.reply_to,
                &crate::identity::random_uuid(),
            );
            pipe.cmd("LPUSH").arg(&self.route.queue).arg(envelope);
        }
        let replies = match link.send(pipe) {
            Ok(replies) => replies,
            Err(error) => return BatchOutcome::failed(0, error),
        };
        for (done, reply) in replies.iter().enumerate() {
            if let redis::Value::Int(_) = reply {
                continue;
            }
            let failure = match redis_client::error_reply(reply) {
                Some((code, error)) => {
                    link.answered(&code);
                    redis_refusal(link.what(), &code, &error)
                }
                None => ProcessError::retryable(format!(
                    "Redis {} answered LPUSH with {reply:?}",
                    link.what()
                )),
            };
            return BatchOutcome::failed(done, failure);
        }
        BatchOutcome::all(events.len())
    }

    fn send_amqp(&self, link: &Link<AmqpConnection>, events: &[&Event]) -> BatchOutcome {
        let messages: Vec<(TaskMessage, crate::amqp::Properties)> = events
            .iter()
            .map(|event| {
                let message = TaskMessage::new(&self.spec, event);
                let properties = message.amqp_properties(&self.reply_to);
                (message, properties)
            })
            .collect();
        let publishes: Vec<Publish<'_>> = messages
            .iter()
            .map(|(message, properties)| Publish {
                exchange: &self.route.exchange,
                routing_key: &self.route.routing_key,
                properties,
                body: &message.body,
            })
            .collect();
        match link.with(|connection| Ok(connection.publish_confirmed(&publishes))) {
            Ok(outcome) => {
                if let Some(error) = &outcome.failure
                    && error.outage
                {
                    link.broken(error);
                }
                BatchOutcome {
                    processed: outcome.confirmed.min(events.len()),
                    failure: outcome.failure,
                }
            }
            Err(error) => BatchOutcome::failed(0, error),
        }
    }
}

fn amqp_transport(target: AmqpTarget, route: Route) -> Transport {
    let what = target.url.to_string();
    Transport::Amqp(Box::new(Link::new(what, move || {
        let mut connection = AmqpConnection::connect(&target)?;
        // As Celery declares them, so that a worker started later finds the same queue and
        // messages sent before any worker ran wait in it.
        connection.declare_queue(&route.queue, true)?;
        if !route.exchange.is_empty() {
            connection.declare_exchange(&route.exchange, "direct", true)?;
            connection.bind_queue(&route.queue, &route.exchange, &route.routing_key)?;
        }
        Ok(connection)
    })))
}

/// An error reply to LPUSH: Redis cannot take writes now (an outage), or the queue's key
/// holds something else (permanent until someone fixes it).
fn redis_refusal(server: &str, code: &str, error: &str) -> ProcessError {
    if redis_client::OUTAGE_CODES.contains(&code) {
        ProcessError::outage(format!("Redis {server} refused the task: {error}"))
    } else {
        ProcessError::permanent(format!(
            "Redis {server} refused the task: {error} (is the queue's key used for something \
             other than a Celery queue?)"
        ))
    }
}

impl Processor for CeleryProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        match self.process_batch(&[event], &|_| true).failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn(usize) -> bool) -> BatchOutcome {
        if events.is_empty() || !go_on(0) {
            return BatchOutcome::stopped(0);
        }
        match &self.transport {
            Transport::Redis(link) => self.send_redis(link, events),
            Transport::Amqp(link) => self.send_amqp(link, events),
        }
    }

    fn close(&self) {
        match &self.transport {
            Transport::Redis(link) => link.close(),
            Transport::Amqp(link) => link.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(options: Value) -> String {
        CeleryProcessor::build(options.as_object().unwrap(), Path::new("/nonexistent"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn broker_options_belong_to_their_broker() {
        let redis = "redis://127.0.0.1:6379/0";
        let amqp = "amqp://127.0.0.1:5672//";
        let heartbeat = error(json!({"task": "t", "broker_url": redis, "heartbeat": "5s"}));
        assert!(heartbeat.contains("is for an AMQP broker"), "{heartbeat}");
        let fraction = error(json!({"task": "t", "broker_url": amqp, "heartbeat": "1500ms"}));
        assert!(fraction.contains("whole seconds"), "{fraction}");
        let replicas = error(json!({"task": "t", "broker_url": amqp, "replicas": 1}));
        assert!(replicas.contains("is for a Redis broker"), "{replicas}");
        let plain = error(json!({"task": "t", "broker_url": amqp, "ca_file": "ca.pem"}));
        assert!(plain.contains("is not TLS: use amqps://"), "{plain}");
        let missing = error(json!({"task": "t", "broker_url": "amqps://h//", "ca_file": "ca.pem"}));
        assert!(
            missing.contains("cannot read /nonexistent/ca.pem"),
            "{missing}"
        );
        let several = error(json!({"task": "t", "broker_url": "amqp://a,b//"}));
        assert!(
            several.contains("an AMQP URL names one broker"),
            "{several}"
        );
        let ok = json!({"task": "t", "broker_url": amqp, "heartbeat": "30s"});
        assert!(CeleryProcessor::build(ok.as_object().unwrap(), Path::new("/")).is_ok());
    }
}
