//! The broker services some tests talk to (Redis, RabbitMQ, NATS with JetStream), and what a
//! test does when one is not running: it is skipped, naming the service and how to start it,
//! unless `INOTIFIER_REQUIRE_SERVICES` is set (as `.ci/run` does), where it fails. Skips are
//! reported through [`crate::skip`].

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
        let Some(reason) = self.missing(test) else {
            return true;
        };
        assert!(!required(), "{reason}");
        crate::skip::skip(&reason);
        false
    }

    /// Why `test` cannot run: the service is not listening; None when it is.
    pub fn missing(&self, test: &str) -> Option<String> {
        (!listening(self.address)).then(|| {
            format!(
                "{test}: skipped: {} is not running on {} (start it with `{}`; \
                 INOTIFIER_REQUIRE_SERVICES=1 makes this a failure)",
                self.name, self.address, self.start
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_service_is_named_with_its_start_command() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address: &'static str = Box::leak(format!("127.0.0.1:{port}").into_boxed_str());
        let absent = Service {
            name: "Test broker",
            address,
            start: "test-broker --start",
        };
        assert_eq!(
            absent.missing("t").unwrap(),
            format!(
                "t: skipped: Test broker is not running on {address} (start it with \
                 `test-broker --start`; INOTIFIER_REQUIRE_SERVICES=1 makes this a failure)"
            )
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address: &'static str =
            Box::leak(listener.local_addr().unwrap().to_string().into_boxed_str());
        let running = Service { address, ..absent };
        assert_eq!(running.missing("t"), None);
        assert!(running.available("t"));
    }
}
