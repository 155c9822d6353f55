//! Broker URLs (`redis://`, `amqp://`, `nats://`), and where they come from: a URL with a
//! password is a secret, so it is read from the daemon's environment, never from the
//! configuration.

use std::fmt;

use inotifier_sinks::BuildError;

/// A parsed `scheme://[user[:password]@]host[:port][/path][?query]`, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    /// The hosts after the first, for URLs that list several (`redis+sentinel://a:26379,b:26379`).
    pub more_hosts: Vec<(String, u16)>,
    /// The path without its leading `/`, percent-decoded: the Redis database number, the AMQP
    /// virtual host.
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The URL with its password replaced by `***`, fit for logs and error messages.
impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(user) = &self.user {
            write!(f, "{user}")?;
            if self.password.is_some() {
                write!(f, ":***")?;
            }
            write!(f, "@")?;
        }
        for (at, (host, port)) in std::iter::once((&self.host, &self.port))
            .chain(self.more_hosts.iter().map(|(host, port)| (host, port)))
            .enumerate()
        {
            if at > 0 {
                write!(f, ",")?;
            }
            if host.contains(':') {
                write!(f, "[{host}]:{port}")?;
            } else {
                write!(f, "{host}:{port}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}

impl BrokerUrl {
    /// Parses `text`, whose scheme must be one of `schemes` (scheme, default port). The error
    /// says what is wrong, without quoting a password.
    pub fn parse(text: &str, schemes: &[(&str, u16)]) -> Result<BrokerUrl, String> {
        let expected = || {
            schemes
                .iter()
                .map(|(scheme, _)| format!("{scheme}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!("not a URL: expected {}", expected()));
        };
        let scheme = scheme.to_ascii_lowercase();
        let Some(&(_, default_port)) = schemes.iter().find(|(known, _)| *known == scheme) else {
            return Err(format!(
                "unsupported scheme {scheme}://: expected {}",
                expected()
            ));
        };
        // The credentials end at the last `@`: a password may hold `/`, `?` or `#` that its
        // writer did not percent-encode, and they must neither end it nor be quoted in an error.
        let (credentials, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, query),
            None => (rest, ""),
        };
        let (hostport, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(credentials) => match credentials.split_once(':') {
                Some((user, password)) => (Some(decode(user)?), Some(decode(password)?)),
                None => (Some(decode(credentials)?), None),
            },
        };
        let mut hosts = hostport
            .split(',')
            .map(|hostport| {
                let (host, port) = split_host_port(hostport)?;
                let port = match port {
                    Some(port) => port
                        .parse::<u16>()
                        .ok()
                        .filter(|&port| port != 0)
                        .ok_or_else(|| format!("invalid port {port:?}"))?,
                    None => default_port,
                };
                let host = if host.is_empty() {
                    "127.0.0.1".to_string()
                } else {
                    host.to_string()
                };
                Ok((host, port))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (host, port) = hosts.remove(0);
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode(key)?, decode(value)?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(BrokerUrl {
            scheme,
            user: user.filter(|user| !user.is_empty()),
            password,
            host,
            port,
            more_hosts: hosts,
            path: decode(path)?,
            query,
        })
    }

    /// `host:port` to connect to.
    pub fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }
}

fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("unclosed `[` in host {hostport:?}"));
        };
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {after:?} after the host")),
        };
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

/// Percent-decoding of URL parts (`%2F` is `/`).
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| "a `%` not followed by two hexadecimal digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes that are not UTF-8".to_string())
}

/// Where a processor's broker URL comes from: the option `url_option` of the configuration
/// (no password allowed there), else the environment variable named by `env_option` (or
/// `default_env`), else `default`.
pub struct UrlSource<'a> {
    pub processor: &'static str,
    pub url_option: &'static str,
    pub env_option: &'static str,
    pub default_env: &'static str,
    pub default: Option<&'a str>,
    pub schemes: &'a [(&'a str, u16)],
}

impl UrlSource<'_> {
    pub fn resolve(
        &self,
        configured: Option<&str>,
        env_name: Option<&str>,
    ) -> Result<BrokerUrl, BuildError> {
        let env_name = env_name.unwrap_or(self.default_env);
        if let Some(text) = configured {
            let url = BrokerUrl::parse(text, self.schemes)
                .map_err(|error| BuildError::invalid(self.processor, self.url_option, error))?;
            if url.password.is_some() {
                return Err(BuildError::invalid(
                    self.processor,
                    self.url_option,
                    format!(
                        "a URL with a password is a secret and is not written in the \
                         configuration: put the whole URL in the environment variable \
                         {env_name} of the daemon and leave out {}",
                        self.url_option
                    ),
                ));
            }
            return Ok(url);
        }
        match inotifier_sinks::environment::var(env_name) {
            Ok(text) if !text.trim().is_empty() => BrokerUrl::parse(text.trim(), self.schemes)
                .map_err(|error| {
                    BuildError::invalid(
                        self.processor,
                        self.env_option,
                        format!("the environment variable {env_name}: {error}"),
                    )
                }),
            _ => match self.default {
                Some(default) => BrokerUrl::parse(default, self.schemes)
                    .map_err(|error| BuildError::invalid(self.processor, self.url_option, error)),
                // The usual place of a URL with a password: missing on this machine, not in
                // the configuration.
                None => Err(BuildError::unavailable(
                    self.processor,
                    self.url_option,
                    format!(
                        "no broker URL: the environment variable {env_name} of the daemon is \
                         not set (or give {} without a password)",
                        self.url_option
                    ),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMQP: &[(&str, u16)] = &[("amqp", 5672)];

    #[test]
    fn parses_credentials_hosts_ports_and_paths() {
        let url = BrokerUrl::parse("amqp://guest:gu%40st@rabbit:5673//", AMQP).unwrap();
        assert_eq!(url.user.as_deref(), Some("guest"));
        assert_eq!(url.password.as_deref(), Some("gu@st"));
        assert_eq!(url.address(), ("rabbit".to_string(), 5673));
        assert_eq!(url.path, "/");
        assert_eq!(url.to_string(), "amqp://guest:***@rabbit:5673//");
        let url = BrokerUrl::parse("AMQP://[::1]/%2fprod?heartbeat=30", AMQP).unwrap();
        assert_eq!(url.address(), ("::1".to_string(), 5672));
        assert_eq!(url.path, "/prod");
        assert_eq!(url.query, [("heartbeat".into(), "30".into())]);
        let url = BrokerUrl::parse("amqp://", AMQP).unwrap();
        assert_eq!(url.address(), ("127.0.0.1".to_string(), 5672));
    }

    #[test]
    fn bad_urls_say_what_is_expected_without_quoting_the_password() {
        let error = BrokerUrl::parse("localhost:5672", AMQP).unwrap_err();
        assert_eq!(error, "not a URL: expected amqp://");
        let error = BrokerUrl::parse("rediss://u:secret@h", AMQP).unwrap_err();
        assert_eq!(error, "unsupported scheme rediss://: expected amqp://");
        let error = BrokerUrl::parse("amqp://h:99999", AMQP).unwrap_err();
        assert_eq!(error, "invalid port \"99999\"");
        assert!(BrokerUrl::parse("amqp://h/%zz", AMQP).is_err());
    }

    #[test]
    fn a_password_with_slashes_is_read_whole_and_never_quoted() {
        let url = BrokerUrl::parse("amqp://u:ab/cd?e@rabbit:5673/prod", AMQP).unwrap();
        assert_eq!(url.password.as_deref(), Some("ab/cd?e"));
        assert_eq!(url.address(), ("rabbit".to_string(), 5673));
        assert_eq!(url.path, "prod");
        let error = BrokerUrl::parse("amqp://u:se/cret@rabbit:99999/", AMQP).unwrap_err();
        assert!(
            !error.contains("se/cret") && !error.contains("cret"),
            "{error}"
        );
    }

    #[test]
    fn a_configured_url_may_not_hold_a_password() {
        let source = UrlSource {
            processor: "celery",
            url_option: "broker_url",
            env_option: "broker_url_env",
            default_env: "CELERY_BROKER_URL",
            default: None,
            schemes: AMQP,
        };
        let error = source
            .resolve(Some("amqp://guest:guest@h//"), None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("put the whole URL in the environment variable CELERY_BROKER_URL"),
            "{error}"
        );
        let error = source
            .resolve(None, Some("INOTIFIER_TEST_UNSET_VARIABLE"))
            .unwrap_err();
        assert!(error.is_unavailable(), "{error:?}");
        assert_eq!(
            error.to_string(),
            "option `broker_url` of processor celery: no broker URL: the environment variable \
             INOTIFIER_TEST_UNSET_VARIABLE of the daemon is not set (or give broker_url without \
             a password)"
        );
        assert_eq!(
            source.resolve(Some("amqp://guest@h//"), None).unwrap().path,
            "/"
        );
    }
}
