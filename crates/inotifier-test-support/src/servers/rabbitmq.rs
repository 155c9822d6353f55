//! A RabbitMQ node of the test's own beside the machine's: its own node name, ports, data and
//! log directories, with an AMQPS listener whose certificate a [`crate::tls::TestCa`] signed.
//!
//! `rabbitmq-server` (the script under `/usr/lib/rabbitmq/bin`, which `exec`s the Erlang VM,
//! so the PID is the node's) runs as root here: Debian's wrapper in `/usr/sbin` would switch to
//! the `rabbitmq` user, who cannot read the test's directory. No plugin is enabled (the
//! management plugin's port would clash with the machine's node). Starting takes about 10 s.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::{ServerProcess, TlsServerOptions, create_dir, free_port};

const PROGRAM: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ node with a plain AMQP listener and an AMQPS one.
pub struct RabbitMqNode {
    /// Listening on the AMQPS port (the last listener to open).
    pub process: ServerProcess,
    pub amqp_port: u16,
    pub amqps_port: u16,
}

impl RabbitMqNode {
    /// Whether RabbitMQ is installed here.
    pub fn installed() -> bool {
        Path::new(PROGRAM).exists()
    }

    /// Starts a node keeping everything in `dir`; returns once its AMQPS port accepts
    /// connections. guest/guest may log in from localhost.
    pub fn start_tls(dir: &Path, tls: &TlsServerOptions) -> RabbitMqNode {
        create_dir(dir);
        let dir = std::fs::canonicalize(dir)
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()));
        let (amqp_port, amqps_port, dist_port) = (free_port(), free_port(), free_port());
        let config = dir.join("rabbitmq.conf");
        let verify = if tls.require_client_cert {
            "ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n"
        } else {
            "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
        };
        std::fs::write(
            &config,
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp_port}\n\
                 listeners.ssl.default = 127.0.0.1:{amqps_port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 {verify}",
                tls.ca.ca_file().display(),
                tls.cert.cert_file.display(),
                tls.cert.key_file.display(),
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let plugins = dir.join("enabled_plugins");
        std::fs::write(&plugins, "[].\n")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", plugins.display()));
        let node = format!(
            "inotifier-test-{}-{amqps_port}@localhost",
            std::process::id()
        );
        let env: Vec<(OsString, OsString)> = [
            ("RABBITMQ_NODENAME", node),
            ("RABBITMQ_NODE_PORT", amqp_port.to_string()),
            ("RABBITMQ_DIST_PORT", dist_port.to_string()),
            ("RABBITMQ_CONFIG_FILE", config.display().to_string()),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                plugins.display().to_string(),
            ),
            (
                "RABBITMQ_MNESIA_BASE",
                dir.join("mnesia").display().to_string(),
            ),
            ("RABBITMQ_LOG_BASE", dir.display().to_string()),
            (
                "RABBITMQ_PID_FILE",
                dir.join("rabbitmq.pid").display().to_string(),
            ),
            // A cookie of its own, in a home of its own.
            ("HOME", dir.display().to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
        let log = dir.join("rabbitmq.log");
        let process = ServerProcess::start_with(
            PROGRAM,
            Vec::new(),
            env,
            Duration::from_secs(60),
            amqps_port,
            &log,
        );
        RabbitMqNode {
            process,
            amqp_port,
            amqps_port,
        }
    }
}
