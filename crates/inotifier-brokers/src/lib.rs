//! inotifier's processors that deliver events to message brokers, for when one machine is not
//! enough: any number of hosts each run the daemon and feed one fleet of workers.
//!
//! | kind | delivers each event as | module |
//! | --- | --- | --- |
//! | `celery` | a Celery task (message protocol v2), over Redis or AMQP (RabbitMQ) | [`celery`] |
//! | `redis_stream` | an entry of a Redis stream (`XADD`) | [`redis_stream`] |
//! | `jetstream` | a message published to NATS JetStream, acknowledged by its stream | [`jetstream`] |
//!
//! # Delivery
//! An event counts as processed only once the broker confirmed it: Redis answered the
//! command, RabbitMQ confirmed the publish (publisher confirms), JetStream acknowledged it
//! into a stream. With the daemon's journal, unconfirmed events are delivered again after a
//! restart: delivery is at least once, and every message carries an id that stays the same
//! when the event is delivered again ([`identity`]).
//!
//! A broker that cannot be reached fails the event as an outage
//! ([`inotifier_sinks::ProcessError::outage`]): the daemon retries it with backoff for as
//! long as the outage lasts, without counting against the watch's attempts, and the
//! connection is made again on the next try ([`link`]). Events are sent in batches, many
//! commands in flight on one connection.
//!
//! Broker URLs with passwords come from the daemon's environment, never from the
//! configuration ([`url`]). TLS (`rediss://`, `amqps://`, `tls://`, and NATS servers that
//! require it) is always verified ([`tls`]).
//!
//! # Client libraries
//! Redis is spoken through the `redis` crate (its synchronous connection, [`redis_client`]),
//! AMQP through `lapin` ([`amqp`]) and NATS through `async-nats` ([`jetstream`]), the last two on
//! a runtime private to this crate ([`runtime`]). Only the Celery message protocol v2 is this
//! crate's own ([`celery::message`]): no maintained crate writes it.

pub mod amqp;
pub mod celery;
pub mod fields;
pub mod jetstream;
pub mod link;
pub mod reach;
pub mod redis_client;
pub mod redis_stream;
#[doc(hidden)]
pub mod runtime;
pub mod tls;
pub mod url;

pub use inotifier_sinks::identity;

use std::sync::Arc;

use inotifier_sinks::{BuildContext, BuildError, Processor, ProcessorKind};
use serde_json::{Map, Value};

/// This crate's processors: `celery`, `redis_stream`, `jetstream`. Building one opens no
/// connection (the first batch of events connects, so a broker that is down at start delays
/// delivery, not the daemon), so checking the options is building and dropping.
pub const KINDS: &[ProcessorKind] = &[
    ProcessorKind {
        name: celery::NAME,
        build: |options, context| {
            Ok(Arc::new(
                celery::CeleryProcessor::build(options, context.base_dir)?
                    .with_journal(context.journal),
            ))
        },
        validate: |options, base_dir| celery::CeleryProcessor::build(options, base_dir).map(drop),
    },
    ProcessorKind {
        name: redis_stream::NAME,
        build: |options, context| {
            Ok(Arc::new(
                redis_stream::RedisStreamProcessor::build(options, context.base_dir)?
                    .with_journal(context.journal),
            ))
        },
        validate: |options, base_dir| {
            redis_stream::RedisStreamProcessor::build(options, base_dir).map(drop)
        },
    },
    ProcessorKind {
        name: jetstream::NAME,
        build: |options, context| {
            Ok(Arc::new(
                jetstream::JetStreamProcessor::build(options, context.base_dir)?
                    .with_journal(context.journal),
            ))
        },
        validate: |options, base_dir| {
            jetstream::JetStreamProcessor::build(options, base_dir).map(drop)
        },
    },
];

/// The servers the broker processor `kind` with `options` connects to, read as building it
/// reads them (the same errors), connecting to nothing; `None` for a kind of another crate.
pub fn endpoints(
    kind: &str,
    options: &Map<String, Value>,
    base_dir: &std::path::Path,
) -> Option<Result<Vec<reach::Endpoint>, BuildError>> {
    Some(match kind {
        celery::NAME => celery::CeleryProcessor::build(options, base_dir).map(|p| p.endpoints),
        redis_stream::NAME => {
            redis_stream::RedisStreamProcessor::build(options, base_dir).map(|p| p.endpoints)
        }
        jetstream::NAME => {
            jetstream::JetStreamProcessor::build(options, base_dir).map(|p| p.endpoints)
        }
        _ => return None,
    })
}

/// Makes the broker processor `kind` from its `options`; see [`KINDS`].
pub fn build<'a>(
    kind: &str,
    options: &Map<String, Value>,
    context: impl Into<BuildContext<'a>>,
) -> Result<Arc<dyn Processor>, BuildError> {
    let kinds: Vec<&ProcessorKind> = KINDS.iter().collect();
    (inotifier_sinks::find_kind(&kinds, kind)?.build)(options, context.into())
}
