//! A minimal synchronous AMQP 0-9-1 client (RabbitMQ): one connection with one channel in
//! confirm mode, declarations, and publishing with publisher confirms.
//!
//! STUB: to be written (see the API below).

use std::time::Duration;

use inotifier_sinks::ProcessError;

use crate::url::BrokerUrl;

/// An AMQP field value (the types RabbitMQ and py-amqp both read).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Void,
    Bool(bool),
    Long(i64),
    Double(f64),
    LongString(Vec<u8>),
    Array(Vec<FieldValue>),
    Table(Vec<(String, FieldValue)>),
}

impl FieldValue {
    /// null, booleans, integers, floats, strings, arrays and objects of a JSON value.
    pub fn from_json(value: &serde_json::Value) -> FieldValue {
        let _ = value;
        FieldValue::Void
    }
}

/// The basic properties of a message that Celery (kombu) sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub headers: Option<Vec<(String, FieldValue)>>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub properties: &'a Properties,
    pub body: &'a [u8],
}

/// What [`AmqpConnection::publish_confirmed`] achieved: the first `confirmed` messages were
/// confirmed (acked) by the broker; the next one failed with `failure`, if any.
#[derive(Debug)]
pub struct PublishOutcome {
    pub confirmed: usize,
    pub failure: Option<ProcessError>,
}

/// A connection with one channel in confirm mode.
pub struct AmqpConnection {}

impl AmqpConnection {
    /// Connects to `url` (`amqp://user:password@host:port/vhost`), authenticates (PLAIN),
    /// opens a channel and puts it in confirm mode; `timeout` bounds each step.
    pub fn connect(url: &BrokerUrl, timeout: Duration) -> Result<AmqpConnection, ProcessError> {
        let _ = (url, timeout);
        Err(ProcessError::outage("not written yet"))
    }

    /// Declares a durable or transient exchange of `kind` (direct, topic, fanout).
    pub fn declare_exchange(
        &mut self,
        name: &str,
        kind: &str,
        durable: bool,
    ) -> Result<(), ProcessError> {
        let _ = (name, kind, durable);
        Err(ProcessError::outage("not written yet"))
    }

    /// Declares a queue (not exclusive, not auto-deleted, no arguments).
    pub fn declare_queue(&mut self, name: &str, durable: bool) -> Result<(), ProcessError> {
        let _ = (name, durable);
        Err(ProcessError::outage("not written yet"))
    }

    pub fn bind_queue(
        &mut self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), ProcessError> {
        let _ = (queue, exchange, routing_key);
        Err(ProcessError::outage("not written yet"))
    }

    /// Publishes `messages` and waits until the broker confirmed them all, or one failed.
    pub fn publish_confirmed(&mut self, messages: &[Publish<'_>]) -> PublishOutcome {
        let _ = messages;
        PublishOutcome {
            confirmed: 0,
            failure: Some(ProcessError::outage("not written yet")),
        }
    }
}
