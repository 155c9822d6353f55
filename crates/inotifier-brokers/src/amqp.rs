//! AMQP 0-9-1 (RabbitMQ) for the `celery` processor, through `lapin`, on this crate's private
//! runtime ([`crate::runtime`]): one connection with one channel in confirm mode,
//! declarations, and publishing with publisher confirms, behind a synchronous API.
//!
//! `lapin` rather than `amqprs`: its publisher confirms are a future per message (what a batch
//! of events needs: publish them all, then await each one's confirmation in order), where
//! `amqprs` reports confirms through a callback; and it detects a silent peer by heartbeats.
//!
//! - `amqp://` and `amqps://` (TLS with this crate's certificates, [`crate::tls`]: the server's
//!   certificate always verified), PLAIN authentication with the URL's user and password
//!   (guest/guest without them), the URL's virtual host.
//! - Heartbeats (10 s by default): a broker or network that goes silent is noticed within two
//!   intervals, and the connection is made again.
//! - Publishing in windows: up to [`WINDOW`] messages are published, then their confirmations
//!   awaited, so a batch costs a round trip per window, not one per message.
//!
//! # Failures
//! Whatever makes the connection unusable is an outage ([`ProcessError::outage`]): no
//! connection, a timeout, a connection or channel closed by the broker (an operator, a
//! restart, a refused declaration, a refused login), missed heartbeats. After one, the
//! connection is dropped and [`crate::link::Link`] connects again on the next try. Outages are
//! retried for as long as they last without counting the events' attempts, so nothing is
//! dead-lettered while an operator fixes credentials, permissions or a queue declared with
//! other arguments; their messages say what to fix. A message the broker refuses (basic.nack)
//! is an ordinary retryable failure, and the connection stays usable; a message that cannot be
//! encoded (a routing key over 255 bytes) is permanent.

use std::sync::Arc;
use std::time::Duration;

use inotifier_sinks::ProcessError;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};

use crate::runtime::block_on;
use crate::tls::{self, TlsFiles};
use crate::url::BrokerUrl;

/// The URL schemes of AMQP, with their default ports.
pub const SCHEMES: &[(&str, u16)] = &[
    ("amqp", 5672),
    ("pyamqp", 5672),
    ("amqps", 5671),
    ("pyamqps", 5671),
];

/// Messages published before their confirmations are awaited, at most.
pub const WINDOW: usize = 2048;

/// The default heartbeat interval, in seconds.
pub const DEFAULT_HEARTBEAT: u16 = 10;

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

    fn to_amqp(&self) -> AMQPValue {
        match self {
            FieldValue::Void => AMQPValue::Void,
            FieldValue::Bool(value) => AMQPValue::Boolean(*value),
            FieldValue::Long(value) => AMQPValue::LongLongInt(*value),
            FieldValue::Double(value) => AMQPValue::Double(*value),
            FieldValue::LongString(bytes) => AMQPValue::LongString(LongString::from(bytes.clone())),
            FieldValue::Array(items) => AMQPValue::FieldArray(FieldArray::from(
                items.iter().map(FieldValue::to_amqp).collect::<Vec<_>>(),
            )),
            FieldValue::Table(entries) => AMQPValue::FieldTable(table(entries)),
        }
    }
}

fn table(entries: &[(String, FieldValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(ShortString::from(key.as_str()), value.to_amqp());
    }
    table
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

impl Properties {
    fn to_amqp(&self) -> BasicProperties {
        let mut properties = BasicProperties::default();
        if let Some(value) = &self.content_type {
            properties = properties.with_content_type(value.as_str().into());
        }
        if let Some(value) = &self.content_encoding {
            properties = properties.with_content_encoding(value.as_str().into());
        }
        if let Some(headers) = &self.headers {
            properties = properties.with_headers(table(headers));
        }
        if let Some(value) = self.delivery_mode {
            properties = properties.with_delivery_mode(value);
        }
        if let Some(value) = self.priority {
            properties = properties.with_priority(value);
        }
        if let Some(value) = &self.correlation_id {
            properties = properties.with_correlation_id(value.as_str().into());
        }
        if let Some(value) = &self.reply_to {
            properties = properties.with_reply_to(value.as_str().into());
        }
        if let Some(value) = &self.message_id {
            properties = properties.with_message_id(value.as_str().into());
        }
        properties
    }
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

/// Where a broker is and how to talk to it.
#[derive(Debug, Clone)]
pub struct AmqpTarget {
    pub url: BrokerUrl,
    /// The certificates of an `amqps://` connection.
    pub tls: TlsFiles,
    /// Seconds between heartbeats; 0 for none.
    pub heartbeat: u16,
    /// For connecting and each step of it, and for each confirmation.
    pub timeout: Duration,
}

impl AmqpTarget {
    fn tls(&self) -> bool {
        self.url.scheme.ends_with('s')
    }

    /// The broker, begun with TLS for `amqps://`.
    pub fn endpoints(&self) -> Vec<crate::reach::Endpoint> {
        use crate::reach::{Endpoint, Handshake};
        let handshake = if self.tls() {
            Handshake::Tls
        } else {
            Handshake::Plain
        };
        Endpoint::of_url(&self.url, handshake, &self.tls)
    }

    fn uri(&self) -> AMQPUri {
        AMQPUri {
            scheme: if self.tls() {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.url.user.clone().unwrap_or_else(|| "guest".into()),
                    password: self.url.password.clone().unwrap_or_else(|| "guest".into()),
                },
                host: self.url.host.clone(),
                port: self.url.port,
            },
            vhost: if self.url.path.is_empty() {
                "/".into()
            } else {
                self.url.path.clone()
            },
            query: AMQPQueryString {
                heartbeat: Some(self.heartbeat),
                connection_timeout: Some(
                    u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                ),
                ..AMQPQueryString::default()
            },
        }
    }
}

/// A connection with one channel in confirm mode.
pub struct AmqpConnection {
    /// The broker's URL without its password, for messages.
    broker: String,
    /// The name the broker shows for the connection (`rabbitmqctl list_connections
    /// user_provided_name`): which daemon, which connection.
    name: String,
    timeout: Duration,
    connection: Connection,
    channel: Channel,
}

impl Drop for AmqpConnection {
    fn drop(&mut self) {
        if self.connection.status().connected() {
            // Closing politely (connection.close) is best effort: the broker would notice the
            // socket close anyway.
            let closing = self.connection.close(200, "bye".into());
            let _ = block_on(async { tokio::time::timeout(Duration::from_secs(2), closing).await });
        }
    }
}

impl AmqpConnection {
    /// Connects, authenticates (PLAIN), opens a channel and puts it in confirm mode; the
    /// target's timeout bounds it all.
    pub fn connect(target: &AmqpTarget) -> Result<AmqpConnection, ProcessError> {
        let broker = target.url.to_string();
        let user = target.url.user.clone().unwrap_or_else(|| "guest".into());
        let uri = target.uri();
        let connector = if target.tls() {
            let config = target.tls.client_config().map_err(|error| {
                ProcessError::outage(format!("RabbitMQ at {broker}: TLS: {error}"))
            })?;
            Some(Arc::new(RustlsConnector::from(config)))
        } else {
            None
        };
        let timeout = target.timeout;
        static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("inotifier {}-{number}", std::process::id());
        let connection_name = name.clone();
        let result = block_on(async move {
            let connecting = async move {
                let runtime = lapin::runtime::default_runtime()?;
                let properties = ConnectionProperties::default()
                    .with_connection_name(connection_name.as_str().into());
                let connection = match connector {
                    None => Connection::connect_uri_with_runtime(uri, properties, runtime).await?,
                    Some(connector) => {
                        let connect = async move |uri: AMQPUri, runtime| {
                            let host = (uri.authority.host.as_str(), uri.authority.port);
                            let addresses: Vec<std::net::SocketAddr> =
                                tokio::net::lookup_host(host).await?.collect();
                            let stream = AsyncTcpStream::connect(&runtime, addresses).await?;
                            Ok(stream.into_rustls(&connector, &uri.authority.host).await?)
                        };
                        Connection::connector(uri, runtime, connect, properties).await?
                    }
                };
                let channel = connection.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                Ok::<_, lapin::Error>((connection, channel))
            };
            tokio::time::timeout(timeout, connecting).await
        });
        let failure = |error: &str| {
            let what = describe_connect(&broker, &user, error, target.tls());
            ProcessError::outage(what)
        };
        match result {
            Err(_) => Err(ProcessError::outage(format!(
                "cannot connect to RabbitMQ at {broker}: no answer within {timeout:?}"
            ))),
            Ok(Err(error)) => Err(failure(&crate::link::error_chain(&error))),
            Ok(Ok((connection, channel))) => Ok(AmqpConnection {
                broker,
                name,
                timeout,
                connection,
                channel,
            }),
        }
    }

    /// The name the broker shows for this connection: `inotifier PID-N`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the connection and its channel still work (no heartbeat missed, nothing closed).
    pub fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Runs `step` (named `doing` in messages) on the runtime, bounded by the timeout.
    fn run<T>(
        &self,
        doing: &str,
        step: impl std::future::Future<Output = lapin::Result<T>>,
    ) -> Result<T, ProcessError> {
        if let Some(error) = self.unusable() {
            return Err(error);
        }
        match block_on(async { tokio::time::timeout(self.timeout, step).await }) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.failure(doing, &error)),
            Err(_) => Err(ProcessError::outage(format!(
                "RabbitMQ at {}: {doing}: no answer within {:?}",
                self.broker, self.timeout
            ))),
        }
    }

    fn unusable(&self) -> Option<ProcessError> {
        (!self.usable()).then(|| {
            ProcessError::outage(format!(
                "RabbitMQ at {}: the connection is unusable (the broker closed the connection \
                 or the channel, or its heartbeats stopped): it is made again on the next try",
                self.broker
            ))
        })
    }

    /// Declares a durable or transient exchange of `kind` (direct, topic, fanout).
    pub fn declare_exchange(
        &mut self,
        name: &str,
        kind: &str,
        durable: bool,
    ) -> Result<(), ProcessError> {
        let kind = match kind {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            other => ExchangeKind::Custom(other.into()),
        };
        let options = ExchangeDeclareOptions {
            durable,
            ..ExchangeDeclareOptions::default()
        };
        let doing = format!("declaring the exchange {name:?}");
        self.run(
            &doing,
            self.channel
                .exchange_declare(name.into(), kind, options, FieldTable::default()),
        )
    }

    /// Declares a queue, durable or not, as Celery does (no arguments).
    pub fn declare_queue(&mut self, name: &str, durable: bool) -> Result<(), ProcessError> {
        self.declare_queue_with(name, durable, &[])
    }

    /// Declares a queue with `arguments` (such as `x-max-length`).
    pub fn declare_queue_with(
        &mut self,
        name: &str,
        durable: bool,
        arguments: &[(String, FieldValue)],
    ) -> Result<(), ProcessError> {
        let options = QueueDeclareOptions {
            durable,
            ..QueueDeclareOptions::default()
        };
        let doing = format!("declaring the queue {name:?}");
        self.run(
            &doing,
            self.channel
                .queue_declare(name.into(), options, table(arguments)),
        )
        .map(drop)
    }

    /// Binds `queue` to `exchange` with `routing_key`.
    pub fn bind_queue(
        &mut self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), ProcessError> {
        let doing = format!("binding the queue {queue:?} to the exchange {exchange:?}");
        self.run(
            &doing,
            self.channel.queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
    }

    /// Deletes a queue; the number of messages it held.
    pub fn delete_queue(&mut self, name: &str) -> Result<u32, ProcessError> {
        let doing = format!("deleting the queue {name:?}");
        self.run(
            &doing,
            self.channel
                .queue_delete(name.into(), QueueDeleteOptions::default()),
        )
    }

    pub fn delete_exchange(&mut self, name: &str) -> Result<(), ProcessError> {
        let doing = format!("deleting the exchange {name:?}");
        self.run(
            &doing,
            self.channel
                .exchange_delete(name.into(), ExchangeDeleteOptions::default()),
        )
    }

    /// Publishes `messages`, window after window, each message confirmed before it counts.
    pub fn publish_confirmed(&mut self, messages: &[Publish<'_>]) -> PublishOutcome {
        let mut confirmed = 0;
        while confirmed < messages.len() {
            let window = &messages[confirmed..messages.len().min(confirmed + WINDOW)];
            let (done, failure) = self.publish_window(window);
            confirmed += done;
            if failure.is_some() {
                return PublishOutcome { confirmed, failure };
            }
        }
        PublishOutcome {
            confirmed,
            failure: None,
        }
    }

    fn publish_window(&mut self, messages: &[Publish<'_>]) -> (usize, Option<ProcessError>) {
        if let Some(error) = self.unusable() {
            return (0, Some(error));
        }
        let mut unencodable = None;
        let mut sendable = messages.len();
        for (index, message) in messages.iter().enumerate() {
            let too_long = [
                ("exchange", message.exchange),
                ("routing key", message.routing_key),
            ]
            .into_iter()
            .find(|(_, value)| value.len() > 255);
            if let Some((what, value)) = too_long {
                unencodable = Some(ProcessError::permanent(format!(
                    "a message to the exchange {:?} with the routing key {:?} cannot be \
                     published: the {what} is {} bytes long, over the 255 of AMQP",
                    abbreviated(message.exchange),
                    abbreviated(message.routing_key),
                    value.len()
                )));
                sendable = index;
                break;
            }
        }
        let doing = match sendable {
            1 => "publishing a message".to_string(),
            sent => format!("publishing {sent} messages"),
        };
        let channel = &self.channel;
        let timeout = self.timeout;
        // What was settled stays known when a later confirmation does not come: those before
        // it count, and are not sent again.
        let mut settled = Vec::with_capacity(sendable);
        let publishing = async {
            let mut confirms = Vec::with_capacity(sendable);
            let publish_all = async {
                for message in &messages[..sendable] {
                    let confirm = channel
                        .basic_publish(
                            message.exchange.into(),
                            message.routing_key.into(),
                            BasicPublishOptions::default(),
                            message.body,
                            message.properties.to_amqp(),
                        )
                        .await?;
                    confirms.push(confirm);
                }
                Ok::<_, lapin::Error>(())
            };
            // The channel closing under a later publish: the earlier ones' confirms carry the
            // broker's reason (such as 404 NOT_FOUND), which says more; they are read first.
            let refused = match tokio::time::timeout(timeout, publish_all).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(Ok(error)),
                Err(_) => Some(Err(())),
            };
            for confirm in confirms {
                // The timeout is the longest silence: a large window may take longer in all.
                match tokio::time::timeout(timeout, confirm).await {
                    Ok(Ok(confirmation)) => {
                        settled.push(matches!(confirmation, Confirmation::Ack(_)));
                    }
                    Ok(Err(error)) => return Some(Ok(error)),
                    Err(_) => return Some(Err(())),
                }
            }
            refused
        };
        let error = match block_on(publishing) {
            None => None,
            Some(Ok(error)) => Some(self.failure(&doing, &error)),
            Some(Err(())) => Some(ProcessError::outage(format!(
                "RabbitMQ at {}: {doing}: no confirmation within {:?}",
                self.broker, self.timeout
            ))),
        };
        let confirmed = settled.iter().take_while(|&&acked| acked).count();
        if confirmed < settled.len() {
            return (confirmed, Some(self.refused(&messages[confirmed])));
        }
        if error.is_some() {
            return (confirmed, error);
        }
        (confirmed, unencodable)
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

    /// The outage of a step that failed with `error`, with what to fix when the broker said
    /// why.
    fn failure(&self, doing: &str, error: &lapin::Error) -> ProcessError {
        let broker = &self.broker;
        let Some(amqp) = amqp_error(error) else {
            return ProcessError::outage(format!(
                "RabbitMQ at {broker}: {doing}: {}",
                crate::link::error_chain(error)
            ));
        };
        let (code, text) = amqp;
        let fix = match code {
            404 if text.contains("no exchange") => {
                " (declare it first: the exchange option names an exchange that does not exist)"
            }
            406 => {
                " (it exists with other arguments: configure the same ones, or delete it so that \
                 it is declared again)"
            }
            403 => {
                " (the user of the URL may not do this: grant it with rabbitmqctl set_permissions)"
            }
            _ => "",
        };
        ProcessError::outage(format!(
            "RabbitMQ at {broker}: {doing}: the broker closed the channel: {code} {text}{fix}"
        ))
    }
}

/// The reply code and text of an AMQP error the broker sent (channel.close, connection.close).
fn amqp_error(error: &lapin::Error) -> Option<(u16, String)> {
    let lapin::ErrorKind::ProtocolError(amqp) = error.kind() else {
        return None;
    };
    Some((reply_code(amqp.kind()), amqp.get_message().to_string()))
}

fn reply_code(kind: &AMQPErrorKind) -> u16 {
    match kind {
        AMQPErrorKind::Soft(soft) => match soft {
            AMQPSoftError::CONTENTTOOLARGE => 311,
            AMQPSoftError::NOROUTE => 312,
            AMQPSoftError::NOCONSUMERS => 313,
            AMQPSoftError::ACCESSREFUSED => 403,
            AMQPSoftError::NOTFOUND => 404,
            AMQPSoftError::RESOURCELOCKED => 405,
            AMQPSoftError::PRECONDITIONFAILED => 406,
        },
        AMQPErrorKind::Hard(hard) => match hard {
            AMQPHardError::CONNECTIONFORCED => 320,
            AMQPHardError::INVALIDPATH => 402,
            AMQPHardError::FRAMEERROR => 501,
            AMQPHardError::SYNTAXERROR => 502,
            AMQPHardError::COMMANDINVALID => 503,
            AMQPHardError::CHANNELERROR => 504,
            AMQPHardError::UNEXPECTEDFRAME => 505,
            AMQPHardError::RESOURCEERROR => 506,
            AMQPHardError::NOTALLOWED => 530,
            AMQPHardError::NOTIMPLEMENTED => 540,
            AMQPHardError::INTERNALERROR => 541,
        },
    }
}

/// The message of a failed connection: a refused login, an unknown virtual host, a TLS
/// failure, or the network.
fn describe_connect(broker: &str, user: &str, error: &str, tls_used: bool) -> String {
    if error.contains("ACCESS_REFUSED") || error.contains("ACCESSREFUSED") {
        let mut message = format!(
            "RabbitMQ at {broker} refused the login of user {user:?} (403 ACCESS_REFUSED: \
             {error}): check the user and password in the broker URL, in the daemon's \
             environment variable that holds it"
        );
        if user == "guest" && !broker.contains("127.0.0.1") && !broker.contains("localhost") {
            message.push_str(
                " (RabbitMQ refuses the user guest on connections from other hosts than \
                 localhost: create a user for the daemon)",
            );
        }
        return message;
    }
    if error.contains("NOT_ALLOWED") || error.contains("NOTALLOWED") {
        return format!(
            "RabbitMQ at {broker}: opening the virtual host: 530 NOT_ALLOWED ({error}): create \
             it (rabbitmqctl add_vhost NAME) and give the user access to it (rabbitmqctl \
             set_permissions -p NAME USER '.*' '.*' '.*'), or fix the URL's path"
        );
    }
    match tls::advice(error) {
        Some(advice) if tls_used => format!("RabbitMQ at {broker}: TLS: {error}: {advice}"),
        // RabbitMQ that refuses a client without a certificate (TLS 1.3) often just resets
        // the connection after the handshake, before its alert is read.
        None if tls_used && error.to_ascii_lowercase().contains("connection reset") => format!(
            "RabbitMQ at {broker}: TLS: {error}: the server closed the connection at the TLS \
             handshake; if it requires client certificates (fail_if_no_peer_cert), set \
             cert_file and key_file"
        ),
        _ => format!("cannot connect to RabbitMQ at {broker}: {error}"),
    }
}

/// `text`, cut to 64 characters for messages.
fn abbreviated(text: &str) -> String {
    if text.chars().count() <= 64 {
        text.to_string()
    } else {
        let cut: String = text.chars().take(61).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::describe_connect;

    #[test]
    fn a_reset_at_the_tls_handshake_points_at_the_client_certificate() {
        let broker = "amqps://127.0.0.1:5671//";
        let error = "IO error: Connection reset by peer (os error 104)";
        let over_tls = describe_connect(broker, "guest", error, true);
        assert!(
            over_tls.starts_with("RabbitMQ at amqps://127.0.0.1:5671//: TLS: "),
            "{over_tls}"
        );
        assert!(
            over_tls.contains("set cert_file and key_file"),
            "{over_tls}"
        );
        // Without TLS a reset is only a reset: nothing about certificates.
        let plain = describe_connect("amqp://127.0.0.1:5672//", "guest", error, false);
        assert_eq!(
            plain,
            "cannot connect to RabbitMQ at amqp://127.0.0.1:5672//: IO error: Connection reset \
             by peer (os error 104)"
        );
    }
}
