//! Redis for the `celery` and `redis_stream` processors, through the `redis` crate (its
//! synchronous connection: no async runtime is needed for one connection that sends a
//! pipeline per batch): `redis://` and `rediss://` (TLS), a master found through Redis
//! Sentinel, AUTH with a password or an ACL user, the database of the URL.
//!
//! What this module adds to the crate is the processors' view of a connection: made when first
//! needed and made again after it broke ([`Link`]), a pipeline sent once more at once when a
//! connection that had worked was found closed (Redis restarted while it was idle, or a
//! Sentinel failover closed it), and every failure put in words that say what to fix.

use std::time::Duration;

use inotifier_sinks::{BuildError, ProcessError};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError};

use crate::link::Link;
use crate::tls::{self, TlsFiles, TlsOptions};
use crate::url::BrokerUrl;

/// The URL schemes of Redis, with their default ports.
pub const SCHEMES: &[(&str, u16)] = &[
    ("redis", 6379),
    ("rediss", 6379),
    ("redis+sentinel", 26379),
    ("rediss+sentinel", 26379),
];

/// Error codes (the first word of an error reply) that mean Redis cannot take a write now,
/// whatever the write: waited out as outages.
pub const OUTAGE_CODES: &[&str] = &[
    "OOM",
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "BUSY",
    "MISCONF",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOREPLICAS",
    "NOAUTH",
];

/// Where the Redis of a processor is, and how to talk to it. No `Debug`: it holds passwords
/// (its `Display` is the URL without them).
#[derive(Clone)]
pub struct RedisTarget {
    /// `redis://`/`rediss://`: the server; `redis+sentinel://`: the first Sentinel.
    pub url: BrokerUrl,
    /// The Sentinels to ask for the master of `service_name`; empty for a server of its own.
    pub sentinels: Vec<(String, u16)>,
    pub service_name: Option<String>,
    pub tls: TlsFiles,
    /// For connecting, and for each read or write of a pipeline.
    pub timeout: Duration,
    /// Where an operator fixes a refused password, such as "the environment variable REDIS_URL".
    pub url_origin: String,
    /// Replicas that must have each pipeline's writes before it counts as done (`WAIT`), so
    /// that a failover to one of them loses nothing; 0 for the master's answer alone.
    pub replicas: u32,
    /// The Sentinels' own password (their `requirepass`), and the variable it came from.
    pub sentinel_password: Option<(String, String)>,
}

/// The database number of a Redis URL: its path (after the service name for Sentinel), `0`
/// when empty.
pub fn database(path: &str) -> Result<i64, String> {
    if path.is_empty() {
        return Ok(0);
    }
    path.parse::<u32>().map(i64::from).map_err(|_| {
        format!(
            "the path of a Redis URL is the database number, such as redis://host:6379/0, \
             not {path:?}"
        )
    })
}

/// Builds the [`RedisTarget`] of processor `processor` from its resolved URL and its options
/// `sentinels` and `service_name` (Sentinel, the alternative to a `redis+sentinel://` URL) and
/// the TLS options, read relative to `base_dir`.
pub struct TargetOptions<'a> {
    pub processor: &'static str,
    /// The option (or environment variable option) the URL came from, for messages.
    pub url_option: &'a str,
    pub sentinels: Option<&'a [String]>,
    pub service_name: Option<&'a str>,
    pub tls: &'a TlsOptions,
    pub base_dir: &'a std::path::Path,
    pub timeout: Duration,
    pub url_origin: String,
    pub replicas: u32,
    /// The option `sentinel_password_env`: the variable holding the Sentinels' password.
    pub sentinel_password_env: Option<&'a str>,
}

impl TargetOptions<'_> {
    pub fn target(self, url: BrokerUrl) -> Result<RedisTarget, BuildError> {
        let processor = self.processor;
        let invalid =
            |option: &str, message: String| BuildError::invalid(processor, option, message);
        let tls = self.tls.for_url(
            processor,
            &url,
            url.scheme.starts_with("rediss"),
            "rediss://",
            self.base_dir,
        )?;
        let by_url = url.scheme.ends_with("+sentinel");
        let (sentinels, service_name, path) = match (by_url, self.sentinels) {
            (true, Some(_)) => {
                return Err(invalid(
                    "sentinels",
                    format!(
                        "is given, but the URL {url} names its Sentinels already: give one \
                         or the other"
                    ),
                ));
            }
            (true, None) => {
                let mut sentinels = vec![(url.host.clone(), url.port)];
                sentinels.extend(url.more_hosts.iter().cloned());
                let (service, path) = match url.path.split_once('/') {
                    Some((service, path)) => (service.to_string(), path.to_string()),
                    None => (url.path.clone(), String::new()),
                };
                let service = match (service.is_empty(), self.service_name) {
                    (false, None) => service,
                    (true, Some(name)) => name.to_string(),
                    (false, Some(_)) => {
                        return Err(invalid(
                            "service_name",
                            format!("is given, but the URL {url} names the service already"),
                        ));
                    }
                    (true, None) => {
                        return Err(invalid(
                            self.url_option,
                            format!(
                                "the URL {url} names no service: write it as \
                                 redis+sentinel://host:26379,host2:26379/SERVICE_NAME/DB"
                            ),
                        ));
                    }
                };
                (sentinels, Some(service), path)
            }
            (false, Some(listed)) => {
                if listed.is_empty() {
                    return Err(invalid("sentinels", "lists no Sentinel".into()));
                }
                let sentinels = listed
                    .iter()
                    .map(|address| {
                        let parsed =
                            BrokerUrl::parse(&format!("redis://{address}"), &[("redis", 26379)])
                                .ok()
                                .filter(|parsed| {
                                    parsed.more_hosts.is_empty()
                                        && parsed.path.is_empty()
                                        && parsed.user.is_none()
                                });
                        parsed
                            .map(|parsed| (parsed.host, parsed.port))
                            .ok_or_else(|| {
                                invalid("sentinels", format!("{address:?} is not host:port"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let Some(service) = self.service_name else {
                    return Err(BuildError::MissingOption {
                        processor,
                        option: "service_name (the master's name the Sentinels monitor)".into(),
                    });
                };
                (sentinels, Some(service.to_string()), url.path.clone())
            }
            (false, None) => {
                if self.service_name.is_some() {
                    return Err(invalid(
                        "service_name",
                        "is given without Sentinels: list them in the option sentinels, or \
                         use a redis+sentinel:// URL"
                            .into(),
                    ));
                }
                if !url.more_hosts.is_empty() {
                    return Err(invalid(
                        self.url_option,
                        format!(
                            "the URL {url} lists several hosts: only a redis+sentinel:// URL \
                             does (Redis Cluster is not supported)"
                        ),
                    ));
                }
                (Vec::new(), None, url.path.clone())
            }
        };
        database(&path).map_err(|error| invalid(self.url_option, error))?;
        let sentinel_password = match self.sentinel_password_env {
            None => None,
            Some(_) if sentinels.is_empty() => {
                return Err(invalid(
                    "sentinel_password_env",
                    "is given without Sentinels (option sentinels, or a redis+sentinel:// URL)"
                        .into(),
                ));
            }
            Some(variable) => match inotifier_sinks::environment::var(variable) {
                Ok(password) if !password.is_empty() => Some((password, variable.to_string())),
                _ => {
                    return Err(BuildError::unavailable(
                        self.processor,
                        "sentinel_password_env",
                        format!(
                            "the environment variable {variable} is not set (or empty): set it \
                             to the Sentinels' password in the daemon's environment"
                        ),
                    ));
                }
            },
        };
        Ok(RedisTarget {
            url: BrokerUrl { path, ..url },
            sentinels,
            service_name: service_name.filter(|name| !name.is_empty()),
            tls,
            timeout: self.timeout,
            url_origin: self.url_origin,
            replicas: self.replicas,
            sentinel_password,
        })
    }
}

impl RedisTarget {
    /// Whether the connections use TLS.
    pub fn tls(&self) -> bool {
        self.url.scheme.starts_with("rediss")
    }

    /// The server, or each Sentinel: what a connection begins with.
    pub fn endpoints(&self) -> Vec<crate::reach::Endpoint> {
        use crate::reach::{Endpoint, Handshake};
        let handshake = if self.tls() {
            Handshake::Tls
        } else {
            Handshake::Plain
        };
        if self.sentinels.is_empty() {
            return Endpoint::of_url(&self.url, handshake, &self.tls);
        }
        self.sentinels
            .iter()
            .map(|(host, port)| Endpoint {
                what: format!("{}://{host}:{port} (Sentinel)", self.url.scheme),
                host: host.clone(),
                port: *port,
                handshake,
                tls: self.tls.clone(),
            })
            .collect()
    }

    /// Checks what can be checked without connecting, and returns the connections' maker.
    pub fn link(self) -> Result<RedisLink, String> {
        let what = self.to_string();
        let (replicas, timeout) = (self.replicas, self.timeout);
        let connector = Connector::new(self)?;
        Ok(RedisLink {
            link: Link::new(what, move || connector.connect()),
            replicas,
            timeout,
        })
    }
}

/// `redis://host:port/db`, or for Sentinel `redis+sentinel://host:port,.../service/db`,
/// without the password.
impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sentinels.is_empty() {
            return write!(f, "{}", self.url);
        }
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        write!(
            f,
            "{}://{}/{}",
            self.url.scheme,
            hosts.join(","),
            self.service_name.as_deref().unwrap_or_default()
        )
    }
}

enum Server {
    Direct(redis::Client),
    /// The Sentinels, asked for the current master at each connection, and the settings of a
    /// connection to the master one names.
    Sentinel {
        sentinels: Vec<redis::Client>,
        service: String,
        master: RedisConnectionInfo,
    },
}

struct Connector {
    target: RedisTarget,
    server: Server,
}

/// A client of `host:port`, over TLS with the target's certificates when `tls`.
fn client(
    host: String,
    port: u16,
    tls: Option<&TlsFiles>,
    settings: RedisConnectionInfo,
) -> redis::RedisResult<redis::Client> {
    let address = match tls {
        Some(_) => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        },
        None => ConnectionAddr::Tcp(host, port),
    };
    let info = address
        .into_connection_info()?
        .set_tcp_settings(tcp_settings())
        .set_redis_settings(settings);
    match tls {
        Some(files) => redis::Client::build_with_tls(info, files.redis_certificates()),
        None => redis::Client::open(info),
    }
}

impl Connector {
    fn new(target: RedisTarget) -> Result<Connector, String> {
        let tls = target.tls().then_some(&target.tls);
        let (user, password) = (&target.url.user, &target.url.password);
        let mut settings = RedisConnectionInfo::default()
            .set_db(database(&target.url.path)?)
            // One round trip less per connection, and none answered with an error by Redis
            // before 7.2.
            .set_skip_set_lib_name();
        if let Some(user) = user {
            settings = settings.set_username(user);
        }
        if let Some(password) = password {
            settings = settings.set_password(password);
        }
        let server = if target.sentinels.is_empty() {
            let (host, port) = target.url.address();
            Server::Direct(client(host, port, tls, settings).map_err(|error| error.to_string())?)
        } else {
            let service = target
                .service_name
                .clone()
                .ok_or("a Sentinel needs the name of the master's service")?;
            // The Sentinels take no password of the master's (nor its database): their own.
            let mut plain = RedisConnectionInfo::default().set_skip_set_lib_name();
            if let Some((password, _)) = &target.sentinel_password {
                plain = plain.set_password(password);
            }
            let sentinels = target
                .sentinels
                .iter()
                .map(|(host, port)| client(host.clone(), *port, tls, plain.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| error.to_string())?;
            Server::Sentinel {
                sentinels,
                service,
                master: settings,
            }
        };
        Ok(Connector { target, server })
    }

    /// A connection with the target's timeouts, proven to speak Redis.
    fn open(&self, client: &redis::Client) -> Result<redis::Connection, RedisError> {
        let timeout = self.target.timeout;
        let mut connection = client.get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        connection.set_write_timeout(Some(timeout))?;
        // Proves the server speaks Redis and, without a password, that it needs none.
        redis::cmd("PING").query::<()>(&mut connection)?;
        Ok(connection)
    }

    /// The master the first Sentinel that answers names, connected and confirmed a master by
    /// its `ROLE`: every step bounded by the timeout (the `redis` crate's own Sentinel client
    /// connects without one, so a Sentinel that accepts and never answers would hang a worker).
    fn master(
        &self,
        sentinels: &[redis::Client],
        service: &str,
        master: &RedisConnectionInfo,
    ) -> Result<redis::Connection, ProcessError> {
        let tls = self.target.tls().then_some(&self.target.tls);
        let mut reasons = Vec::new();
        for sentinel in sentinels {
            let address = sentinel.get_connection_info().addr().to_string();
            let named = self.open(sentinel).and_then(|mut connection| {
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(service)
                    .query::<Option<(String, u16)>>(&mut connection)
            });
            let (host, port) = match named {
                Ok(Some(named)) => named,
                Ok(None) => {
                    reasons.push(format!("{address}: knows no service {service:?}"));
                    continue;
                }
                Err(error) => {
                    reasons.push(format!("{address}: {}", self.sentinel_failure(&error)));
                    continue;
                }
            };
            let connected = client(host.clone(), port, tls, master.clone()).and_then(|client| {
                let mut connection = self.open(&client)?;
                let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connection)?;
                Ok((connection, role))
            });
            match connected {
                Ok((connection, role)) if matches!(role.first(), Some(redis::Value::BulkString(kind)) if kind == b"master") =>
                {
                    return Ok(connection);
                }
                Ok(_) => reasons.push(format!(
                    "{address} named {host}:{port}, which is not a master (a failover under way)"
                )),
                Err(error) => {
                    return Err(
                        self.failure(&format!("connecting to the master {host}:{port}"), &error)
                    );
                }
            }
        }
        Err(ProcessError::outage(format!(
            "Redis {}: no Sentinel named a master that answers: {}",
            self.target,
            reasons.join("; ")
        )))
    }

    fn connect(&self) -> Result<Session, ProcessError> {
        let connection = match &self.server {
            Server::Direct(client) => self
                .open(client)
                .map_err(|error| self.failure("connecting", &error))?,
            Server::Sentinel {
                sentinels,
                service,
                master,
            } => self.master(sentinels, service, master)?,
        };
        Ok(Session {
            connection,
            pipelines: 0,
            timed_out: false,
            waited_short: false,
        })
    }

    /// Why a Sentinel did not answer: its password, or what [`Connector::failure`] says.
    fn sentinel_failure(&self, error: &RedisError) -> String {
        let code = error.code().unwrap_or_default();
        match (
            &self.target.sentinel_password,
            password_refused(error),
            code == "NOAUTH",
        ) {
            (Some((_, variable)), true, _) => format!(
                "it refused the password of the environment variable {variable} \
                 (sentinel_password_env): put the Sentinels' password there and restart the daemon"
            ),
            (None, _, true) | (None, true, _) => "it requires a password of its own: put it in \
                 an environment variable of the daemon and name that variable in the option \
                 sentinel_password_env"
                .to_string(),
            _ => self.failure("asking", error).message,
        }
    }

    /// What went wrong with `error`, as an outage: every failure to reach or use Redis is
    /// waited out, so that no event is given up while an operator fixes the server or the URL.
    fn failure(&self, doing: &str, error: &RedisError) -> ProcessError {
        let server = &self.target;
        let origin = &self.target.url_origin;
        let code = error.code().unwrap_or_default();
        let message = if password_refused(error) {
            format!(
                "Redis {server} refused the user and password of its URL ({}): put the right \
                 URL in {origin} and restart the daemon; events wait until then",
                explain(error)
            )
        } else if code == "NOAUTH" {
            format!(
                "Redis {server} requires a password ({}): put the URL with its password in \
                 {origin} and restart the daemon; events wait until then",
                explain(error)
            )
        } else if error.is_timeout() {
            format!(
                "Redis {server}: {doing}: no answer within {:?}",
                self.target.timeout
            )
        } else {
            let text = explain(error);
            match tls::advice(&text).filter(|_| self.target.tls()) {
                Some(advice) => format!("Redis {server}: TLS: {text}: {advice}"),
                None => format!("Redis {server}: {doing}: {text}"),
            }
        };
        ProcessError::outage(message)
    }
}

/// The error's text, with what the `redis` crate leaves out of its `Display` of an I/O error.
fn explain(error: &RedisError) -> String {
    crate::link::error_chain(error)
}

/// Whether Redis refused the user and password it was given (AUTH).
fn password_refused(error: &RedisError) -> bool {
    error.code() == Some("WRONGPASS")
        || error.kind() == redis::ErrorKind::AuthenticationFailed
        || error.to_string().contains("invalid username-password")
}

/// Each pipeline is one write: Nagle's algorithm would only hold back its last segment until
/// the previous ones are acknowledged (the crate leaves it on by default).
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

/// A connection, with what [`RedisLink::send`] needs to know of its past.
pub struct Session {
    connection: redis::Connection,
    /// Pipelines sent on it.
    pipelines: u64,
    /// Whether the last failure was Redis not answering in time (rather than the connection
    /// breaking): it may still be working on the commands.
    timed_out: bool,
    /// Whether the last pipeline's writes reached fewer replicas than asked for.
    waited_short: bool,
}

/// The connection of one processor to its Redis.
pub struct RedisLink {
    link: Link<Session>,
    replicas: u32,
    timeout: Duration,
}

impl RedisLink {
    /// The server, for messages: its URL without the password.
    pub fn what(&self) -> &str {
        self.link.what()
    }

    /// Sends `pipe` (built with [`redis::Pipeline::ignore_errors`], so that an error reply is
    /// one command's [`redis::Value::ServerError`] rather than the whole pipeline's failure) and
    /// returns one reply per command, in order. A connection that worked before and breaks now
    /// may have been closed while idle (a Redis restart, a failover): it is replaced and the
    /// pipeline sent once more at once, rather than after the retry delay. Commands Redis
    /// executed before the break are executed again (delivery is at least once). With the
    /// option `replicas`, a `WAIT` ends the pipeline, and its answer is not among the replies.
    pub fn send(&self, mut pipe: redis::Pipeline) -> Result<Vec<redis::Value>, ProcessError> {
        if self.replicas > 0 {
            // Half the timeout: WAIT answers within it, before the read of its answer times out.
            let millis = u64::try_from(self.timeout.as_millis() / 2).unwrap_or(u64::MAX);
            pipe.cmd("WAIT").arg(self.replicas).arg(millis);
        }
        let mut send_again = false;
        let result = self.link.with(|session| {
            let used = session.pipelines > 0;
            let result = self.query(session, &pipe);
            // Only a connection that broke: not one that was slow, nor writes that reached
            // too few replicas (sent again after the retry delay, not at once).
            send_again = result.is_err() && used && !session.timed_out && !session.waited_short;
            result
        });
        match result {
            Err(error) if error.outage && send_again => {
                self.link.with(|session| self.query(session, &pipe))
            }
            other => other,
        }
    }

    /// Sends `sent`, whose last command is the `WAIT` when replicas are asked for.
    fn query(
        &self,
        session: &mut Session,
        sent: &redis::Pipeline,
    ) -> Result<Vec<redis::Value>, ProcessError> {
        session.pipelines += 1;
        session.waited_short = false;
        match sent.query::<Vec<redis::Value>>(&mut session.connection) {
            Ok(mut replies) if replies.len() == sent.len() => {
                session.timed_out = false;
                if self.replicas > 0 {
                    let confirmed = match replies.pop() {
                        Some(redis::Value::Int(confirmed)) => confirmed,
                        _ => 0,
                    };
                    if confirmed < i64::from(self.replicas) {
                        session.waited_short = true;
                        // Written on the master, not yet safe from its failover: sent again
                        // (at least once), after the retry delay.
                        return Err(ProcessError::outage(format!(
                            "Redis {}: {confirmed} of the {} replica(s) the option replicas \
                             asks for confirmed the writes within {:?}",
                            self.what(),
                            self.replicas,
                            self.timeout / 2
                        )));
                    }
                }
                Ok(replies)
            }
            Ok(replies) => Err(ProcessError::outage(format!(
                "Redis {}: {} replies to a pipeline of {} commands",
                self.what(),
                replies.len(),
                sent.len()
            ))),
            Err(error) => {
                session.timed_out = error.is_timeout();
                let what = if session.timed_out {
                    "no answer in time".to_string()
                } else {
                    explain(&error)
                };
                Err(ProcessError::outage(format!(
                    "Redis {}: sending: {what}",
                    self.what()
                )))
            }
        }
    }

    pub fn close(&self) {
        self.link.close();
    }

    /// After an error reply whose code is `code`: a node that is no master any more
    /// (`READONLY`, `MASTERDOWN`: a failover, or an operator's `REPLICAOF`) is left, so that the
    /// next try connects to the master again (through the Sentinels, when there are some).
    pub fn answered(&self, code: &str) {
        if matches!(code, "READONLY" | "MASTERDOWN") {
            tracing::warn!(broker = %self.what(), "{code}: this node is no master now; connecting again");
            self.link.close();
        }
    }
}

/// An error reply's code (its first word) and whole text.
pub fn error_reply(value: &redis::Value) -> Option<(String, String)> {
    let redis::Value::ServerError(error) = value else {
        return None;
    };
    let code = error.code().to_string();
    let text = match error.details() {
        Some(details) => format!("{code} {details}"),
        None => code.clone(),
    };
    Some((code, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_the_path() {
        assert_eq!(database(""), Ok(0));
        assert_eq!(database("3"), Ok(3));
        let error = database("cache").unwrap_err();
        assert!(error.contains("database number"), "{error}");
    }
}
