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
//! | `url` | string | `$NATS_URL`, else `nats://127.0.0.1:4222` | `nats://host[:port]`. A URL with a password is refused here: put it in the environment variable named by `url_env`. |
//! | `url_env` | string | `"NATS_URL"` | The environment variable of the daemon holding the URL (with `user:password@` when the server wants them), read when `url` is not given. |
//! | `token_env` | string | none | The environment variable holding an authentication token (sent as `auth_token`); it must be set when the processor is built. |
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
//! # Delivery and failures
//! A batch of events is published in one write, each message with its own reply subject
//! (`_INBOX.<random>.<n>`), then the acknowledgements are awaited; the leading run of
//! acknowledged events counts as delivered.
//! - Failures that last until the broker or its configuration changes are outages, retried
//!   with backoff as long as they last, never dead-lettered: NATS unreachable, refused
//!   credentials, no acknowledgement within `timeout`, no stream taking the subject (the
//!   server answers "no responders"), a stream that is full or whose storage fails.
//! - Other errors of JetStream (another stream took the message, a message over the stream's
//!   maximum size) are permanent failures quoting JetStream's description.

use std::time::{Duration, Instant};

use inotifier_core::Event;
use inotifier_core::json::event_json;
use inotifier_sinks::template::Template;
use inotifier_sinks::{BatchOutcome, BuildError, ProcessError, Processor, options};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::identity::{MessageIds, host_name};
use crate::link::Link;
use crate::nats::{self, ConnectOptions, Message, NatsConnection, NatsError};
use crate::url::{BrokerUrl, UrlSource};

pub const NAME: &str = "jetstream";

const DEFAULT_SUBJECT: &str = "inotifier.events";

/// The longest subject published: the `HPUB` line (subject, reply subject, two sizes) must
/// stay under the server's `max_control_line`.
const MAX_SUBJECT_LEN: usize = 4000;

const URL_SOURCE: UrlSource<'static> = UrlSource {
    processor: NAME,
    url_option: "url",
    env_option: "url_env",
    default_env: "NATS_URL",
    default: Some("nats://127.0.0.1:4222"),
    schemes: &[("nats", 4222)],
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
    #[serde(default = "default_subject")]
    subject: String,
    stream: Option<String>,
    source: Option<String>,
    #[serde(default = "default_timeout", deserialize_with = "options::duration")]
    timeout: Duration,
}

/// Publishes events to JetStream; see the [module docs](self).
pub struct JetStreamProcessor {
    link: Link<NatsConnection>,
    subject: Template,
    stream: Option<String>,
    source: String,
    ids: crate::identity::MessageIds,
    timeout: Duration,
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
    /// Reads the options, the URL and the token; opens no connection (the first batch does).
    pub fn build(options: &Map<String, Value>) -> Result<JetStreamProcessor, BuildError> {
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
        let token = match &parsed.token_env {
            Some(variable) => Some(token(variable)?),
            None => None,
        };
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
        let link = Link::new(url.to_string(), move || {
            connect(&url, token.as_deref(), timeout)
        });
        Ok(JetStreamProcessor {
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

    /// Publishes `events`, then waits for their acknowledgements; see the module docs.
    fn publish(&self, events: &[&Event]) -> BatchOutcome {
        let mut messages = Vec::with_capacity(events.len());
        for event in events {
            let subject = self.subject(event);
            if subject.len() > MAX_SUBJECT_LEN {
                // Published up to here; this event fails on its own.
                let failure = ProcessError::permanent(format!(
                    "the subject of event {} ({}) is {} bytes long, over the {MAX_SUBJECT_LEN} \
                     NATS accepts: use a subject template without {{pathname}}",
                    event.id,
                    event.pathname().display(),
                    subject.len()
                ));
                return self.publish_then(&messages, events, Some(failure));
            }
            let mut payload = Vec::with_capacity(512);
            event_json(&mut payload, event);
            messages.push(Outgoing {
                subject,
                message_id: self.ids.of(event.id),
                event_id: event.id.to_string(),
                payload,
            });
        }
        self.publish_then(&messages, events, None)
    }

    /// Publishes `messages` (the first of `events`); `then` is the failure of the event
    /// after them, if one failed before publishing.
    fn publish_then(
        &self,
        messages: &[Outgoing],
        events: &[&Event],
        then: Option<ProcessError>,
    ) -> BatchOutcome {
        let mut acks = vec![None; messages.len()];
        let sent = if messages.is_empty() {
            Ok(())
        } else {
            // A connection the server closed while it was idle is replaced at once, before
            // anything is published on it: that is no outage.
            let mut closed_while_idle = false;
            let first_try = self.link.with(|connection| {
                if let Err(error) = connection.check_alive() {
                    closed_while_idle = true;
                    return Err(self.outage(error));
                }
                self.exchange(connection, messages, &mut acks)
            });
            if closed_while_idle {
                self.link
                    .with(|connection| self.exchange(connection, messages, &mut acks))
            } else {
                first_try
            }
        };
        // The leading run of acknowledged messages is delivered; the first other one fails.
        let mut processed = 0;
        let mut duplicates = 0;
        for ack in &acks {
            match ack {
                Some(Ack::Stored { duplicate, .. }) => {
                    processed += 1;
                    duplicates += usize::from(*duplicate);
                }
                Some(Ack::Refused(failure)) => {
                    return BatchOutcome::failed(
                        processed,
                        self.failed(events[processed], failure),
                    );
                }
                None => break,
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
        if processed < messages.len() {
            let failure = sent.err().unwrap_or_else(|| {
                ProcessError::outage(format!(
                    "NATS at {}: no acknowledgement for event {}",
                    self.link.what(),
                    events[processed].id
                ))
            });
            return BatchOutcome::failed(processed, failure);
        }
        match then {
            Some(failure) => BatchOutcome::failed(processed, failure),
            None => BatchOutcome::all(processed),
        }
    }

    /// Writes every message in one write and reads the replies into `acks` (by reply
    /// number), until each has one. An error of the connection is returned (and closes it);
    /// the acks read until then stay.
    fn exchange(
        &self,
        connection: &mut NatsConnection,
        messages: &[Outgoing],
        acks: &mut [Option<Ack>],
    ) -> Result<(), ProcessError> {
        let first = connection.new_reply_subject();
        let first_number = connection
            .reply_number(&first)
            .expect("a reply subject of the connection");
        let mut bytes = Vec::with_capacity(messages.len() * 700);
        for (index, message) in messages.iter().enumerate() {
            let reply = if index == 0 {
                first.clone()
            } else {
                connection.new_reply_subject()
            };
            let mut headers = vec![
                ("Nats-Msg-Id", message.message_id.as_str()),
                ("Inotifier-Event-Id", message.event_id.as_str()),
                ("Inotifier-Source", self.source.as_str()),
            ];
            if let Some(stream) = &self.stream {
                headers.push(("Nats-Expected-Stream", stream.as_str()));
            }
            let size = nats::headers_len(&headers) + message.payload.len();
            if let Err(error) = connection.check_size(size) {
                // Nothing of the batch was sent yet: those before this one are sent below,
                // this one fails alone.
                acks[index] = Some(Ack::Refused(Refusal::Permanent(error.to_string())));
                break;
            }
            nats::encode_hpub(
                &mut bytes,
                &message.subject,
                Some(&reply),
                &headers,
                &message.payload,
            );
        }
        let expected = acks.iter().position(Option::is_some).unwrap_or(acks.len());
        connection
            .send(&bytes)
            .map_err(|error| self.outage(error))?;
        let mut waiting = expected;
        while waiting > 0 {
            // The timeout is the longest silence: a large batch may take longer in all.
            let deadline = Instant::now() + self.timeout;
            let reply = connection.next_message(deadline).map_err(|error| {
                let missing = acks[..expected]
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or(0);
                self.no_ack(error, &messages[missing].subject)
            })?;
            let Some(index) = connection
                .reply_number(&reply.subject)
                .and_then(|number| number.checked_sub(first_number))
                .and_then(|index| usize::try_from(index).ok())
                .filter(|&index| index < expected)
            else {
                // A late reply to an earlier batch.
                continue;
            };
            if acks[index].is_none() {
                waiting -= 1;
            }
            acks[index] = Some(parse_ack(&reply, &messages[index].subject));
        }
        Ok(())
    }

    fn outage(&self, error: NatsError) -> ProcessError {
        ProcessError::outage(error.to_string())
    }

    /// The failure when the replies stopped coming: a timeout says what may be wrong.
    fn no_ack(&self, error: NatsError, subject: &str) -> ProcessError {
        match error {
            NatsError::Timeout { .. } => ProcessError::outage(format!(
                "NATS at {}: no JetStream acknowledgement within {:?} for a message to {subject}: \
                 JetStream may be overloaded or unavailable, or the subject taken by a plain \
                 subscriber rather than a stream",
                self.link.what(),
                self.timeout
            )),
            other => self.outage(other),
        }
    }

    fn failed(&self, event: &Event, refusal: &Refusal) -> ProcessError {
        let where_ = format!("event {} ({})", event.id, event.pathname().display());
        match refusal {
            Refusal::Outage(message) => ProcessError::outage(format!("{message}; for {where_}")),
            Refusal::Permanent(message) => {
                ProcessError::permanent(format!("{message}; for {where_}"))
            }
        }
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

/// A message ready to publish.
struct Outgoing {
    subject: String,
    message_id: String,
    event_id: String,
    payload: Vec<u8>,
}

/// JetStream's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ack {
    Stored {
        stream: String,
        sequence: u64,
        duplicate: bool,
    },
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Outage(String),
    Permanent(String),
}

/// `{"stream":"S","seq":N,"duplicate":true}` or `{"error":{"code":..,"err_code":..,
/// "description":".."}}`.
#[derive(Debug, Deserialize)]
struct PubAck {
    stream: Option<String>,
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u32,
    #[serde(default)]
    description: String,
}

/// JetStream error codes that last until the stream's consumers or its storage change:
/// storing failed (`maximum messages exceeded`, a full disk), insufficient resources.
const STORAGE_ERROR_CODES: &[u32] = &[10077, 10023];

/// Reads the reply to a message published to `subject`.
fn parse_ack(reply: &Message, subject: &str) -> Ack {
    if reply.status == Some(503) {
        // A stream for every subject of the same first token: what a template such as
        // `inotifier.{maskname}` publishes to.
        let subjects = match subject.split_once('.') {
            Some((first, _)) => format!("{first}.>"),
            None => subject.to_string(),
        };
        return Ack::Refused(Refusal::Outage(format!(
            "no JetStream stream takes subject {subject} (NATS answered: no responders): \
             create one, for instance with the nats CLI `nats stream add INOTIFIER \
             --subjects '{subjects}' --storage file --defaults`, or with nats-py `js = (await \
             nats.connect(URL)).jetstream(); await js.add_stream(name=\"INOTIFIER\", \
             subjects=[\"{subjects}\"])`; delivery resumes by itself once it exists"
        )));
    }
    if let Some(status) = reply.status {
        return Ack::Refused(Refusal::Outage(format!(
            "NATS answered status {status} {} for a message to {subject}",
            reply.description
        )));
    }
    let parsed: PubAck = match serde_json::from_slice(&reply.payload) {
        Ok(parsed) => parsed,
        Err(_) => {
            return Ack::Refused(Refusal::Permanent(format!(
                "the reply to a message to {subject} is not a JetStream acknowledgement (a \
                 plain subscriber of the subject answered?): {:?}",
                String::from_utf8_lossy(&reply.payload[..reply.payload.len().min(200)])
            )));
        }
    };
    if let Some(error) = parsed.error {
        let message = format!(
            "JetStream refused a message to {subject}: {} (code {}, err_code {})",
            error.description, error.code, error.err_code
        );
        let lasting = STORAGE_ERROR_CODES.contains(&error.err_code)
            || error.code == 503
            || ["maximum messages", "maximum bytes", "storage", "resources"]
                .iter()
                .any(|what| error.description.to_ascii_lowercase().contains(what));
        return Ack::Refused(if lasting {
            Refusal::Outage(message)
        } else {
            Refusal::Permanent(message)
        });
    }
    match (parsed.stream, parsed.seq) {
        (Some(stream), Some(sequence)) => Ack::Stored {
            stream,
            sequence,
            duplicate: parsed.duplicate,
        },
        _ => Ack::Refused(Refusal::Permanent(format!(
            "the reply to a message to {subject} names no stream and sequence: {:?}",
            String::from_utf8_lossy(&reply.payload[..reply.payload.len().min(200)])
        ))),
    }
}

fn connect(
    url: &BrokerUrl,
    token: Option<&str>,
    timeout: Duration,
) -> Result<NatsConnection, ProcessError> {
    let options = ConnectOptions {
        url,
        token,
        timeout,
        name: "inotifier",
    };
    // Every failure to connect is an outage, refused credentials included: nothing is
    // dead-lettered while an operator fixes the broker or the credentials.
    NatsConnection::connect(&options).map_err(|error| match error {
        NatsError::AuthorizationViolation { .. } => ProcessError::outage(format!(
            "{error}: give the user and password in the URL of the environment variable \
             named by url_env (NATS_URL by default), as nats://user:password@host:4222, or a \
             token in the variable named by token_env, then the daemon connects again by itself"
        )),
        other => ProcessError::outage(other.to_string()),
    })
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
    match std::env::var(variable) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        Ok(_) => Err(invalid(format!(
            "the environment variable {variable} is empty"
        ))),
        Err(std::env::VarError::NotPresent) => Err(invalid(format!(
            "the environment variable {variable} is not set: set it in the daemon's \
             environment (its systemd unit's Environment= or EnvironmentFile=)"
        ))),
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
        JetStreamProcessor::build(options.as_object().unwrap())
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
             token_env, subject, stream, source, timeout"
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
        let error = build(serde_json::json!({"url": "tls://h:4222"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not supported yet"), "{error}");
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

    fn reply(status: Option<u16>, payload: &str) -> Message {
        Message {
            subject: "_INBOX.x.1".into(),
            status,
            payload: payload.as_bytes().to_vec(),
            ..Message::default()
        }
    }

    #[test]
    fn acknowledgements_are_read() {
        assert_eq!(
            parse_ack(&reply(None, r#"{"stream":"S","seq":7}"#), "a"),
            Ack::Stored {
                stream: "S".into(),
                sequence: 7,
                duplicate: false
            }
        );
        assert!(matches!(
            parse_ack(
                &reply(None, r#"{"stream":"S","seq":7,"duplicate":true}"#),
                "a"
            ),
            Ack::Stored {
                duplicate: true,
                ..
            }
        ));
        let Ack::Refused(Refusal::Outage(message)) = parse_ack(&reply(Some(503), ""), "x.y") else {
            panic!()
        };
        assert!(
            message.contains("no JetStream stream takes subject x.y"),
            "{message}"
        );
        assert!(
            message.contains("nats stream add INOTIFIER --subjects 'x.>'"),
            "{message}"
        );
        assert!(message.contains(r#"subjects=["x.>"]"#), "{message}");
        let full =
            r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#;
        assert!(matches!(
            parse_ack(&reply(None, full), "a"),
            Ack::Refused(Refusal::Outage(_))
        ));
        let wrong = r#"{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}"#;
        let Ack::Refused(Refusal::Permanent(message)) = parse_ack(&reply(None, wrong), "a") else {
            panic!()
        };
        assert!(
            message.contains("expected stream does not match"),
            "{message}"
        );
        assert!(matches!(
            parse_ack(&reply(None, "hello"), "a"),
            Ack::Refused(Refusal::Permanent(_))
        ));
    }
}
