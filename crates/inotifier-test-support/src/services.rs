//! The broker services some tests talk to (Redis, RabbitMQ, NATS with JetStream), and what a
//! test does when one is not running: it is skipped, naming the service and how to start it,
//! unless `INOTIFIER_REQUIRE_SERVICES` is set (as `.ci/run` does), where it fails.
//!
//! Rust has no skipped state for a test: a skipping test returns early, prints the reason,
//! and appends it to the file named by `INOTIFIER_SKIPPED_FILE`, which `scripts/test.sh`
//! prints in its summary.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A service of this machine that tests use.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub address: &'static str,
    pub start: &'static str,
}

pub const REDIS: Service = Service {
    name: "Redis",
    address: "127.0.0.1:6379",
    start: "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
};

pub const RABBITMQ: Service = Service {
    name: "RabbitMQ",
    address: "127.0.0.1:5672",
    start: "rabbitmq-server -detached",
};

pub const NATS: Service = Service {
    name: "NATS with JetStream",
    address: "127.0.0.1:4222",
    start: "nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server",
};

/// Whether services must be running (tests fail rather than skip).
pub fn required() -> bool {
    std::env::var_os("INOTIFIER_REQUIRE_SERVICES")
        .is_some_and(|value| !value.is_empty() && value != "0")
}

/// Whether something accepts connections at `address`.
pub fn listening(address: &str) -> bool {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|address| TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok())
}

impl Service {
    /// True when the service is running. Otherwise, the test that asked, `test`, is skipped
    /// (false, with the reason reported), or fails when services are required.
    pub fn available(&self, test: &str) -> bool {
        if listening(self.address) {
            return true;
        }
        let reason = format!(
            "{test}: skipped: {} is not running on {} (start it with `{}`; \
             INOTIFIER_REQUIRE_SERVICES=1 makes this a failure)",
            self.name, self.address, self.start
        );
        assert!(!required(), "{reason}");
        eprintln!("{reason}");
        if let Some(file) = std::env::var_os("INOTIFIER_SKIPPED_FILE")
            && let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
        {
            let _ = writeln!(file, "{reason}");
        }
        false
    }
}
