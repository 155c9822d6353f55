//! A minimal synchronous AMQP 0-9-1 client (RabbitMQ): one connection with one channel in
//! confirm mode, declarations, and publishing with publisher confirms.
//!
//! # What it supports, and why no more
//! - PLAIN authentication with the URL's user and password (guest/guest without them): what
//!   RabbitMQ offers by default. No TLS (see [`crate::url`]).
//! - One channel (1), in confirm mode: the daemon publishes from one worker at a time per
//!   connection ([`crate::link::Link`]), so more channels would buy nothing.
//! - Publishing in pipelines: the frames of many messages go out in one write, then the
//!   broker's confirmations (basic.ack / basic.nack) are read, so a batch costs one round
//!   trip, not one per message.
//! - No heartbeats (0 is proposed in connection.tune-ok, which RabbitMQ accepts): this client
//!   only writes and then waits, with a timeout, for an answer, so a dead peer shows as a
//!   timeout on the next batch anyway; heartbeats would need a thread or reads while idle.
//!   Firewalls that drop idle connections silently cost one timeout, then a new connection.
//! - No consuming: publishing is all the daemon does.
//!
//! # Failures
//! Whatever makes the connection unusable is an outage ([`ProcessError::outage`]): no
//! connection, a timeout, a connection or channel closed by the broker (an operator, a
//! restart, a refused declaration, a refused login). After one, every method of the
//! connection fails as an outage too, and [`crate::link::Link`] connects again on the next
//! try. Outages are retried for as long as they last without counting the events' attempts,
//! so nothing is dead-lettered while an operator fixes credentials, permissions or a queue
//! declared with other arguments; their messages say what to fix. A message the broker refuses
//! (basic.nack) is an ordinary retryable failure, and the connection stays usable; a message
//! that cannot be encoded (a routing key over 255 bytes) is permanent.

mod codec;
mod frame;

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use inotifier_sinks::ProcessError;

use self::codec::{Decoder, Encoder, Malformed, TooLong, abbreviated};
use self::frame::*;
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
    /// null, booleans, integers, floats, strings, arrays and objects of a JSON value. An
    /// integer beyond the range of i64 becomes a double: still a number to the reader, as
    /// JSON parsers of most languages would make it.
    pub fn from_json(value: &serde_json::Value) -> FieldValue {
        use serde_json::Value;
        match value {
            Value::Null => FieldValue::Void,
            Value::Bool(value) => FieldValue::Bool(*value),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => FieldValue::Long(integer),
                None => FieldValue::Double(number.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(text) => FieldValue::LongString(text.as_bytes().to_vec()),
            Value::Array(items) => FieldValue::Array(items.iter().map(Self::from_json).collect()),
            Value::Object(entries) => FieldValue::Table(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), Self::from_json(value)))
                    .collect(),
            ),
        }
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

/// The only channel this client opens.
const CHANNEL: u16 = 1;
/// The frame size before connection.tune says otherwise (RabbitMQ's default).
const INITIAL_FRAME_MAX: u32 = 131_072;
/// The smallest frame size the specification lets a peer ask for.
const MIN_FRAME_MAX: u32 = 4096;
/// At most this many messages, or bytes of frames, are written before their confirmations are
/// read: it bounds the memory of a large batch, and keeps the broker's unread confirmations
/// from filling the socket's buffers while this client is still writing.
const WINDOW_MESSAGES: usize = 2048;
const WINDOW_BYTES: usize = 4 << 20;

/// Reply codes of connection.close and channel.close that this client explains.
const CONNECTION_FORCED: u16 = 320;
const ACCESS_REFUSED: u16 = 403;
const NOT_FOUND: u16 = 404;
const PRECONDITION_FAILED: u16 = 406;
const NOT_ALLOWED: u16 = 530;

/// Why a step failed, before it is told as a [`ProcessError`].
#[derive(Debug, thiserror::Error)]
enum AmqpError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("malformed data from the broker: {0}")]
    Malformed(#[from] Malformed),
    #[error("the broker sent {got} where {expected} was expected")]
    Unexpected { got: String, expected: String },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Unencodable(#[from] TooLong),
    #[error("the broker closed the connection: {0}")]
    ConnectionClosed(Close),
    #[error("the broker closed the channel: {0}")]
    ChannelClosed(Close),
}

impl From<ReadError> for AmqpError {
    fn from(error: ReadError) -> AmqpError {
        match error {
            ReadError::Io(error) => AmqpError::Io(error),
            ReadError::Malformed(error) => AmqpError::Malformed(error),
        }
    }
}

/// The arguments of connection.close and channel.close.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Close {
    code: u16,
    /// RabbitMQ's starts with the code's name: `PRECONDITION_FAILED - inequivalent arg ...`.
    text: String,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl Close {
    fn decode(arguments: &[u8]) -> Result<Close, Malformed> {
        let mut decoder = Decoder::new(arguments);
        Ok(Close {
            code: decoder.short()?,
            text: decoder.shortstr()?,
        })
    }
}

/// A method frame as read, with its arguments still encoded.
struct Method {
    id: MethodId,
    arguments: Vec<u8>,
}

/// A connection with one channel in confirm mode.
pub struct AmqpConnection {
    /// The broker's URL without its password, for messages.
    broker: String,
    user: String,
    timeout: Duration,
    reader: BufReader<TcpStream>,
    frame_max: u32,
    /// The delivery tag of the next message published: the broker counts them from 1 on the
    /// channel, and confirms by these numbers.
    next_delivery_tag: u64,
    /// Why the connection cannot be used any more, once it broke.
    broken: Option<String>,
    /// Whether connection.close is still to be sent when dropped (the socket works).
    close_on_drop: bool,
    /// The reason the broker gave for blocking publishers (a resource alarm), while it does.
    blocked: Option<String>,
}

impl AmqpConnection {
    /// Connects to `url` (`amqp://user:password@host:port/vhost`), authenticates (PLAIN),
    /// opens a channel and puts it in confirm mode; `timeout` bounds each step, and then each
    /// read and write.
    pub fn connect(url: &BrokerUrl, timeout: Duration) -> Result<AmqpConnection, ProcessError> {
        let broker = url.to_string();
        let stream = open_tcp(url, timeout).map_err(|error| {
            ProcessError::outage(format!(
                "cannot connect to RabbitMQ at {broker}: {}",
                describe_io(&error, timeout)
            ))
        })?;
        let mut connection = AmqpConnection {
            broker,
            user: url.user.clone().unwrap_or_else(|| "guest".to_string()),
            timeout,
            reader: BufReader::new(stream),
            frame_max: INITIAL_FRAME_MAX,
            next_delivery_tag: 1,
            broken: None,
            close_on_drop: false,
            blocked: None,
        };
        connection.handshake(url)?;
        connection.close_on_drop = true;
        Ok(connection)
    }

    fn handshake(&mut self, url: &BrokerUrl) -> Result<(), ProcessError> {
        let greeting = "greeting (connection.start)";
        self.write(b"AMQP\x00\x00\x09\x01")
            .map_err(|error| self.failure(greeting, error))?;
        let start = self
            .expect(CONNECTION_START)
            .map_err(|error| self.failure(greeting, error))?;
        let mechanisms =
            parse_start(&start.arguments).map_err(|error| self.failure(greeting, error))?;
        if !mechanisms.split(' ').any(|mechanism| mechanism == "PLAIN") {
            let reason = format!(
                "the broker does not offer PLAIN authentication, the only one this client \
                 has (it offers: {mechanisms}): enable PLAIN in its auth_mechanisms"
            );
            return Err(self.failure(greeting, AmqpError::Unsupported(reason)));
        }

        let password = url.password.as_deref().unwrap_or("guest");
        let response = format!("\0{}\0{password}", self.user);
        self.send(0, CONNECTION_START_OK, |arguments| {
            arguments.table(&client_properties())?;
            arguments.shortstr("the mechanism", "PLAIN")?;
            arguments.longstr("the credentials", response.as_bytes())?;
            arguments.shortstr("the locale", "en_US")
        })
        .and_then(|()| self.expect(CONNECTION_TUNE))
        .map_err(|error| self.login_failure(error))
        .and_then(|tune| {
            self.tune(&tune.arguments)
                .map_err(|error| self.failure("tuning", error))
        })?;

        let vhost = if url.path.is_empty() {
            "/"
        } else {
            url.path.as_str()
        };
        self.send(0, CONNECTION_OPEN, |arguments| {
            arguments.shortstr("the virtual host", vhost)?;
            arguments.shortstr("the capabilities", "")?;
            arguments.bits(&[false]);
            Ok(())
        })
        .and_then(|()| self.expect(CONNECTION_OPEN_OK))
        .map_err(|error| self.failure(&format!("opening the virtual host {vhost:?}"), error))?;

        self.send(CHANNEL, CHANNEL_OPEN, |arguments| {
            arguments.shortstr("reserved", "")
        })
        .and_then(|()| self.expect(CHANNEL_OPEN_OK))
        .and_then(|_| {
            self.send(CHANNEL, CONFIRM_SELECT, |arguments| {
                arguments.bits(&[false]);
                Ok(())
            })
        })
        .and_then(|()| self.expect(CONFIRM_SELECT_OK))
        .map_err(|error| self.failure("opening a channel in confirm mode", error))?;
        Ok(())
    }

    /// Accepts the broker's frame and channel limits (this client stays far below them) and
    /// proposes no heartbeats (see the module's documentation).
    fn tune(&mut self, arguments: &[u8]) -> Result<(), AmqpError> {
        let mut decoder = Decoder::new(arguments);
        let channel_max = decoder.short()?;
        let frame_max = match decoder.long()? {
            0 => INITIAL_FRAME_MAX,
            frame_max if frame_max < MIN_FRAME_MAX => {
                return Err(Malformed(format!(
                    "a frame size of {frame_max} bytes, below the minimum of {MIN_FRAME_MAX}"
                ))
                .into());
            }
            frame_max => frame_max,
        };
        self.send(0, CONNECTION_TUNE_OK, |arguments| {
            arguments.short(channel_max);
            arguments.long(frame_max);
            arguments.short(0);
            Ok(())
        })?;
        self.frame_max = frame_max;
        Ok(())
    }

    /// A failed login: RabbitMQ answers connection.close 403 to a client that announces the
    /// capability authentication_failure_close, as this one does; older brokers just close the
    /// socket.
    fn login_failure(&mut self, error: AmqpError) -> ProcessError {
        let refused = match &error {
            AmqpError::ConnectionClosed(close) if close.code == ACCESS_REFUSED => {
                Some(close.to_string())
            }
            AmqpError::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
            {
                Some("the broker closed the connection after the login".to_string())
            }
            _ => None,
        };
        let Some(refused) = refused else {
            return self.failure("logging in", error);
        };
        self.mark_broken(&error);
        let mut message = format!(
            "RabbitMQ at {} refused the login of user {:?} ({refused}): check the user and \
             password in the broker URL, in the daemon's environment variable that holds it",
            self.broker, self.user
        );
        let remote = self
            .reader
            .get_ref()
            .peer_addr()
            .is_ok_and(|address| !address.ip().is_loopback());
        if self.user == "guest" && remote {
            message.push_str(
                " (RabbitMQ refuses the user guest on connections from other hosts than \
                 localhost: create a user for the daemon)",
            );
        }
        ProcessError::outage(message)
    }

    /// Declares a durable or transient exchange of `kind` (direct, topic, fanout).
    pub fn declare_exchange(
        &mut self,
        name: &str,
        kind: &str,
        durable: bool,
    ) -> Result<(), ProcessError> {
        let doing = format!("declaring the exchange {name:?}");
        self.call(&doing, EXCHANGE_DECLARE, EXCHANGE_DECLARE_OK, |arguments| {
            arguments.short(0);
            arguments.shortstr("the exchange name", name)?;
            arguments.shortstr("the exchange type", kind)?;
            // passive, durable, auto-delete, internal, no-wait
            arguments.bits(&[false, durable, false, false, false]);
            arguments.table(&[])
        })
        .map(drop)
    }

    /// Declares a queue (not exclusive, not auto-deleted, no arguments).
    pub fn declare_queue(&mut self, name: &str, durable: bool) -> Result<(), ProcessError> {
        self.declare_queue_with(name, durable, &[])
    }

    /// Declares a queue with `arguments` (`x-max-priority`, `x-queue-type`, ...): they must
    /// be those of an existing queue, as Celery's configuration declares them.
    pub fn declare_queue_with(
        &mut self,
        name: &str,
        durable: bool,
        arguments: &[(String, FieldValue)],
    ) -> Result<(), ProcessError> {
        let doing = format!("declaring the queue {name:?}");
        self.call(&doing, QUEUE_DECLARE, QUEUE_DECLARE_OK, |encoder| {
            encoder.short(0);
            encoder.shortstr("the queue name", name)?;
            // passive, durable, exclusive, auto-delete, no-wait
            encoder.bits(&[false, durable, false, false, false]);
            encoder.table(arguments)
        })
        .map(drop)
    }

    pub fn bind_queue(
        &mut self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), ProcessError> {
        let doing = format!(
            "binding the queue {queue:?} to the exchange {exchange:?} with the routing key \
             {routing_key:?}"
        );
        self.call(&doing, QUEUE_BIND, QUEUE_BIND_OK, |arguments| {
            arguments.short(0);
            arguments.shortstr("the queue name", queue)?;
            arguments.shortstr("the exchange name", exchange)?;
            arguments.shortstr("the routing key", routing_key)?;
            arguments.bits(&[false]);
            arguments.table(&[])
        })
        .map(drop)
    }

    /// Deletes a queue, whatever it holds, and returns how many messages it held; a queue that
    /// does not exist counts as deleted (RabbitMQ answers so).
    pub fn delete_queue(&mut self, name: &str) -> Result<u32, ProcessError> {
        let doing = format!("deleting the queue {name:?}");
        let reply = self.call(&doing, QUEUE_DELETE, QUEUE_DELETE_OK, |arguments| {
            arguments.short(0);
            arguments.shortstr("the queue name", name)?;
            // if-unused, if-empty, no-wait
            arguments.bits(&[false, false, false]);
            Ok(())
        })?;
        Decoder::new(&reply.arguments)
            .long()
            .map_err(|error| self.failure(&doing, error.into()))
    }

    /// Deletes an exchange (and its bindings).
    pub fn delete_exchange(&mut self, name: &str) -> Result<(), ProcessError> {
        let doing = format!("deleting the exchange {name:?}");
        self.call(&doing, EXCHANGE_DELETE, EXCHANGE_DELETE_OK, |arguments| {
            arguments.short(0);
            arguments.shortstr("the exchange name", name)?;
            // if-unused, no-wait
            arguments.bits(&[false, false]);
            Ok(())
        })
        .map(drop)
    }

    /// The local address of the connection: `rabbitmqctl list_connections peer_port` shows
    /// its port, which tells this connection from others.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.reader.get_ref().local_addr().ok()
    }

    /// Publishes `messages` and waits until the broker confirmed them all, or one failed.
    pub fn publish_confirmed(&mut self, messages: &[Publish<'_>]) -> PublishOutcome {
        let mut confirmed = 0;
        while confirmed < messages.len() {
            let (window_confirmed, failure) = self.publish_window(&messages[confirmed..]);
            confirmed += window_confirmed;
            if failure.is_some() {
                return PublishOutcome { confirmed, failure };
            }
        }
        PublishOutcome {
            confirmed,
            failure: None,
        }
    }

    /// Publishes the first messages of `messages` (up to the window's limits), waits for their
    /// confirmations, and returns how many of them, from the first, were confirmed.
    fn publish_window(&mut self, messages: &[Publish<'_>]) -> (usize, Option<ProcessError>) {
        if let Some(error) = self.unusable() {
            return (0, Some(error));
        }
        let mut frames = Encoder::default();
        let mut unencodable = None;
        let mut sent = 0;
        for message in messages.iter().take(WINDOW_MESSAGES) {
            if frames.bytes.len() >= WINDOW_BYTES {
                break;
            }
            if let Err(error) = frames.publish(CHANNEL, self.frame_max, message) {
                unencodable = Some((message, error));
                break;
            }
            sent += 1;
        }
        if sent > 0 {
            let doing = match sent {
                1 => "publishing a message".to_string(),
                sent => format!("publishing {sent} messages"),
            };
            let first_tag = self.next_delivery_tag;
            self.next_delivery_tag += sent as u64;
            let mut settled = vec![None; sent];
            let result = self
                .write(&frames.bytes)
                .and_then(|()| self.await_confirms(first_tag, &mut settled));
            let confirmed = settled.iter().take_while(|&&ack| ack == Some(true)).count();
            if let Err(error) = result {
                return (confirmed, Some(self.failure(&doing, error)));
            }
            if confirmed < sent {
                return (confirmed, Some(self.refused(&messages[confirmed])));
            }
        }
        let failure = unencodable.map(|(message, error)| {
            ProcessError::permanent(format!(
                "a message to the exchange {:?} with the routing key {:?} cannot be \
                 published: {error}",
                abbreviated(message.exchange),
                abbreviated(message.routing_key)
            ))
        });
        (sent, failure)
    }

    /// Reads basic.ack and basic.nack until every message from delivery tag `first_tag` has
    /// its answer in `settled` (true for acked).
    fn await_confirms(
        &mut self,
        first_tag: u64,
        settled: &mut [Option<bool>],
    ) -> Result<(), AmqpError> {
        let mut pending = settled.len();
        while pending > 0 {
            let method = self.next_method()?;
            let acked = match method.id {
                BASIC_ACK => true,
                BASIC_NACK => false,
                _ => {
                    return Err(AmqpError::Unexpected {
                        got: method_name(method.id),
                        expected: "basic.ack".to_string(),
                    });
                }
            };
            let mut decoder = Decoder::new(&method.arguments);
            let tag = decoder.longlong()?;
            let multiple = decoder.octet()? & 1 == 1;
            pending -= settle(settled, first_tag, tag, multiple, acked)?;
        }
        Ok(())
    }

    fn refused(&self, message: &Publish<'_>) -> ProcessError {
        ProcessError::retryable(format!(
            "RabbitMQ at {} refused the message to the exchange {:?} with the routing key \
             {:?} (basic.nack: a queue at its length limit with overflow reject-publish, or \
             an internal error of the broker); it is published again on the next try",
            self.broker,
            abbreviated(message.exchange),
            abbreviated(message.routing_key)
        ))
    }

    /// Sends one synchronous method on the channel and waits for its answer.
    fn call(
        &mut self,
        doing: &str,
        method: MethodId,
        reply: MethodId,
        arguments: impl FnOnce(&mut Encoder) -> Result<(), TooLong>,
    ) -> Result<Method, ProcessError> {
        if let Some(error) = self.unusable() {
            return Err(error);
        }
        let mut frames = Encoder::default();
        frames
            .method(CHANNEL, method, arguments)
            .map_err(|error| ProcessError::permanent(format!("{doing}: {error}")))?;
        self.write(&frames.bytes)
            .and_then(|()| self.expect(reply))
            .map_err(|error| self.failure(doing, error))
    }

    fn send(
        &mut self,
        channel: u16,
        method: MethodId,
        arguments: impl FnOnce(&mut Encoder) -> Result<(), TooLong>,
    ) -> Result<(), AmqpError> {
        let mut frames = Encoder::default();
        frames.method(channel, method, arguments)?;
        self.write(&frames.bytes)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), AmqpError> {
        self.reader.get_mut().write_all(bytes)?;
        Ok(())
    }

    fn expect(&mut self, expected: MethodId) -> Result<Method, AmqpError> {
        let method = self.next_method()?;
        if method.id != expected {
            return Err(AmqpError::Unexpected {
                got: method_name(method.id),
                expected: method_name(expected),
            });
        }
        Ok(method)
    }

    /// The next method for the caller, after handling those the broker may send at any time:
    /// heartbeats, flow control, blocking, returned messages, and closes (an error).
    fn next_method(&mut self) -> Result<Method, AmqpError> {
        loop {
            let frame = read_frame(&mut self.reader, self.frame_max)?;
            match frame.kind {
                METHOD => {}
                HEARTBEAT => continue,
                kind => {
                    return Err(Malformed(format!(
                        "a frame of type {kind} where a method was expected"
                    ))
                    .into());
                }
            }
            let mut decoder = Decoder::new(&frame.payload);
            let id = (decoder.short()?, decoder.short()?);
            let arguments = decoder.rest();
            match id {
                CONNECTION_CLOSE => {
                    let close = Close::decode(arguments)?;
                    let _ = self.send(0, CONNECTION_CLOSE_OK, |_| Ok(()));
                    return Err(AmqpError::ConnectionClosed(close));
                }
                CHANNEL_CLOSE => {
                    let close = Close::decode(arguments)?;
                    let _ = self.send(CHANNEL, CHANNEL_CLOSE_OK, |_| Ok(()));
                    return Err(AmqpError::ChannelClosed(close));
                }
                CONNECTION_BLOCKED => self.blocked = Some(Decoder::new(arguments).shortstr()?),
                CONNECTION_UNBLOCKED => self.blocked = None,
                CHANNEL_FLOW => {
                    // Stopping publishers this way is obsolete in RabbitMQ (it blocks the
                    // connection instead); answering is all a publisher must do.
                    let active = Decoder::new(arguments).octet()? & 1 == 1;
                    self.send(CHANNEL, CHANNEL_FLOW_OK, |arguments| {
                        arguments.bits(&[active]);
                        Ok(())
                    })?;
                }
                // Not sent for messages published without the mandatory flag; skipped if
                // it comes anyway.
                BASIC_RETURN => self.skip_content()?,
                _ => {
                    return Ok(Method {
                        id,
                        arguments: arguments.to_vec(),
                    });
                }
            }
        }
    }

    fn skip_content(&mut self) -> Result<(), AmqpError> {
        let header = read_frame(&mut self.reader, self.frame_max)?;
        if header.kind != HEADER {
            return Err(Malformed(format!(
                "a frame of type {} where a content header was expected",
                header.kind
            ))
            .into());
        }
        let mut remaining = content_body_size(&header)?;
        while remaining > 0 {
            let body = read_frame(&mut self.reader, self.frame_max)?;
            if body.kind != BODY {
                return Err(Malformed(format!(
                    "a frame of type {} where a content body was expected",
                    body.kind
                ))
                .into());
            }
            remaining = remaining.saturating_sub(body.payload.len() as u64);
        }
        Ok(())
    }

    /// The error of any use of a connection that broke earlier.
    fn unusable(&self) -> Option<ProcessError> {
        self.broken.as_ref().map(|reason| {
            ProcessError::outage(format!(
                "the connection to RabbitMQ at {} is unusable after an earlier failure \
                 ({reason}); a new one is needed",
                self.broker
            ))
        })
    }

    fn mark_broken(&mut self, error: &AmqpError) {
        // Only a channel closed by the broker leaves a connection to close politely.
        self.close_on_drop = matches!(error, AmqpError::ChannelClosed(_));
        self.broken = Some(self.describe(error));
    }

    /// `error` while `doing`, as an outage, with what to do about it; the connection is
    /// unusable from now on.
    fn failure(&mut self, doing: &str, error: AmqpError) -> ProcessError {
        self.mark_broken(&error);
        let mut message = format!(
            "RabbitMQ at {}: {doing}: {}",
            self.broker,
            self.describe(&error)
        );
        if let AmqpError::ConnectionClosed(close) | AmqpError::ChannelClosed(close) = &error {
            message.push_str(&self.advice(close.code));
        }
        ProcessError::outage(message)
    }

    fn describe(&self, error: &AmqpError) -> String {
        match error {
            AmqpError::Io(error) => {
                let mut text = describe_io(error, self.timeout);
                if let Some(reason) = &self.blocked {
                    text.push_str(&format!(
                        " while the broker blocks publishers ({reason}): free memory or disk \
                         space on it"
                    ));
                }
                text
            }
            error => error.to_string(),
        }
    }

    fn advice(&self, code: u16) -> String {
        match code {
            PRECONDITION_FAILED => "; the broker has it with other properties (durability, \
                 type or arguments) than these: configure the same ones, or delete it on the \
                 broker (rabbitmqctl delete_queue for a queue, or the management UI) so \
                 that it is declared again"
                .to_string(),
            NOT_FOUND => "; declare it first, or correct the name".to_string(),
            ACCESS_REFUSED => format!(
                "; give the user {:?} the permissions it needs on the virtual host \
                 (rabbitmqctl set_permissions)",
                self.user
            ),
            NOT_ALLOWED => format!(
                "; create the virtual host (rabbitmqctl add_vhost) and give the user {:?} \
                 access to it (rabbitmqctl set_permissions), or correct the path of the \
                 broker URL",
                self.user
            ),
            CONNECTION_FORCED => "; an operator or a stopping broker closed the connection, \
                 which is made again on the next try"
                .to_string(),
            _ => String::new(),
        }
    }

    /// Says goodbye (connection.close), so that the broker logs no abrupt disconnection.
    fn close(&mut self) -> Result<(), AmqpError> {
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(self.timeout.min(Duration::from_secs(1))))?;
        self.send(0, CONNECTION_CLOSE, |arguments| {
            arguments.short(200);
            arguments.shortstr("the reply text", "bye")?;
            arguments.short(0);
            arguments.short(0);
            Ok(())
        })?;
        loop {
            let frame = read_frame(&mut self.reader, self.frame_max)?;
            if frame.kind == METHOD && frame.payload.starts_with(&[0, 10, 0, 51]) {
                return Ok(());
            }
        }
    }
}

impl Drop for AmqpConnection {
    fn drop(&mut self) {
        if self.close_on_drop {
            let _ = self.close();
        }
    }
}

/// The TCP connection to the first of the host's addresses that answers.
fn open_tcp(url: &BrokerUrl, timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = None;
    for address in url.address().to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                // The client writes whole batches itself: Nagle's delay would only add
                // latency to the small frames of declarations.
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
}

fn describe_io(error: &io::Error, timeout: Duration) -> String {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no answer within {timeout:?}")
        }
        io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_string(),
        _ => error.to_string(),
    }
}

/// The mechanisms connection.start offers, after checking the protocol version.
fn parse_start(arguments: &[u8]) -> Result<String, AmqpError> {
    let mut decoder = Decoder::new(arguments);
    let version = (decoder.octet()?, decoder.octet()?);
    if version != (0, 9) {
        return Err(Malformed(format!(
            "the broker speaks AMQP {}-{}, not 0-9-1",
            version.0, version.1
        ))
        .into());
    }
    decoder.skip_table()?;
    Ok(String::from_utf8_lossy(decoder.longstr()?).into_owned())
}

/// What the broker shows of this client (`rabbitmqctl list_connections client_properties`),
/// and the extensions it understands.
fn client_properties() -> Vec<(String, FieldValue)> {
    let text = |text: &str| FieldValue::LongString(text.as_bytes().to_vec());
    let capabilities = [
        "publisher_confirms",
        "basic.nack",
        "connection.blocked",
        "authentication_failure_close",
    ]
    .into_iter()
    .map(|capability| (capability.to_string(), FieldValue::Bool(true)))
    .collect();
    vec![
        ("product".to_string(), text("inotifier")),
        ("version".to_string(), text(env!("CARGO_PKG_VERSION"))),
        ("platform".to_string(), text("Rust")),
        (
            "connection_name".to_string(),
            text(&format!("inotifier (pid {})", std::process::id())),
        ),
        ("capabilities".to_string(), FieldValue::Table(capabilities)),
    ]
}

/// Records a confirmation (`acked`, else a refusal) of delivery tag `tag`, or of every tag up
/// to it when `multiple`, in `settled`, which starts at `first_tag`; returns how many messages
/// it settled.
fn settle(
    settled: &mut [Option<bool>],
    first_tag: u64,
    tag: u64,
    multiple: bool,
    acked: bool,
) -> Result<usize, Malformed> {
    let last_tag = first_tag + settled.len() as u64 - 1;
    if tag > last_tag {
        return Err(Malformed(format!(
            "a confirmation of delivery tag {tag}, beyond the last published, {last_tag}"
        )));
    }
    let range = match (multiple, tag) {
        // multiple with tag 0: every message not confirmed yet
        (true, 0) => 0..settled.len(),
        (true, tag) => 0..(tag + 1).saturating_sub(first_tag) as usize,
        (false, tag) if tag < first_tag => 0..0,
        (false, tag) => {
            let at = (tag - first_tag) as usize;
            at..at + 1
        }
    };
    let mut count = 0;
    for slot in &mut settled[range] {
        if slot.is_none() {
            *slot = Some(acked);
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_settle_single_and_multiple_delivery_tags() {
        let mut settled = vec![None; 5];
        assert_eq!(settle(&mut settled, 11, 12, false, true), Ok(1));
        assert_eq!(settle(&mut settled, 11, 13, true, true), Ok(2));
        assert_eq!(settle(&mut settled, 11, 14, false, false), Ok(1));
        assert_eq!(settle(&mut settled, 11, 3, false, true), Ok(0));
        assert_eq!(
            settled,
            [Some(true), Some(true), Some(true), Some(false), None]
        );
        assert!(settle(&mut settled, 11, 16, false, true).is_err());
        assert_eq!(settle(&mut settled, 11, 0, true, true), Ok(1));
        assert_eq!(settled[4], Some(true));
    }

    #[test]
    fn the_client_announces_the_capabilities_it_handles() {
        let properties = client_properties();
        let capabilities = properties
            .iter()
            .find(|(key, _)| key == "capabilities")
            .map(|(_, value)| value);
        let Some(FieldValue::Table(capabilities)) = capabilities else {
            panic!("no capabilities in {properties:?}");
        };
        for capability in ["publisher_confirms", "authentication_failure_close"] {
            assert!(
                capabilities.contains(&(capability.to_string(), FieldValue::Bool(true))),
                "{capability}"
            );
        }
    }
}
