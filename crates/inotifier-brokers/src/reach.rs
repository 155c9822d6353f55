//! Whether a processor's servers can be reached from this machine, without sending an event:
//! a TCP connection and, for TLS, the handshake with the certificates the processor itself
//! would use (so a certificate that would not verify for the processor does not verify here
//! either). For `inotifier doctor`.
//!
//! Nothing is said to the server past the handshake: no command, no credentials, no event.

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use crate::tls::TlsFiles;
use crate::url::BrokerUrl;

/// How a connection to an endpoint begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handshake {
    /// Plain TCP: the connection is all there is to check.
    Plain,
    /// TLS from the first byte (`rediss://`, `amqps://`, `https://`).
    Tls,
    /// NATS: the server speaks first with a plain-text `INFO` line, then TLS follows when
    /// the server says `tls_required` or the client requires it.
    NatsInfo { require_tls: bool },
}

/// One server a processor connects to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL without its password, for messages.
    pub what: String,
    pub host: String,
    pub port: u16,
    pub handshake: Handshake,
    /// The certificates of a TLS handshake.
    pub tls: TlsFiles,
}

/// What reaching an endpoint showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub address: SocketAddr,
    /// Whether a TLS handshake was made (and its certificates verified).
    pub tls: bool,
}

/// Why an endpoint could not be reached; `advice` says what to do, when there is something
/// more specific to say than the error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Unreachable {
    pub message: String,
    pub advice: Option<&'static str>,
}

impl Unreachable {
    fn new(message: String) -> Unreachable {
        let advice = crate::tls::advice(&message);
        Unreachable { message, advice }
    }
}

impl Endpoint {
    /// The endpoints of `url` (its first host and the ones after it), each begun by
    /// `handshake`.
    pub fn of_url(url: &BrokerUrl, handshake: Handshake, tls: &TlsFiles) -> Vec<Endpoint> {
        std::iter::once((url.host.clone(), url.port))
            .chain(url.more_hosts.iter().cloned())
            .map(|(host, port)| Endpoint {
                what: format!("{}://{}", url.scheme, host_port(&host, port)),
                host,
                port,
                handshake,
                tls: tls.clone(),
            })
            .collect()
    }

    /// Connects, and makes the TLS handshake when there is one, everything within `timeout`.
    pub fn probe(&self, timeout: Duration) -> Result<Reached, Unreachable> {
        let deadline = Instant::now() + timeout;
        let (mut stream, address) = self.connect(timeout)?;
        let tls = match self.handshake {
            Handshake::Plain => false,
            Handshake::Tls => {
                self.tls_handshake(&mut stream, deadline)?;
                true
            }
            Handshake::NatsInfo { require_tls } => {
                let server_requires = read_nats_info(&mut stream, deadline).map_err(|error| {
                    Unreachable::new(format!(
                        "{address} accepted the connection but sent no NATS INFO line: \
                         {error} (is it a NATS server?)"
                    ))
                })?;
                if require_tls || server_requires {
                    self.tls_handshake(&mut stream, deadline)?;
                    true
                } else {
                    false
                }
            }
        };
        Ok(Reached { address, tls })
    }

    fn connect(&self, timeout: Duration) -> Result<(TcpStream, SocketAddr), Unreachable> {
        let addresses: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|error| {
                Unreachable::new(format!(
                    "cannot resolve {}: {}",
                    self.host,
                    plain_io_error(&error)
                ))
            })?
            .collect();
        let mut last = None;
        for address in &addresses {
            match TcpStream::connect_timeout(address, timeout) {
                Ok(stream) => return Ok((stream, *address)),
                Err(error) => last = Some((address, error)),
            }
        }
        Err(Unreachable::new(match last {
            Some((address, error)) => {
                format!("cannot connect to {address}: {}", plain_io_error(&error))
            }
            None => format!("{} resolves to no address", self.host),
        }))
    }

    fn tls_handshake(&self, stream: &mut TcpStream, deadline: Instant) -> Result<(), Unreachable> {
        let config: Arc<rustls::ClientConfig> =
            self.tls.client_config().map_err(Unreachable::new)?;
        let name = ServerName::try_from(self.host.clone()).map_err(|error| {
            Unreachable::new(format!("{:?} is not a TLS server name: {error}", self.host))
        })?;
        let mut tls = rustls::ClientConnection::new(config, name)
            .map_err(|error| Unreachable::new(format!("TLS: {error}")))?;
        let fail = |error: io::Error| {
            Unreachable::new(format!(
                "TLS handshake with {}:{} failed: {}",
                self.host,
                self.port,
                plain_io_error(&error)
            ))
        };
        while tls.is_handshaking() {
            set_timeout(stream, deadline).map_err(fail)?;
            tls.complete_io(stream).map_err(fail)?;
        }
        // In TLS 1.3 the server judges the client's certificate after the client's last
        // handshake message: a refusal arrives as an alert just after. The server waits for
        // the client to speak (a command, a request), so a quiet moment means it accepted.
        let quiet =
            Duration::from_millis(300).min(deadline.saturating_duration_since(Instant::now()));
        if !quiet.is_zero() {
            stream.set_read_timeout(Some(quiet)).map_err(fail)?;
            let mut byte = [0u8; 1];
            match tls
                .complete_io(stream)
                .and_then(|_| tls.reader().read(&mut byte))
            {
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(error) => return Err(fail(error)),
            }
        }
        tls.send_close_notify();
        let _ = tls.write_tls(stream);
        Ok(())
    }
}

/// The `tls_required` of the `INFO` line a NATS server opens the connection with.
fn read_nats_info(stream: &mut TcpStream, deadline: Instant) -> io::Result<bool> {
    set_timeout(stream, deadline)?;
    // The INFO line lists the cluster's URLs: a few KiB; more is not a NATS server.
    let mut reader = BufReader::new(Read::by_ref(stream).take(64 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let json = line
        .strip_prefix("INFO ")
        .ok_or_else(|| io::Error::other(format!("it sent {:?}", truncate(&line))))?;
    let info: serde_json::Value = serde_json::from_str(json.trim_end())
        .map_err(|error| io::Error::other(format!("its INFO is not JSON: {error}")))?;
    Ok(info
        .get("tls_required")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false))
}

fn set_timeout(stream: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
    }
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

/// "Connection refused (os error 111)" → "Connection refused"; a timeout says so plainly.
fn plain_io_error(error: &io::Error) -> String {
    if matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return "timed out".into();
    }
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(start) if text.ends_with(')') => text[..start].to_string(),
        _ => text,
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
