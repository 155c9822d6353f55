//! The `webhook` processor: POSTs each event as JSON to a URL.
//!
//! The body is the event's JSON object, as [`inotifier_core::json`] describes it (the same as
//! a line of `jsonl`, without the newline). The request carries:
//! - `Content-Type: application/json`
//! - `X-Inotifier-Event-Id: <id>`
//! - `X-Inotifier-Journal: <16 hexadecimal digits>` with a journal: its instance id. Event ids
//!   start again at 1 in a journal made anew; the pair (journal, event id) never repeats, so
//!   it is what a receiver deduplicates on.
//! - `X-Inotifier-Signature: sha256=<hex>` when `secret_env` is set: the HMAC-SHA256 of the
//!   exact body bytes, keyed with the secret, in lowercase hexadecimal. A receiver recomputes it
//!   over the raw body and compares in constant time (Python:
//!   `hmac.compare_digest(hmac.new(secret, body, "sha256").hexdigest(), signature[7:])`).
//! - `User-Agent: inotifier/<version>`, and the `headers` of the options.
//!
//! A name that is not UTF-8 is sent with `\udcXX` escapes for its stray bytes (PEP 383):
//! Python's `json` and JavaScript read them, and `os.fsencode` gives back the exact bytes;
//! a strict parser (Rust's serde_json) rejects such a body, so a receiver written with one
//! should parse it leniently or accept that these rare events fail.
//!
//! Connections are kept alive and reused between events. Proxies are taken from the usual
//! `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` variables of the daemon. Redirects are not followed
//! (a POST must not silently become a GET): point `url` at the final address.
//!
//! # Options
//! | option | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `url` | string | required | An `http://` or `https://` URL. https checks the server's certificate against the Mozilla root certificates (or `ca_file`). |
//! | `timeout` | duration | `"10s"` | For the whole request: connecting, sending, and receiving the response. A string such as `"10s"` or `"500ms"`, or a number of seconds. |
//! | `headers` | table | `{}` | Extra request headers, such as `Authorization`. `Content-Type`, `Content-Length`, `Host`, `Transfer-Encoding` and the `X-Inotifier-*` headers are set by inotifier and may not be given. |
//! | `secret_env` | string | none | The name of an environment variable of the daemon holding the HMAC secret; the variable must be set (and not empty) when the processor is built. |
//! | `ca_file` | string | none | A PEM file of CA certificates to trust for https instead of the Mozilla roots (for an internal CA); relative to the configuration file's directory. |
//!
//! A secret is never written in the configuration: a `secret` option is an error saying to
//! use `secret_env`.
//!
//! ```toml
//! processor = "webhook"
//! options = { url = "https://hooks.example.com/inotifier", timeout = "5s", secret_env = "INOTIFIER_WEBHOOK_SECRET", headers = { Authorization = "Bearer abc" } }
//! ```
//!
//! # Failures
//! - A 2xx response is success (its body is read and ignored).
//! - A receiver that cannot be reached (connection refused, no route, a name that does not
//!   resolve) is an outage: retried with backoff for as long as it lasts, without counting
//!   against the watch's attempts, so a receiver that is down never dead-letters events.
//! - Other connection errors (reset, TLS), timeouts, 5xx and 429 are retryable, within the
//!   watch's attempts.
//! - Any other status (3xx, 4xx) is a permanent failure: sending the same request again would
//!   get the same answer. The message has the status and the start of the response body.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotifier_core::Event;
use inotifier_core::json::event_json;
use ring::hmac;
use serde::Deserialize;
use serde_json::{Map, Value};
use ureq::http::{HeaderName, HeaderValue, Uri};
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::error::BuildError;
use crate::{ProcessError, Processor, options};

pub const NAME: &str = "webhook";

/// How much of a response body is read: enough to reuse the connection after a typical reply
/// and to quote an error; a larger body closes the connection instead.
const RESPONSE_LIMIT: u64 = 64 * 1024;

/// How much of an error response's body the failure message quotes.
const QUOTED_BODY: usize = 200;

/// Headers inotifier sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "x-inotifier-event-id",
    "x-inotifier-journal",
    "x-inotifier-signature",
];

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookOptions {
    url: String,
    #[serde(default = "default_timeout", deserialize_with = "options::duration")]
    timeout: Duration,
    #[serde(default, deserialize_with = "options::string_table")]
    headers: BTreeMap<String, String>,
    secret_env: Option<String>,
    ca_file: Option<PathBuf>,
}

/// POSTs events; see the [module docs](self).
pub struct WebhookProcessor {
    url: String,
    agent: ureq::Agent,
    headers: Vec<(HeaderName, HeaderValue)>,
    key: Option<hmac::Key>,
    /// `X-Inotifier-Journal`, with a journal.
    journal: Option<String>,
    /// The CA file of `agent`, resolved: for `inotifier doctor`'s handshake.
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for WebhookProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookProcessor")
            .field("url", &self.url)
            .field("signed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookProcessor {
    pub(crate) fn build(
        options: &Map<String, Value>,
        base_dir: &Path,
    ) -> Result<WebhookProcessor, BuildError> {
        if options.contains_key("secret") {
            return Err(BuildError::invalid(
                NAME,
                "secret",
                "secrets are not written in the configuration: put the secret in an \
                 environment variable of the daemon and give its name as secret_env",
            ));
        }
        let parsed: WebhookOptions = options::parse(NAME, options)?;
        check_url(&parsed.url)?;
        let headers = parsed
            .headers
            .iter()
            .map(|(name, value)| header(name, value))
            .collect::<Result<Vec<_>, _>>()?;
        let key = match &parsed.secret_env {
            Some(variable) => Some(secret_key(variable)?),
            None => None,
        };
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(parsed.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("inotifier/", env!("CARGO_PKG_VERSION")));
        if let Some(ca_file) = &parsed.ca_file {
            config = config.tls_config(tls_config(&options::resolve(base_dir, ca_file))?);
        }
        Ok(WebhookProcessor {
            url: parsed.url,
            agent: ureq::Agent::new_with_config(config.build()),
            headers,
            key,
            journal: None,
            ca_file: parsed
                .ca_file
                .map(|ca_file| options::resolve(base_dir, &ca_file)),
        })
    }

    /// The URL and the CA file (resolved) of a webhook with `options`, checked as building
    /// it checks them, connecting to nothing: what `inotifier doctor` reaches.
    pub fn destination(
        options: &Map<String, Value>,
        base_dir: &Path,
    ) -> Result<(String, Option<PathBuf>), BuildError> {
        let processor = WebhookProcessor::build(options, base_dir)?;
        Ok((processor.url, processor.ca_file))
    }

    /// Names the journal whose instance is `journal` in every request.
    pub fn with_journal(mut self, journal: Option<u64>) -> WebhookProcessor {
        self.journal = journal.map(crate::identity::journal_id);
        self
    }

    pub fn validate(options: &Map<String, Value>, base_dir: &Path) -> Result<(), BuildError> {
        // Building opens no connection: it only reads the options, the environment and the
        // CA file.
        WebhookProcessor::build(options, base_dir).map(drop)
    }

    /// The URL events are sent to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn failure(&self, event: &Event, what: impl std::fmt::Display) -> String {
        format!(
            "webhook {} {what} for event {} ({})",
            self.url,
            event.id,
            event.pathname().display()
        )
    }
}

impl Processor for WebhookProcessor {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        let mut body = Vec::with_capacity(512);
        event_json(&mut body, event);
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Inotifier-Event-Id", event.id.to_string());
        if let Some(journal) = &self.journal {
            request = request.header("X-Inotifier-Journal", journal);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(key) = &self.key {
            request = request.header("X-Inotifier-Signature", signature(key, &body));
        }
        let mut response = match request.send(&body[..]) {
            Ok(response) => response,
            Err(error) => {
                let message = self.failure(event, format_args!("failed: {error}"));
                return Err(if unreachable(&error) {
                    ProcessError::outage(message)
                } else if retryable_error(&error) {
                    ProcessError::retryable(message)
                } else {
                    ProcessError::permanent(message)
                });
            }
        };
        let status = response.status().as_u16();
        // Reading the body to its end lets the connection be reused.
        let reply = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_LIMIT)
            .read_to_vec()
            .unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let mut what = format!("answered {status}");
        if let Some(location) = response.headers().get("location") {
            let _ = write!(
                what,
                " (redirect to {}: set url to it)",
                String::from_utf8_lossy(location.as_bytes())
            );
        }
        let quoted = String::from_utf8_lossy(&reply[..reply.len().min(QUOTED_BODY)]);
        let quoted = quoted.trim();
        if !quoted.is_empty() {
            let _ = write!(what, ": {quoted}");
        }
        let message = self.failure(event, what);
        Err(if status >= 500 || status == 429 {
            ProcessError::retryable(message)
        } else {
            ProcessError::permanent(message)
        })
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body`.
fn signature(key: &hmac::Key, body: &[u8]) -> String {
    let tag = hmac::sign(key, body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in tag.as_ref() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Whether sending again may work: the network and the server may recover, a malformed
/// request will not.
/// The receiver cannot be reached at all (refused, no route, a name that does not resolve):
/// an outage, waited out without counting against the event's attempts. A reset or a timeout
/// is not: a request that makes the receiver fail that way would otherwise be tried forever.
fn unreachable(error: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match error {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(error) => matches!(
            error.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

fn retryable_error(error: &ureq::Error) -> bool {
    !matches!(
        error,
        ureq::Error::BadUri(_)
            | ureq::Error::Http(_)
            | ureq::Error::RequireHttpsOnly(_)
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::BodyExceedsLimit(_)
            | ureq::Error::RedirectFailed
            | ureq::Error::TooManyRedirects
    )
}

fn check_url(url: &str) -> Result<(), BuildError> {
    let invalid = |why: String| BuildError::invalid(NAME, "url", why);
    let uri: Uri = url.parse().map_err(|error| {
        invalid(format!(
            "{url:?} is not a URL ({error}): expected one such as http://host:port/path"
        ))
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(invalid(format!(
                "{url:?} is a {other} URL: expected http:// or https://"
            )));
        }
        None => {
            return Err(invalid(format!(
                "{url:?} has no scheme: expected http:// or https://"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(format!("{url:?} has no host")));
    }
    Ok(())
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), BuildError> {
    let invalid = |why: String| BuildError::invalid(NAME, "headers", why);
    let parsed_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(format!("{name:?} is not a header name")))?;
    if RESERVED_HEADERS.contains(&parsed_name.as_str()) {
        return Err(invalid(format!(
            "{name} is set by inotifier and may not be given; the reserved headers are {}",
            RESERVED_HEADERS.join(", ")
        )));
    }
    let parsed_value = HeaderValue::from_str(value).map_err(|_| {
        invalid(format!(
            "the value of {name} is not a valid header value (no control characters)"
        ))
    })?;
    Ok((parsed_name, parsed_value))
}

fn secret_key(variable: &str) -> Result<hmac::Key, BuildError> {
    let invalid = |why: String| BuildError::invalid(NAME, "secret_env", why);
    match crate::environment::var_os(variable) {
        None => Err(BuildError::unavailable(
            NAME,
            "secret_env",
            format!(
                "the environment variable {variable} is not set: set it in the daemon's environment \
             (its systemd unit's Environment= or EnvironmentFile=)"
            ),
        )),
        Some(secret) if secret.is_empty() => Err(invalid(format!(
            "the environment variable {variable} is empty"
        ))),
        Some(secret) => {
            use std::os::unix::ffi::OsStrExt;
            Ok(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
        }
    }
}

fn tls_config(ca_file: &Path) -> Result<TlsConfig, BuildError> {
    let invalid = |why: String| BuildError::invalid(NAME, "ca_file", why);
    let pem = std::fs::read(ca_file)
        .map_err(|error| BuildError::unreadable(NAME, "ca_file", ca_file, &error))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(error) => {
                return Err(invalid(format!(
                    "{} is not a PEM file of certificates: {error}",
                    ca_file.display()
                )));
            }
        }
    }
    if certificates.is_empty() {
        return Err(invalid(format!(
            "{} holds no certificate",
            ca_file.display()
        )));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certificates))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://example.com").is_ok());
        for (url, why) in [
            ("ftp://example.com/x", "ftp URL"),
            ("example.com", "no scheme"),
            ("example.com/x", "not a URL"),
            ("http:///x", "not a URL"),
            ("not a url", "not a URL"),
        ] {
            let error = check_url(url).unwrap_err().to_string();
            assert!(error.contains(why), "{url}: {error}");
        }
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        assert!(header("Authorization", "Bearer x").is_ok());
        assert!(
            header("X-Inotifier-Signature", "x")
                .unwrap_err()
                .to_string()
                .contains("set by inotifier")
        );
        assert!(header("bad name", "x").is_err());
        assert!(header("X-Ok", "line\nbreak").is_err());
    }
}
