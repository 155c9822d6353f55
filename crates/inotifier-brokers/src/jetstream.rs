//! The `jetstream` processor: publishes each event to NATS JetStream, and counts it
//! delivered once its stream acknowledged it.
//!
//! Each event is one message:
//! - payload: the event's JSON object, as [`inotifier_core::json`] describes it (the same as a
//!   line of `jsonl`, without the newline);
//! - subject: the `subject` template, rendered for the event;
//! - headers: `Nats-Msg-Id` (the event's message id, see [`crate::identity`]),
//!   `Inotifier-Event-Id` (the event id), `Inotifier-Source` (the `source` option), and
//!   `Nats-Expected-Stream` when `stream` is given.
//!
//! JetStream drops a message whose `Nats-Msg-Id` it already stored within the stream's
//! duplicate window (2 minutes by default), and says so in its acknowledgement: an event
//! delivered again after a crash or a broker restart does not make a second message, as long
//! as it comes back within the window.
//!
//! A stream must take the subjects, for instance (with the `nats` CLI):
//! `nats stream add INOTIFIER --subjects 'inotifier.>' --storage file --defaults`.
//!
//! # Options
//! | option | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `url` | string | `$NATS_URL`, else `nats://127.0.0.1:4222` | `nats://host[:port]`, or `tls://host[:port]` to require TLS; several servers of a cluster separated by commas (`nats://a:4222,b:4222`). A URL with a password is refused here: put it in the environment variable named by `url_env`. |
//! | `url_env` | string | `"NATS_URL"` | The environment variable of the daemon holding the URL (with `user:password@` or `TOKEN@` when the server wants them), read when `url` is not given. |
//! | `token_env` | string | none | The environment variable holding an authentication token; it must be set when the processor is built. |
//! | `nkey_file` | path | none | A file holding an NKey seed (`SU...`), the user's private key: the server knows the user by its public key. |
//! | `creds_file` | path | none | A credentials file (a user JWT and its NKey seed, as `nsc` or `nats context` write it), for servers of the decentralised JWT model (NGS/Synadia Cloud). |
//! | `ca_file` | path | none | A PEM file of the CAs to trust instead of the Mozilla roots, for a server whose certificate an internal CA signed. Any of the three TLS options makes TLS required, even with `nats://`. |
//! | `cert_file`, `key_file` | path | none | A client certificate and its key (PEM), for a server that asks for one (mutual TLS, `verify: true`). |
//! | `subject` | string | `"inotifier.events"` | The subject, a template with the placeholders of `exec`'s arguments: `{maskname}`, `{name}`, `{path}`, `{pathname}`, `{src_pathname}`, `{id}`, `{mask}`, `{origin}`. |
//! | `stream` | string | none | The stream that must store the messages (header `Nats-Expected-Stream`): a message taken by another stream is refused, a permanent failure. |
//! | `source` | string | the host name | This host's name in the messages (`Inotifier-Source`) and their ids. |
//! | `timeout` | duration | `"10s"` | For connecting, and the longest wait for the next acknowledgement. |
//!
//! In a subject, each field's value is made a valid subject token: `.`, whitespace, `*`,
//! `>`, control characters and bytes that are not UTF-8 become `_`, and an empty value
//! becomes `_`; `inotifier.{maskname}` gives `inotifier.IN_CLOSE_WRITE`, and
//! `files.{name}` for `a.txt` gives `files.a_txt`. The template's own text must make a valid
//! subject: no whitespace, no empty token (`a..b`), no wildcard (`*`, `>`). A rendered
//! subject longer than 4000 bytes (a very long `{pathname}`) is a permanent failure of that
//! event, since the server would refuse it by closing the connection.
//!
//! ```toml
//! processor = "jetstream"
//! options = { subject = "inotifier.{maskname}", stream = "INOTIFIER", timeout = "5s" }
//! ```
//!
//! Paths are relative to the configuration file's directory (`PROJECT_PATH` from Django). One
//! way of authenticating at most: a user and password in the URL, `token_env`, `nkey_file` or
//! `creds_file`. TLS is used with a `tls://` URL, and with a `nats://` server that requires it
//! (its `INFO` says `tls_required`); the server's certificate is always verified, and one that
//! does not verify is an outage whose message names the server and the reason.
//!
//! # Delivery and failures
//! Through the `async-nats` client, on this crate's private runtime ([`crate::runtime`]). A
//! batch of events is published at once, every message in flight, then the acknowledgements
//! are awaited; the leading run of acknowledged events counts as delivered.
//! - Failures that last until the broker or its configuration changes are outages, retried
//!   with backoff as long as they last, never dead-lettered: NATS unreachable, refused
//!   credentials, no acknowledgement within `timeout`, no stream taking the subject (the
//!   server answers "no responders"), a stream that is full or whose storage fails.
//! - Other errors of JetStream (another stream took the message, a message over the stream's
//!   maximum size) are permanent failures quoting JetStream's description.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{ConnectErrorKind, ServerAddr};
use inotifier_core::Event;
use inotifier_core::json::event_json;
use inotifier_sinks::template::Template;
use inotifier_sinks::{BatchOutcome, BuildError, ProcessError, Processor, options};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::identity::{MessageIds, host_name};
use crate::link::Link;
use crate::tls::{self, TlsFiles, TlsOptions};
use crate::url::{BrokerUrl, UrlSource};

pub const NAME: &str = "jetstream";

const DEFAULT_SUBJECT: &str = "inotifier.events";

/// The longest subject published: the protocol line that carries it must stay under the
/// server's `max_control_line` (4096 bytes by default).
const MAX_SUBJECT_LEN: usize = 4000;

const URL_SOURCE: UrlSource<'static> = UrlSource {
    processor: NAME,
    url_option: "url",
    env_option: "url_env",
    default_env: "NATS_URL",
    default: Some("nats://127.0.0.1:4222"),
    schemes: &[("nats", 4222), ("tls", 4222)],
};

fn default_subject() -> String {
    DEFAULT_SUBJECT.to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JetStreamOptions {
    url: Option<String>,
    url_env: Option<String>,
    token_env: Option<String>,
    nkey_file: Option<std::path::PathBuf>,
    creds_file: Option<std::path::PathBuf>,
    #[serde(default = "default_subject")]
    subject: String,
    stream: Option<String>,
    source: Option<String>,
    #[serde(default = "default_timeout", deserialize_with = "options::duration")]
    timeout: Duration,
    ca_file: Option<std::path::PathBuf>,
    cert_file: Option<std::path::PathBuf>,
    key_file: Option<std::path::PathBuf>,
}

/// How the processor proves who it is to the server.
#[derive(Clone)]
enum Credentials {
    None,
    UserPassword(String, String),
    Token(String),
    NkeySeed(String),
    /// The text of a credentials file.
    Creds(String),
}

/// Everything a connection needs, read when the processor was built.
struct Connector {
    /// The servers, for messages: their URLs without passwords.
    what: String,
    servers: Vec<ServerAddr>,
    require_tls: bool,
    credentials: Credentials,
    tls: TlsFiles,
    timeout: Duration,
}

/// A connection and its JetStream context.
struct Session {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
}

/// Publishes events to JetStream; see the [module docs](self).
pub struct JetStreamProcessor {
    link: Link<Session>,
    subject: Template,
    stream: Option<String>,
    source: String,
    ids: crate::identity::MessageIds,
    timeout: Duration,
    /// What `link` connects to, for `inotifier doctor`.
    pub(crate) endpoints: Vec<crate::reach::Endpoint>,
}

impl JetStreamProcessor {
    /// Message ids for the events of the journal whose instance is `journal`.
    pub fn with_journal(mut self, journal: Option<u64>) -> JetStreamProcessor {
        self.ids = crate::identity::MessageIds::new(&self.source, journal);
        self
    }
}

impl std::fmt::Debug for JetStreamProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamProcessor")
            .field("url", &self.link.what())
            .field("stream", &self.stream)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl JetStreamProcessor {
    /// Reads the options, the URL, the credentials and the certificates; opens no connection
    /// (the first batch does).
    pub fn build(
        options: &Map<String, Value>,
        base_dir: &Path,
    ) -> Result<JetStreamProcessor, BuildError> {
        let parsed: JetStreamOptions = options::parse(NAME, options)?;
        let url = URL_SOURCE.resolve(parsed.url.as_deref(), parsed.url_env.as_deref())?;
        if parsed.url.is_some() && url.user.is_some() && url.password.is_none() {
            return Err(BuildError::invalid(
                NAME,
                "url",
                "a user without a password in a NATS URL is an authentication token, a \
                 secret not written in the configuration: put it in an environment variable \
                 of the daemon and give its name as token_env",
            ));
        }
        let credentials = credentials(&parsed, &url, base_dir)?;
        let tls = TlsOptions {
            ca_file: parsed.ca_file.clone(),
            cert_file: parsed.cert_file.clone(),
            key_file: parsed.key_file.clone(),
        }
        .load(NAME, base_dir)?;
        let subject = subject_template(&parsed.subject)?;
        if let Some(stream) = &parsed.stream {
            check_stream_name(stream)?;
        }
        let source = parsed.source.unwrap_or_else(host_name);
        if source.is_empty() || source.chars().any(char::is_control) {
            return Err(BuildError::invalid(
                NAME,
                "source",
                "must be a non-empty name without control characters",
            ));
        }
        let timeout = parsed.timeout;
        let url_option = if parsed.url.is_some() {
            "url"
        } else {
            "url_env"
        };
        // A TLS option asks for TLS: never left to the server's plain-text INFO.
        let require_tls =
            url.scheme == "tls" || parsed.ca_file.is_some() || parsed.cert_file.is_some();
        let endpoints = crate::reach::Endpoint::of_url(
            &url,
            crate::reach::Handshake::NatsInfo { require_tls },
            &tls,
        );
        let connector = Connector {
            what: url.to_string(),
            servers: servers(&url).map_err(|error| BuildError::invalid(NAME, url_option, error))?,
            require_tls,
            credentials,
            tls,
            timeout,
        };
        let link = Link::new(url.to_string(), move || connector.connect());
        Ok(JetStreamProcessor {
            endpoints,
            link,
            subject,
            stream: parsed.stream,
            ids: MessageIds::new(&source, None),
            source,
            timeout,
        })
    }

    /// The subject `event` is published to.
    pub fn subject(&self, event: &Event) -> String {
        let bytes = self.subject.render_escaped(event, escape_subject_token);
        // Literal text is UTF-8 and escaped values are ASCII or whole UTF-8 characters.
        String::from_utf8(bytes)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    }

    /// The message of `event`, or why it cannot be published at all.
    fn message(&self, event: &Event) -> Result<(String, PublishMessage), ProcessError> {
        let subject = self.subject(event);
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(ProcessError::permanent(format!(
                "the subject of event {} ({}) is {} bytes long, over the {MAX_SUBJECT_LEN} \
                 NATS accepts: use a subject template without {{pathname}}",
                event.id,
                event.pathname().display(),
                subject.len()
            )));
        }
        let mut payload = Vec::with_capacity(512);
        event_json(&mut payload, event);
        let mut message = PublishMessage::build()
            .payload(payload.into())
            .message_id(self.ids.of(event.id))
            .header("Inotifier-Event-Id", event.id.to_string().as_str())
            .header("Inotifier-Source", self.source.as_str());
        if let Some(stream) = &self.stream {
            message = message.expected_stream(stream);
        }
        Ok((subject, message))
    }

    /// Publishes `events`, then waits for their acknowledgements; see the module docs.
    fn publish(&self, events: &[&Event]) -> BatchOutcome {
        let mut messages = Vec::with_capacity(events.len());
        let mut unpublishable = None;
        for event in events {
            match self.message(event) {
                Ok(message) => messages.push(message),
                Err(failure) => {
                    // Published up to here; this event fails on its own.
                    unpublishable = Some(failure);
                    break;
                }
            }
        }
        let mut results = Vec::new();
        let sent = if messages.is_empty() {
            Ok(())
        } else {
            self.link.with(|session| {
                if session.client.connection_state() != async_nats::connection::State::Connected {
                    return Err(ProcessError::outage(format!(
                        "NATS at {}: the connection is lost (the client is connecting again)",
                        self.link.what()
                    )));
                }
                results = crate::runtime::block_on(exchange(&session.jetstream, messages));
                Ok(())
            })
        };
        // The leading run of acknowledged messages is delivered; the first other one fails.
        let mut processed = 0;
        let mut duplicates = 0;
        for result in &results {
            match result {
                Ok(duplicate) => {
                    processed += 1;
                    duplicates += usize::from(*duplicate);
                }
                Err(error) => {
                    let failure = self.failed(events[processed], error);
                    if failure.outage {
                        self.link.broken(&failure);
                    }
                    return BatchOutcome::failed(processed, failure);
                }
            }
        }
        if duplicates > 0 {
            // Events delivered again (after a restart or a lost acknowledgement) that the
            // stream had already stored: dropped by JetStream, as meant.
            tracing::debug!(
                broker = %self.link.what(),
                duplicates,
                "JetStream already had these messages"
            );
        }
        if let Err(failure) = sent {
            return BatchOutcome::failed(processed, failure);
        }
        match unpublishable {
            Some(failure) => BatchOutcome::failed(processed, failure),
            None => BatchOutcome::all(processed),
        }
    }

    /// The failure of `event`, whose publication failed with `error`.
    fn failed(&self, event: &Event, error: &PublishError) -> ProcessError {
        let where_ = format!("event {} ({})", event.id, event.pathname().display());
        let server = self.link.what();
        match error.kind() {
            PublishErrorKind::StreamNotFound => {
                let subject = self.subject(event);
                ProcessError::outage(format!("{}; for {where_}", no_stream(&subject)))
            }
            PublishErrorKind::TimedOut => ProcessError::outage(format!(
                "NATS at {server}: no JetStream acknowledgement within {:?} for {where_}: \
                 JetStream may be overloaded or unavailable, or the subject taken by a plain \
                 subscriber rather than a stream",
                self.timeout
            )),
            PublishErrorKind::BrokenPipe => ProcessError::outage(format!(
                "NATS at {server}: the connection broke before the acknowledgement of {where_}"
            )),
            PublishErrorKind::MaxPayloadExceeded => {
                ProcessError::permanent(format!("NATS at {server} refused {where_}: {error}"))
            }
            _ => {
                let api = std::error::Error::source(error)
                    .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>());
                let Some(api) = api else {
                    return ProcessError::outage(format!(
                        "NATS at {server}: {error}; for {where_}"
                    ));
                };
                let message = format!("JetStream refused {where_}: {api}");
                let description = api.to_string().to_ascii_lowercase();
                let lasting = STORAGE_ERROR_CODES.contains(&api.error_code().0)
                    || api.code() == 503
                    || ["maximum messages", "maximum bytes", "storage", "resources"]
                        .iter()
                        .any(|what| description.contains(what));
                if lasting {
                    ProcessError::outage(message)
                } else {
                    ProcessError::permanent(message)
                }
            }
        }
    }
}

/// Publishes every message (each is in flight once handed to the client), then awaits their
/// acknowledgements in order: whether each was a duplicate, or why it failed. The first
/// failure ends the list.
async fn exchange(
    jetstream: &async_nats::jetstream::Context,
    messages: Vec<(String, PublishMessage)>,
) -> Vec<Result<bool, PublishError>> {
    let mut pending = std::collections::VecDeque::with_capacity(IN_FLIGHT);
    let mut results = Vec::with_capacity(messages.len());
    for (subject, message) in messages {
        if pending.len() == IN_FLIGHT {
            // Each acknowledgement awaited holds a permit of the context: make room.
            let ack: PublishAckFuture = pending.pop_front().expect("IN_FLIGHT pending");
            match ack.await {
                Ok(ack) => results.push(Ok(ack.duplicate)),
                Err(error) => {
                    results.push(Err(error));
                    return results;
                }
            }
        }
        match jetstream.send_publish(subject, message).await {
            Ok(ack) => pending.push_back(ack),
            Err(error) => {
                pending.clear();
                results.push(Err(error));
                return results;
            }
        }
    }
    for ack in pending {
        match ack.await {
            Ok(ack) => results.push(Ok(ack.duplicate)),
            Err(error) => {
                results.push(Err(error));
                return results;
            }
        }
    }
    results
}

/// Messages awaiting their acknowledgement at once, at most.
const IN_FLIGHT: usize = 1024;

/// JetStream error codes that last until the stream's consumers or its storage change:
/// storing failed (`maximum messages exceeded`, a full disk), insufficient resources.
const STORAGE_ERROR_CODES: &[u64] = &[10077, 10023];

/// Why no stream took a message to `subject`, and how to make one.
fn no_stream(subject: &str) -> String {
    // A stream for every subject of the same first token: what a template such as
    // `inotifier.{maskname}` publishes to.
    let subjects = match subject.split_once('.') {
        Some((first, _)) => format!("{first}.>"),
        None => subject.to_string(),
    };
    format!(
        "no JetStream stream takes subject {subject} (NATS answered: no responders): \
         create one, for instance with the nats CLI `nats stream add INOTIFIER \
         --subjects '{subjects}' --storage file --defaults`, or with nats-py `js = (await \
         nats.connect(URL)).jetstream(); await js.add_stream(name=\"INOTIFIER\", \
         subjects=[\"{subjects}\"])`; delivery resumes by itself once it exists"
    )
}

/// The servers of `url`: its host and the hosts after it, each with the URL's scheme.
fn servers(url: &BrokerUrl) -> Result<Vec<ServerAddr>, String> {
    std::iter::once((&url.host, url.port))
        .chain(url.more_hosts.iter().map(|(host, port)| (host, *port)))
        .map(|(host, port)| {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            format!("{}://{host}:{port}", url.scheme)
                .parse::<ServerAddr>()
                .map_err(|error| format!("{host}:{port}: {error}"))
        })
        .collect()
}

/// The one way of authenticating that the options and the URL give.
fn credentials(
    parsed: &JetStreamOptions,
    url: &BrokerUrl,
    base_dir: &Path,
) -> Result<Credentials, BuildError> {
    let mut given = Vec::new();
    if url.password.is_some() {
        given.push("a password in the URL");
    } else if url.user.is_some() {
        given.push("a token in the URL");
    }
    if parsed.token_env.is_some() {
        given.push("token_env");
    }
    if parsed.nkey_file.is_some() {
        given.push("nkey_file");
    }
    if parsed.creds_file.is_some() {
        given.push("creds_file");
    }
    if given.len() > 1 {
        return Err(BuildError::invalid(
            NAME,
            if parsed.creds_file.is_some() {
                "creds_file"
            } else {
                "nkey_file"
            },
            format!(
                "{} are given: authenticate in one way only",
                given.join(" and ")
            ),
        ));
    }
    let read_secret = |option: &'static str, path: &Path| {
        let path = options::resolve(base_dir, path);
        std::fs::read_to_string(&path)
            .map_err(|error| BuildError::unreadable(NAME, option, &path, &error))
    };
    if let Some(password) = &url.password {
        return Ok(Credentials::UserPassword(
            url.user.clone().unwrap_or_default(),
            password.clone(),
        ));
    }
    if let Some(token) = &url.user {
        // `nats://TOKEN@host`, from the environment (a configured url with one is refused).
        return Ok(Credentials::Token(token.clone()));
    }
    if let Some(variable) = &parsed.token_env {
        return Ok(Credentials::Token(token(variable)?));
    }
    if let Some(path) = &parsed.nkey_file {
        let seed = read_secret("nkey_file", path)?;
        let seed = seed
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("SU"))
            .ok_or_else(|| {
                BuildError::invalid(
                    NAME,
                    "nkey_file",
                    format!(
                        "{} holds no user NKey seed (a line starting with SU, as `nk -gen \
                         user` writes it)",
                        options::resolve(base_dir, path).display()
                    ),
                )
            })?;
        if let Err(error) = nkeys::KeyPair::from_seed(seed) {
            return Err(BuildError::invalid(
                NAME,
                "nkey_file",
                format!(
                    "{} holds no valid NKey seed: {error}",
                    options::resolve(base_dir, path).display()
                ),
            ));
        }
        return Ok(Credentials::NkeySeed(seed.to_string()));
    }
    if let Some(path) = &parsed.creds_file {
        let text = read_secret("creds_file", path)?;
        if let Err(error) = async_nats::ConnectOptions::new().credentials(&text) {
            return Err(BuildError::invalid(
                NAME,
                "creds_file",
                format!(
                    "{} is not a NATS credentials file (a user JWT and its NKey seed): {error}",
                    options::resolve(base_dir, path).display()
                ),
            ));
        }
        return Ok(Credentials::Creds(text));
    }
    Ok(Credentials::None)
}

impl Connector {
    fn options(&self) -> Result<async_nats::ConnectOptions, ProcessError> {
        let config = self.tls.client_config().map_err(|error| {
            ProcessError::outage(format!("NATS at {}: TLS: {error}", self.what))
        })?;
        let options = async_nats::ConnectOptions::new()
            .name("inotifier")
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .require_tls(self.require_tls)
            .tls_client_config((*config).clone());
        Ok(match &self.credentials {
            Credentials::None => options,
            Credentials::UserPassword(user, password) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(token) => options.token(token.clone()),
            Credentials::NkeySeed(seed) => options.nkey(seed.clone()),
            Credentials::Creds(text) => options.credentials(text).map_err(|error| {
                ProcessError::outage(format!("NATS at {}: credentials: {error}", self.what))
            })?,
        })
    }

    /// Connects; every failure is an outage, refused credentials and certificates included:
    /// nothing is dead-lettered while an operator fixes the broker or the configuration.
    fn connect(&self) -> Result<Session, ProcessError> {
        let options = self.options()?;
        let servers = self.servers.clone();
        let timeout = self.timeout;
        let connected = crate::runtime::block_on(async move {
            let client = options.connect(servers).await?;
            // Built on the runtime: the context runs a task of its own for acknowledgements.
            let jetstream = async_nats::jetstream::ContextBuilder::new()
                .timeout(timeout)
                .max_ack_inflight(IN_FLIGHT)
                .build(client.clone());
            Ok::<_, async_nats::ConnectError>(Session { client, jetstream })
        });
        connected.map_err(|error| {
            let what = &self.what;
            let text = crate::link::error_chain(&error);
            ProcessError::outage(match error.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    format!(
                        "NATS at {what} refused the credentials ({text}): give the user and \
                         password in the URL of the environment variable named by url_env \
                         (NATS_URL by default), as nats://user:password@host:4222, or a token \
                         (token_env), an NKey seed (nkey_file) or a credentials file \
                         (creds_file), then restart the daemon"
                    )
                }
                ConnectErrorKind::Tls => match tls::advice(&text) {
                    Some(advice) => format!("NATS at {what}: TLS: {text}: {advice}"),
                    None => format!("NATS at {what}: TLS: {text}"),
                },
                ConnectErrorKind::TimedOut => {
                    format!("NATS at {what}: no connection within {:?}", self.timeout)
                }
                _ => match tls::advice(&text) {
                    Some(advice) => format!("NATS at {what}: TLS: {text}: {advice}"),
                    None => format!("NATS at {what}: cannot connect: {text}"),
                },
            })
        })
    }
}

impl Processor for JetStreamProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        match self.publish(&[event]).failure {
            None => Ok(()),
            Some(failure) => Err(failure),
        }
    }

    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn(usize) -> bool) -> BatchOutcome {
        if events.is_empty() {
            return BatchOutcome::all(0);
        }
        if !go_on(0) {
            return BatchOutcome::stopped(0);
        }
        self.publish(events)
    }

    fn close(&self) {
        self.link.close();
    }
}

/// Writes `value` as a subject token: see the module docs.
fn escape_subject_token(value: &[u8], out: &mut Vec<u8>) {
    if value.is_empty() {
        out.push(b'_');
        return;
    }
    for chunk in value.utf8_chunks() {
        for character in chunk.valid().chars() {
            if matches!(character, '.' | '*' | '>')
                || character.is_whitespace()
                || character.is_control()
            {
                out.push(b'_');
            } else {
                let mut buffer = [0; 4];
                out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
            }
        }
        out.extend(std::iter::repeat_n(b'_', chunk.invalid().len()));
    }
}

/// Parses the `subject` option and checks that its text makes a valid subject.
fn subject_template(text: &str) -> Result<Template, BuildError> {
    let invalid = |why: String| BuildError::invalid(NAME, "subject", why);
    let template = Template::parse(text).map_err(invalid)?;
    // Every placeholder renders as a valid, non-empty token: checking the template with
    // each placeholder as `x` checks its literal text.
    let sample = template.render_escaped(&sample_event(), |_, out| out.push(b'x'));
    let sample = String::from_utf8_lossy(&sample);
    if let Err(why) = check_subject(&sample) {
        return Err(invalid(format!(
            "{text:?} does not make a valid NATS subject: {why}"
        )));
    }
    Ok(template)
}

/// Whether `subject` can be published to.
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("it is empty".into());
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds whitespace or control characters".into());
    }
    for token in subject.split('.') {
        if token.is_empty() {
            return Err("it has an empty token (a leading, trailing or doubled `.`)".into());
        }
        if token.contains(['*', '>']) {
            return Err("wildcards (`*`, `>`) are for subscribing, not publishing".into());
        }
    }
    Ok(())
}

/// JetStream's rules for stream names: no whitespace, `.`, `*`, `>`, path separators.
fn check_stream_name(stream: &str) -> Result<(), BuildError> {
    let bad = stream.is_empty()
        || stream.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        });
    if bad {
        return Err(BuildError::invalid(
            NAME,
            "stream",
            format!(
                "{stream:?} is not a stream name: it must be non-empty, without whitespace, \
                 `.`, `*`, `>`, `/` or `\\`"
            ),
        ));
    }
    Ok(())
}

fn token(variable: &str) -> Result<String, BuildError> {
    let invalid = |why: String| BuildError::invalid(NAME, "token_env", why);
    match inotifier_sinks::environment::var(variable) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        Ok(_) => Err(invalid(format!(
            "the environment variable {variable} is empty"
        ))),
        Err(std::env::VarError::NotPresent) => Err(BuildError::unavailable(
            NAME,
            "token_env",
            format!(
                "the environment variable {variable} is not set: set it in the daemon's \
             environment (its systemd unit's Environment= or EnvironmentFile=)"
            ),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(invalid(format!(
            "the environment variable {variable} is not UTF-8"
        ))),
    }
}

/// An event for checking templates: its values do not matter.
fn sample_event() -> Event {
    use inotifier_core::{Mask, Origin};
    use std::path::Path;
    use std::sync::Arc;
    Event {
        id: 1,
        mask: Mask::IN_CLOSE_WRITE,
        cookie: 0,
        wd: 1,
        path: Arc::from(Path::new("/")),
        name: "x".into(),
        src_pathname: None,
        origin: Origin::Kernel,
        time_ns: 0,
        watches: Arc::from([]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inotifier_core::{Mask, Origin, WatchId};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::Arc;

    fn event(name: &[u8]) -> Event {
        Event {
            id: 42,
            mask: Mask::IN_CLOSE_WRITE,
            cookie: 0,
            wd: 1,
            path: Arc::from(Path::new("/srv/in box")),
            name: OsStr::from_bytes(name).to_os_string(),
            src_pathname: None,
            origin: Origin::Kernel,
            time_ns: 0,
            watches: Arc::from([WatchId(0)]),
        }
    }

    fn build(options: Value) -> Result<JetStreamProcessor, BuildError> {
        JetStreamProcessor::build(options.as_object().unwrap(), Path::new("/nonexistent"))
    }

    fn subject(template: &str, name: &[u8]) -> String {
        build(serde_json::json!({"subject": template, "url": "nats://127.0.0.1:1"}))
            .unwrap()
            .subject(&event(name))
    }

    #[test]
    fn subjects_make_field_values_valid_tokens() {
        assert_eq!(subject("inotifier.events", b"a"), "inotifier.events");
        assert_eq!(
            subject("inotifier.{maskname}", b"a"),
            "inotifier.IN_CLOSE_WRITE"
        );
        assert_eq!(
            subject("files.{name}", b"a.b c*d>e\tf"),
            "files.a_b_c_d_e_f"
        );
        assert_eq!(
            subject("files.{name}", b"caf\xe9\x01\x7f!"),
            "files.caf___!"
        );
        assert_eq!(subject("files.{name}", "café€".as_bytes()), "files.café€");
        assert_eq!(subject("files.{name}", b""), "files._");
        assert_eq!(subject("files.{src_pathname}.{id}", b"x"), "files._.42");
        assert_eq!(subject("p.{pathname}", b"x"), "p./srv/in_box/x");
        assert_eq!(subject("{origin}-{mask}", b"x"), "kernel-8");
    }

    #[test]
    fn subject_templates_must_make_valid_subjects() {
        for (template, why) in [
            ("", "it is empty"),
            ("a..b", "empty token"),
            (".a", "empty token"),
            ("a.{name}.", "empty token"),
            ("a b", "whitespace"),
            ("a.*", "wildcards"),
            ("a.>", "wildcards"),
            ("a.{nam}", "unknown placeholder `{nam}`"),
            ("a.{name", "unclosed"),
        ] {
            let error = build(serde_json::json!({ "subject": template }))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("option `subject` of processor jetstream"),
                "{error}"
            );
            assert!(error.contains(why), "{template}: {error}");
        }
        assert!(build(serde_json::json!({"subject": "a.{name}x.b{{c}}"})).is_ok());
    }

    #[test]
    fn option_errors_name_the_option_and_what_is_valid() {
        let error = build(serde_json::json!({"subjet": "x"}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "unknown option `subjet` for processor jetstream: expected one of url, url_env, \
             token_env, nkey_file, creds_file, subject, stream, source, timeout, ca_file, \
             cert_file, key_file"
        );
        let error = build(serde_json::json!({"url": "nats://u:secret@h:4222"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("environment variable NATS_URL"), "{error}");
        assert!(!error.contains("secret@"), "{error}");
        let error = build(serde_json::json!({"url": "nats://tok@h:4222"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("token_env"), "{error}");
        let error = build(serde_json::json!({"url": "nats://h", "nkey_file": "user.nk"}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cannot read /nonexistent/user.nk"),
            "{error}"
        );
        let error = build(serde_json::json!({"url": "nats://h", "ca_file": "ca.pem"}))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("option `ca_file`"), "{error}");
        let tls = build(serde_json::json!({"url": "tls://a:4333,b"})).unwrap();
        assert_eq!(tls.link.what(), "tls://a:4333,b:4222");
        let error = build(serde_json::json!({"token_env": "INOTIFIER_TEST_UNSET_TOKEN"}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("INOTIFIER_TEST_UNSET_TOKEN is not set"),
            "{error}"
        );
        let error = build(serde_json::json!({"stream": "a.b"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a stream name"), "{error}");
        let error = build(serde_json::json!({"timeout": 0}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("option `timeout`"), "{error}");
        let error = build(serde_json::json!({"source": ""}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("option `source`"), "{error}");
        let processor = build(serde_json::json!({
            "url": "nats://h", "stream": "S", "source": "web-1", "timeout": "2s"
        }))
        .unwrap();
        assert_eq!(processor.link.what(), "nats://h:4222");
        assert_eq!(processor.timeout, Duration::from_secs(2));
    }

    #[test]
    fn no_stream_says_how_to_make_one() {
        let message = no_stream("x.y");
        assert!(
            message.contains("no JetStream stream takes subject x.y"),
            "{message}"
        );
        assert!(
            message.contains("nats stream add INOTIFIER --subjects 'x.>'"),
            "{message}"
        );
        assert!(message.contains(r#"subjects=["x.>"]"#), "{message}");
    }

    #[test]
    fn one_way_of_authenticating_at_most() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("user.nk"), "not a seed\n").unwrap();
        let options = serde_json::json!({"nkey_file": "user.nk"});
        let error = JetStreamProcessor::build(options.as_object().unwrap(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds no user NKey seed"), "{error}");
        std::fs::write(dir.path().join("user.creds"), "garbage\n").unwrap();
        let options = serde_json::json!({"creds_file": "user.creds"});
        let error = JetStreamProcessor::build(options.as_object().unwrap(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a NATS credentials file"), "{error}");
        let options = serde_json::json!({"creds_file": "user.creds", "nkey_file": "user.nk"});
        let error = JetStreamProcessor::build(options.as_object().unwrap(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("authenticate in one way only"), "{error}");
    }
}
