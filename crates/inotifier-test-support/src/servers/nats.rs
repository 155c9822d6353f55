//! `nats-server`, configured through a file (`nats.conf` in the test's directory): TLS,
//! JetStream and one kind of authorization.
//!
//! NATS sends its INFO line in plain text before a TLS client upgrades the connection (until
//! `handshake_first`, new in 2.10): a client learns from it (`tls_required`) that TLS is needed,
//! or is told so beforehand (`tls://`, `require_tls`), which no one on the path can undo. The TLS handshake timeout is raised from
//! NATS's 0.5 s to 5 s: a client built without optimisations, on a loaded machine, can take
//! longer than that.

use std::path::Path;

use super::{ServerProcess, TlsServerOptions, create_dir, free_port, quoted};

/// How clients authenticate to a [`NatsServer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// Anyone may connect.
    #[default]
    None,
    /// `authorization { token }`.
    Token(String),
    /// `authorization { user, password }`.
    UserPassword(String, String),
    /// One user identified by the NKey whose public key (`U...`) this is; the client signs
    /// the server's nonce with the seed.
    Nkey(String),
}

/// What a [`NatsServer`] is started with.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions<'a> {
    pub tls: Option<TlsServerOptions<'a>>,
    pub jetstream: bool,
    pub authorization: NatsAuth,
}

/// Starts `nats-server`.
pub struct NatsServer;

impl NatsServer {
    /// Writes `dir/nats.conf` (JetStream's store in `dir/js`) and starts `nats-server` with it,
    /// logging to `dir/nats.log`, on a free port; returns once it accepts connections.
    pub fn start(dir: &Path, options: &NatsOptions) -> ServerProcess {
        create_dir(dir);
        let dir = std::fs::canonicalize(dir)
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()));
        let port = free_port();
        let config = dir.join("nats.conf");
        let log = dir.join("nats.log");
        std::fs::write(&config, nats_config(port, &dir, options))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let args = vec![
            "-c".into(),
            config.into_os_string(),
            "-l".into(),
            log.clone().into_os_string(),
        ];
        ServerProcess::start("nats-server", args, port, &log)
    }
}

/// A NATS string: quoted like JSON (NATS's configuration reads JSON's escapes).
fn string(value: &str) -> String {
    quoted(Path::new(value))
}

fn nats_config(port: u16, dir: &Path, options: &NatsOptions) -> String {
    let mut config = format!("port: {port}\nhost: \"127.0.0.1\"\n");
    if options.jetstream {
        config.push_str(&format!(
            "jetstream {{\n  store_dir: {}\n}}\n",
            quoted(&dir.join("js"))
        ));
    }
    if let Some(tls) = &options.tls {
        config.push_str(&format!(
            "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  verify: {}\n  timeout: 5\n}}\n",
            quoted(&tls.cert.cert_file),
            quoted(&tls.cert.key_file),
            quoted(&tls.ca.ca_file()),
            tls.require_client_cert,
        ));
    }
    match &options.authorization {
        NatsAuth::None => {}
        NatsAuth::Token(token) => {
            config.push_str(&format!(
                "authorization {{\n  token: {}\n}}\n",
                string(token)
            ));
        }
        NatsAuth::UserPassword(user, password) => config.push_str(&format!(
            "authorization {{\n  user: {}\n  password: {}\n}}\n",
            string(user),
            string(password)
        )),
        NatsAuth::Nkey(public_key) => config.push_str(&format!(
            "authorization {{\n  users = [\n    {{ nkey: {} }}\n  ]\n}}\n",
            string(public_key)
        )),
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_what_was_asked() {
        let options = NatsOptions {
            jetstream: true,
            authorization: NatsAuth::UserPassword("alice".into(), "p\"w".into()),
            ..NatsOptions::default()
        };
        assert_eq!(
            nats_config(4222, Path::new("/t"), &options),
            "port: 4222\nhost: \"127.0.0.1\"\njetstream {\n  store_dir: \"/t/js\"\n}\n\
             authorization {\n  user: \"alice\"\n  password: \"p\\\"w\"\n}\n"
        );
    }
}
