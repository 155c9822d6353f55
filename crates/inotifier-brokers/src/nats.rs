//! A minimal synchronous NATS client: CONNECT, publishing with headers, and the replies to
//! an inbox of the connection's own.
//!
//! What the `jetstream` processor needs, and no more: one TCP connection (no TLS yet), the
//! handshake (`INFO`, `CONNECT`, `PING`/`PONG`), one subscription to the wildcard
//! `_INBOX.<random>.*` that receives every reply, `HPUB` to publish with headers, and the
//! parsing of what the server sends (`MSG`, `HMSG` with status headers such as
//! `NATS/1.0 503`, `PING`, `PONG`, `+OK`, `-ERR`, `INFO`). Whatever the network sends is
//! checked: a malformed or oversized frame is a [`NatsError::Protocol`], never a panic.
//!
//! The protocol: <https://docs.nats.io/reference/reference-protocols/nats-protocol>.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::url::BrokerUrl;

/// The longest control line (`MSG ...`, `INFO {...}`) accepted from a server. INFO carries
/// the cluster's URLs, so it is generous; a server sends at most its own `max_control_line`
/// (4096 by default) for everything else.
const MAX_CONTROL_LINE: usize = 64 * 1024;

/// The largest message accepted from a server: far above any reply we ask for, low enough
/// that a corrupt length cannot make us buffer without end.
const MAX_INCOMING_MESSAGE: usize = 64 * 1024 * 1024;

/// The longest control line a server accepts by default (`max_control_line`): a longer
/// `HPUB` line is refused with `-ERR` and the connection closed.
pub const SERVER_MAX_CONTROL_LINE: usize = 4096;

/// What can go wrong with a connection. Every variant but [`NatsError::TooLarge`] leaves the
/// connection unusable.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("NATS at {url}: the connection failed: {source}")]
    Io { url: String, source: io::Error },
    #[error("NATS at {url} sent nothing within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("NATS at {url} closed the connection")]
    Closed { url: String },
    #[error("NATS at {url} broke the protocol: {what}")]
    Protocol { url: String, what: String },
    #[error(
        "NATS at {url} requires TLS, which inotifier does not support yet: let the server \
         accept plain connections on a private network, or reach it through a TLS tunnel \
         such as stunnel"
    )]
    TlsRequired { url: String },
    #[error(
        "NATS at {url} (version {version}) does not support message headers: JetStream \
         publishing needs nats-server 2.2 or later"
    )]
    NoHeaders { url: String, version: String },
    #[error("NATS at {url} refused the credentials (Authorization Violation)")]
    AuthorizationViolation { url: String },
    #[error("NATS at {url} answered -ERR '{message}'")]
    Server { url: String, message: String },
    #[error("a message of {size} bytes is over the max_payload of NATS at {url}, {max} bytes")]
    TooLarge {
        url: String,
        size: usize,
        max: usize,
    },
}

/// The fields of the server's `INFO` this client reads (the others are ignored).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ServerInfo {
    pub server_id: String,
    pub version: String,
    pub headers: bool,
    pub max_payload: usize,
    pub jetstream: bool,
    pub tls_required: bool,
    pub auth_required: bool,
}

/// A message delivered to the connection's inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub sid: String,
    pub reply: Option<String>,
    /// The status of a headers block `NATS/1.0 503 No Responders`: 503 (no subscriber took
    /// the request), 408 (a request timed out)... `None` for a plain message.
    pub status: Option<u16>,
    pub description: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One operation sent by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    Info(Box<ServerInfo>),
    Msg(Box<Message>),
    Ping,
    Pong,
    Ok,
    Err(String),
}

/// Credentials and limits of a connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions<'a> {
    pub url: &'a BrokerUrl,
    /// Sent as `auth_token`, instead of the URL's user and password.
    pub token: Option<&'a str>,
    /// For connecting, for the handshake, and for each write.
    pub timeout: Duration,
    /// The client name the server shows in its monitoring (`connz`).
    pub name: &'a str,
}

/// A connection to one NATS server, subscribed to its inbox.
pub struct NatsConnection {
    stream: TcpStream,
    incoming: Incoming,
    /// For messages: the URL without its password.
    what: String,
    info: ServerInfo,
    /// `_INBOX.<random>.`: reply subjects are this with a number appended.
    inbox_prefix: String,
    next_reply: u64,
    /// The connection's timeout, for messages.
    timeout: Duration,
}

/// The subscription id of the inbox.
const INBOX_SID: &str = "1";

impl NatsConnection {
    /// Connects (trying each address `url`'s host resolves to), checks the server's INFO,
    /// authenticates, subscribes to the inbox, and waits for the server's PONG, which
    /// confirms all of it.
    pub fn connect(options: &ConnectOptions<'_>) -> Result<NatsConnection, NatsError> {
        let url = options.url;
        let what = url.to_string();
        let stream = connect_tcp(url, options.timeout)?;
        let io_error = |source| NatsError::Io {
            url: what.clone(),
            source,
        };
        stream.set_nodelay(true).map_err(io_error)?;
        stream
            .set_write_timeout(Some(options.timeout))
            .map_err(io_error)?;
        let mut connection = NatsConnection {
            stream,
            incoming: Incoming::default(),
            what: what.clone(),
            info: ServerInfo::default(),
            inbox_prefix: format!("_INBOX.{}.", random_token()),
            next_reply: 0,
            timeout: options.timeout,
        };
        let deadline = Instant::now() + options.timeout;
        match connection.read_op(deadline)? {
            ServerOp::Info(info) => connection.info = *info,
            other => {
                return Err(connection.protocol(format!("expected INFO first, got {other:?}")));
            }
        }
        if connection.info.tls_required {
            return Err(NatsError::TlsRequired { url: what });
        }
        if !connection.info.headers {
            return Err(NatsError::NoHeaders {
                url: what,
                version: connection.info.version.clone(),
            });
        }
        let mut handshake = connect_command(options);
        handshake.extend_from_slice(
            format!("SUB {}* {INBOX_SID}\r\nPING\r\n", connection.inbox_prefix).as_bytes(),
        );
        connection.send(&handshake)?;
        loop {
            match connection.read_op(deadline)? {
                ServerOp::Pong => return Ok(connection),
                ServerOp::Err(message) => {
                    return Err(if message.contains("Authorization Violation") {
                        NatsError::AuthorizationViolation { url: what }
                    } else {
                        NatsError::Server { url: what, message }
                    });
                }
                // +OK, an INFO update, a PING (answered by read_op): the PONG comes next.
                _ => {}
            }
        }
    }

    /// The server's INFO (updated by the INFO it sends later).
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// The URL of the server, without its password.
    pub fn url(&self) -> &str {
        &self.what
    }

    /// A new reply subject of this connection's inbox: `_INBOX.<random>.<n>`, n counting up
    /// from 0.
    pub fn new_reply_subject(&mut self) -> String {
        let subject = format!("{}{}", self.inbox_prefix, self.next_reply);
        self.next_reply += 1;
        subject
    }

    /// The number `n` of a reply subject made by [`NatsConnection::new_reply_subject`] of
    /// this connection, or None for any other subject.
    pub fn reply_number(&self, subject: &str) -> Option<u64> {
        subject
            .strip_prefix(&self.inbox_prefix)
            .and_then(|number| number.parse().ok())
    }

    /// Refuses a message of `size` bytes (headers and payload) that the server would refuse
    /// by closing the connection.
    pub fn check_size(&self, size: usize) -> Result<(), NatsError> {
        if self.info.max_payload > 0 && size > self.info.max_payload {
            return Err(NatsError::TooLarge {
                url: self.what.clone(),
                size,
                max: self.info.max_payload,
            });
        }
        Ok(())
    }

    /// Writes `bytes`, protocol operations such as those of [`encode_hpub`], as they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), NatsError> {
        self.stream.write_all(bytes).map_err(|source| {
            if is_timeout(&source) {
                NatsError::Timeout {
                    url: self.what.clone(),
                    timeout: self.timeout,
                }
            } else {
                NatsError::Io {
                    url: self.what.clone(),
                    source,
                }
            }
        })
    }

    /// The next message to the inbox, waiting until `deadline` at most (a timeout error names
    /// the connection's timeout). Server PINGs are
    /// answered on the way; `-ERR` ends the connection's usefulness and is returned.
    pub fn next_message(&mut self, deadline: Instant) -> Result<Message, NatsError> {
        loop {
            match self.read_op(deadline)? {
                ServerOp::Msg(message) => return Ok(*message),
                ServerOp::Err(message) => {
                    return Err(NatsError::Server {
                        url: self.what.clone(),
                        message,
                    });
                }
                ServerOp::Info(info) => self.info = *info,
                ServerOp::Ping | ServerOp::Pong | ServerOp::Ok => {}
            }
        }
    }

    /// Publishes `payload` to `subject` with `headers` and waits for the reply, for the
    /// connection's timeout at most: a request, such as one of the JetStream API
    /// (`$JS.API.STREAM.CREATE.<name>`).
    pub fn request(
        &mut self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<Message, NatsError> {
        let reply = self.new_reply_subject();
        let mut bytes = Vec::new();
        encode_hpub(&mut bytes, subject, Some(&reply), headers, payload);
        self.send(&bytes)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let message = self.next_message(deadline)?;
            // A late reply to an earlier request is skipped.
            if message.subject == reply {
                return Ok(message);
            }
        }
    }

    /// Handles what the server sent while the connection was idle, without waiting: answers
    /// its PINGs, takes its INFO updates, skips late replies. An error when the server has
    /// closed the connection meanwhile (after PINGs left unanswered while nothing read them,
    /// a restart...), so that the caller connects again before publishing rather than learn
    /// it from a missing acknowledgement.
    pub fn check_alive(&mut self) -> Result<(), NatsError> {
        let io_error = |source| NatsError::Io {
            url: self.what.clone(),
            source,
        };
        self.stream.set_nonblocking(true).map_err(io_error)?;
        let read = loop {
            match self.incoming.fill(&mut self.stream) {
                Ok(0) => {
                    break Err(NatsError::Closed {
                        url: self.what.clone(),
                    });
                }
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    break Err(NatsError::Io {
                        url: self.what.clone(),
                        source,
                    });
                }
            }
        };
        self.stream.set_nonblocking(false).map_err(io_error)?;
        read?;
        loop {
            match self
                .incoming
                .next_op()
                .map_err(|what| self.protocol(what))?
            {
                None => return Ok(()),
                Some(ServerOp::Ping) => self.send(b"PONG\r\n")?,
                Some(ServerOp::Info(info)) => self.info = *info,
                Some(ServerOp::Err(message)) => {
                    return Err(NatsError::Server {
                        url: self.what.clone(),
                        message,
                    });
                }
                Some(ServerOp::Msg(_) | ServerOp::Pong | ServerOp::Ok) => {}
            }
        }
    }

    /// Reads until a whole operation is buffered, answering the server's PING.
    fn read_op(&mut self, deadline: Instant) -> Result<ServerOp, NatsError> {
        loop {
            match self.incoming.next_op() {
                Ok(Some(ServerOp::Ping)) => {
                    self.send(b"PONG\r\n")?;
                    return Ok(ServerOp::Ping);
                }
                Ok(Some(op)) => return Ok(op),
                Ok(None) => {}
                Err(what) => return Err(self.protocol(what)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = || NatsError::Timeout {
                url: self.what.clone(),
                timeout: self.timeout,
            };
            if left.is_zero() {
                return Err(timeout());
            }
            if let Err(source) = self.stream.set_read_timeout(Some(left)) {
                return Err(NatsError::Io {
                    url: self.what.clone(),
                    source,
                });
            }
            match self.incoming.fill(&mut self.stream) {
                Ok(0) => {
                    return Err(NatsError::Closed {
                        url: self.what.clone(),
                    });
                }
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_timeout(&error) => return Err(timeout()),
                Err(source) => {
                    return Err(NatsError::Io {
                        url: self.what.clone(),
                        source,
                    });
                }
            }
        }
    }

    fn protocol(&self, what: String) -> NatsError {
        NatsError::Protocol {
            url: self.what.clone(),
            what,
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Connects to the first address of `url`'s host that accepts, each tried for `timeout`.
fn connect_tcp(url: &BrokerUrl, timeout: Duration) -> Result<TcpStream, NatsError> {
    let failed = |reason: String| NatsError::Connect {
        url: url.to_string(),
        reason,
    };
    let addresses: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|error| failed(format!("cannot resolve {}: {error}", url.host)))?
        .collect();
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(format!("{address}: {error}")),
        }
    }
    Err(failed(last_error.unwrap_or_else(|| {
        format!("{} resolves to no address", url.host)
    })))
}

/// `CONNECT {...}\r\n`: headers on, and no_responders so that a request nobody takes is
/// answered at once with a 503 status rather than left to time out.
fn connect_command(options: &ConnectOptions<'_>) -> Vec<u8> {
    let mut fields = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "headers": true,
        "no_responders": true,
        "lang": "rust",
        "name": options.name,
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
    });
    if let Some(token) = options.token {
        fields["auth_token"] = token.into();
    } else if let Some(user) = &options.url.user {
        match &options.url.password {
            Some(password) => {
                fields["user"] = user.as_str().into();
                fields["pass"] = password.as_str().into();
            }
            // `nats://TOKEN@host`, as the NATS clients read it.
            None => fields["auth_token"] = user.as_str().into(),
        }
    }
    let mut out = b"CONNECT ".to_vec();
    out.extend_from_slice(fields.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// Appends `HPUB subject [reply] hdr_len total_len\r\n<headers><payload>\r\n`. Names and
/// values of `headers` must hold no CR or LF and names no `:`; `subject` and `reply` no
/// whitespace: the caller makes sure of it.
pub fn encode_hpub(
    out: &mut Vec<u8>,
    subject: &str,
    reply: Option<&str>,
    headers: &[(&str, &str)],
    payload: &[u8],
) {
    let header_len = headers_len(headers);
    out.extend_from_slice(b"HPUB ");
    out.extend_from_slice(subject.as_bytes());
    if let Some(reply) = reply {
        out.push(b' ');
        out.extend_from_slice(reply.as_bytes());
    }
    out.extend_from_slice(format!(" {header_len} {}\r\n", header_len + payload.len()).as_bytes());
    out.extend_from_slice(b"NATS/1.0\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// The size of the headers block [`encode_hpub`] writes for `headers`.
pub fn headers_len(headers: &[(&str, &str)]) -> usize {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.len() + 2 + value.len() + 2)
        .sum();
    "NATS/1.0\r\n".len() + fields + 2
}

/// The bytes received and not yet parsed.
#[derive(Default)]
struct Incoming {
    buffer: Vec<u8>,
    /// Where the unparsed bytes start in `buffer`.
    start: usize,
}

impl Incoming {
    /// Reads what `source` has (one read).
    fn fill(&mut self, source: &mut impl Read) -> io::Result<usize> {
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let filled = self.buffer.len();
        self.buffer.resize(filled + 64 * 1024, 0);
        let result = source.read(&mut self.buffer[filled..]);
        self.buffer
            .truncate(filled + *result.as_ref().unwrap_or(&0));
        result
    }

    /// Takes `bytes` as if read (for tests).
    #[cfg(test)]
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole operation buffered, if any.
    fn next_op(&mut self) -> Result<Option<ServerOp>, String> {
        match parse_op(&self.buffer[self.start..])? {
            Some((op, used)) => {
                self.start += used;
                if self.start == self.buffer.len() {
                    self.buffer.clear();
                    self.start = 0;
                }
                Ok(Some(op))
            }
            None => Ok(None),
        }
    }
}

/// Parses the first operation of `bytes`: the operation and how many bytes it took, or None
/// when more bytes are needed. The error says what is malformed.
pub fn parse_op(bytes: &[u8]) -> Result<Option<(ServerOp, usize)>, String> {
    let Some(line_end) = bytes.windows(2).position(|pair| pair == b"\r\n") else {
        if bytes.len() > MAX_CONTROL_LINE {
            return Err(format!(
                "a control line longer than {MAX_CONTROL_LINE} bytes"
            ));
        }
        return Ok(None);
    };
    if line_end > MAX_CONTROL_LINE {
        return Err(format!(
            "a control line longer than {MAX_CONTROL_LINE} bytes"
        ));
    }
    let line = std::str::from_utf8(&bytes[..line_end])
        .map_err(|_| "a control line that is not UTF-8".to_string())?;
    let after_line = line_end + 2;
    let (verb, rest) = match line.find([' ', '\t']) {
        Some(at) => (&line[..at], line[at..].trim_start()),
        None => (line, ""),
    };
    let op = match verb.to_ascii_uppercase().as_str() {
        "PING" => ServerOp::Ping,
        "PONG" => ServerOp::Pong,
        "+OK" => ServerOp::Ok,
        "-ERR" => ServerOp::Err(rest.trim().trim_matches('\'').to_string()),
        "INFO" => {
            let info: ServerInfo = serde_json::from_str(rest)
                .map_err(|error| format!("an INFO that is not valid JSON: {error}"))?;
            ServerOp::Info(Box::new(info))
        }
        "MSG" | "HMSG" => {
            return parse_message(
                verb.eq_ignore_ascii_case("HMSG"),
                rest,
                &bytes[after_line..],
            )
            .map(|parsed| parsed.map(|(message, used)| (message, after_line + used)));
        }
        _ => return Err(format!("an unknown operation {:?}", truncated(line))),
    };
    Ok(Some((op, after_line)))
}

/// `MSG <subject> <sid> [reply] <size>` or `HMSG <subject> <sid> [reply] <hdr_size>
/// <total_size>` (`arguments`), then the body in `body`.
fn parse_message(
    with_headers: bool,
    arguments: &str,
    body: &[u8],
) -> Result<Option<(ServerOp, usize)>, String> {
    let malformed = || format!("a malformed message line {:?}", truncated(arguments));
    let fields: Vec<&str> = arguments.split_ascii_whitespace().collect();
    let sizes = if with_headers { 2 } else { 1 };
    if fields.len() != 2 + sizes && fields.len() != 3 + sizes {
        return Err(malformed());
    }
    let size = |text: &str| text.parse::<usize>().map_err(|_| malformed());
    let (header_len, total_len) = if with_headers {
        let header_len = size(fields[fields.len() - 2])?;
        let total_len = size(fields[fields.len() - 1])?;
        if header_len > total_len {
            return Err(malformed());
        }
        (header_len, total_len)
    } else {
        (0, size(fields[fields.len() - 1])?)
    };
    if total_len > MAX_INCOMING_MESSAGE {
        return Err(format!(
            "a message of {total_len} bytes, over the {MAX_INCOMING_MESSAGE} accepted"
        ));
    }
    if body.len() < total_len + 2 {
        return Ok(None);
    }
    if &body[total_len..total_len + 2] != b"\r\n" {
        return Err("a message not ended by CRLF where its size says".to_string());
    }
    let mut message = Message {
        subject: fields[0].to_string(),
        sid: fields[1].to_string(),
        reply: (fields.len() == 3 + sizes).then(|| fields[2].to_string()),
        payload: body[header_len..total_len].to_vec(),
        ..Message::default()
    };
    if with_headers {
        parse_headers(&body[..header_len], &mut message)?;
    }
    Ok(Some((ServerOp::Msg(Box::new(message)), total_len + 2)))
}

/// `NATS/1.0[ status[ description]]\r\n(Name: value\r\n)*\r\n`.
fn parse_headers(block: &[u8], message: &mut Message) -> Result<(), String> {
    let text = String::from_utf8_lossy(block);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let Some(status_part) = first.strip_prefix("NATS/1.0") else {
        return Err(format!(
            "a headers block starting {:?}, not NATS/1.0",
            truncated(first)
        ));
    };
    let status_part = status_part.trim();
    if !status_part.is_empty() {
        let (code, description) = status_part.split_once(' ').unwrap_or((status_part, ""));
        message.status = Some(
            code.parse()
                .map_err(|_| format!("a status {:?} that is not a number", truncated(code)))?,
        );
        message.description = description.trim().to_string();
    }
    for line in lines.filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a header line {:?} without `:`", truncated(line)));
        };
        message
            .headers
            .push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(())
}

/// At most 80 characters of `text`, for error messages.
fn truncated(text: &str) -> String {
    text.chars().take(80).collect()
}

/// 22 random letters and digits (about 131 bits), for the inbox.
fn random_token() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut seed = [0u8; 22];
    let from_os =
        std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut seed));
    if from_os.is_err() {
        // std's hasher keys are random per process: enough for a name no one guesses by chance.
        use std::hash::{BuildHasher, Hasher};
        for (index, byte) in seed.iter_mut().enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(index);
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            *byte = hasher.finish() as u8;
        }
    }
    seed.iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Vec<ServerOp> {
        let mut incoming = Incoming::default();
        incoming.push(bytes);
        let mut ops = Vec::new();
        while let Some(op) = incoming.next_op().unwrap() {
            ops.push(op);
        }
        assert_eq!(incoming.start, incoming.buffer.len(), "all consumed");
        ops
    }

    #[test]
    fn hpub_frames_headers_and_payload_with_their_sizes() {
        let mut out = Vec::new();
        encode_hpub(
            &mut out,
            "inotifier.IN_CREATE",
            Some("_INBOX.abc.7"),
            &[("Nats-Msg-Id", "x-1"), ("Inotifier-Event-Id", "1")],
            b"{\"id\":1}",
        );
        let headers = "NATS/1.0\r\nNats-Msg-Id: x-1\r\nInotifier-Event-Id: 1\r\n\r\n";
        assert_eq!(
            headers_len(&[("Nats-Msg-Id", "x-1"), ("Inotifier-Event-Id", "1")]),
            53
        );
        assert_eq!(headers.len(), 53);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("HPUB inotifier.IN_CREATE _INBOX.abc.7 53 61\r\n{headers}{{\"id\":1}}\r\n")
        );
        let mut out = Vec::new();
        encode_hpub(&mut out, "s", None, &[], b"");
        assert_eq!(out, b"HPUB s 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    }

    #[test]
    fn server_operations_are_parsed() {
        let ops = parse_all(
            b"INFO {\"server_id\":\"N1\",\"version\":\"2.9.10\",\"headers\":true,\"max_payload\":1048576,\"extra\":[1]}\r\n\
              PING\r\npong\r\n+OK\r\n-ERR 'Authorization Violation'\r\n\
              MSG _INBOX.a.1 1 5\r\nhello\r\n\
              MSG foo 9 reply.to 0\r\n\r\n",
        );
        let ServerOp::Info(info) = &ops[0] else {
            panic!("{ops:?}")
        };
        assert!(info.headers && !info.tls_required);
        assert_eq!(info.max_payload, 1_048_576);
        assert_eq!(&ops[1..4], [ServerOp::Ping, ServerOp::Pong, ServerOp::Ok]);
        assert_eq!(ops[4], ServerOp::Err("Authorization Violation".into()));
        let ServerOp::Msg(message) = &ops[5] else {
            panic!()
        };
        assert_eq!(
            (
                message.subject.as_str(),
                message.sid.as_str(),
                &message.payload[..]
            ),
            ("_INBOX.a.1", "1", &b"hello"[..])
        );
        assert_eq!(message.reply, None);
        let ServerOp::Msg(message) = &ops[6] else {
            panic!()
        };
        assert_eq!(message.reply.as_deref(), Some("reply.to"));
        assert!(message.payload.is_empty());
    }

    #[test]
    fn hmsg_carries_status_and_headers() {
        let headers = "NATS/1.0 503\r\n\r\n";
        let frame = format!(
            "HMSG _INBOX.a.3 1 {} {}\r\n{headers}\r\n",
            headers.len(),
            headers.len()
        );
        let ops = parse_all(frame.as_bytes());
        let ServerOp::Msg(message) = &ops[0] else {
            panic!()
        };
        assert_eq!(message.status, Some(503));
        assert!(message.payload.is_empty());

        let headers = "NATS/1.0 408 Request Timeout\r\nNats-Msg-Id: abc\r\nX: a:b\r\n\r\n";
        let frame = format!(
            "HMSG s 1 r {} {}\r\n{headers}{{}}\r\n",
            headers.len(),
            headers.len() + 2
        );
        let ops = parse_all(frame.as_bytes());
        let ServerOp::Msg(message) = &ops[0] else {
            panic!()
        };
        assert_eq!(message.status, Some(408));
        assert_eq!(message.description, "Request Timeout");
        assert_eq!(message.header("nats-msg-id"), Some("abc"));
        assert_eq!(message.header("X"), Some("a:b"));
        assert_eq!(message.payload, b"{}");
        assert_eq!(message.reply.as_deref(), Some("r"));
    }

    #[test]
    fn operations_split_across_reads_wait_for_their_end() {
        let headers = "NATS/1.0\r\nA: 1\r\n\r\n";
        let stream = format!(
            "PING\r\nHMSG _INBOX.x.1 1 {} {}\r\n{headers}{{\"stream\":\"S\",\"seq\":1}}\r\nMSG a 1 3\r\n\r\n\r\r\n+OK\r\n",
            headers.len(),
            headers.len() + 22
        );
        let whole = parse_all(stream.as_bytes());
        assert_eq!(whole.len(), 4);
        // Fed one byte at a time, the same operations come out, each once complete.
        let mut incoming = Incoming::default();
        let mut ops = Vec::new();
        for byte in stream.as_bytes() {
            incoming.push(&[*byte]);
            while let Some(op) = incoming.next_op().unwrap() {
                ops.push(op);
            }
        }
        assert_eq!(ops, whole);
        let ServerOp::Msg(message) = &ops[2] else {
            panic!()
        };
        // A payload may hold CR LF: its size, not a delimiter, ends it.
        assert_eq!(message.payload, b"\r\n\r");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &b"BOGUS\r\n"[..],
            b"MSG a\r\n",
            b"MSG a 1 x\r\n",
            b"MSG a 1 2\r\nabcd\r\n",
            b"HMSG a 1 10 5\r\n",
            b"HMSG a 1 4 4\r\nXXXX\r\n",
            b"HMSG a 1 9 9\r\nNATS/1.0 abc\r\n",
            b"HMSG a 1 99999999999999999999 99999999999999999999\r\n",
            b"MSG a 1 999999999999\r\n",
            b"INFO {not json\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert!(parse_op(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse_op(&vec![b'x'; MAX_CONTROL_LINE + 1]).is_err());
        assert_eq!(parse_op(b"MSG a 1 5\r\nhel"), Ok(None));
        assert_eq!(parse_op(b""), Ok(None));
    }

    #[test]
    fn connect_sends_credentials_from_the_url_or_a_token() {
        let schemes = &[("nats", 4222)];
        let url = BrokerUrl::parse("nats://alice:s%40cret@h", schemes).unwrap();
        let options = ConnectOptions {
            url: &url,
            token: None,
            timeout: Duration::from_secs(1),
            name: "inotifier",
        };
        let line = String::from_utf8(connect_command(&options)).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(line.strip_prefix("CONNECT ").unwrap().trim_end()).unwrap();
        assert_eq!(json["user"], "alice");
        assert_eq!(json["pass"], "s@cret");
        assert_eq!(json["headers"], true);
        assert_eq!(json["no_responders"], true);
        assert_eq!(json["verbose"], false);
        let token = ConnectOptions {
            token: Some("t0k"),
            ..options
        };
        let line = String::from_utf8(connect_command(&token)).unwrap();
        assert!(line.contains("\"auth_token\":\"t0k\"") && !line.contains("alice"));
        let token_url = BrokerUrl::parse("nats://t0k@h", schemes).unwrap();
        let line = String::from_utf8(connect_command(&ConnectOptions {
            url: &token_url,
            ..token
        }))
        .unwrap();
        assert!(line.contains("\"auth_token\":\"t0k\""));
    }

    #[test]
    fn inbox_tokens_are_random_subject_tokens() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(a.bytes().all(|byte| byte.is_ascii_alphanumeric()));
    }
}
