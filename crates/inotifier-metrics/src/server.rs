//! `GET /metrics` on the `[metrics] listen` address, from a thread of its own.
//!
//! tiny_http reads each request on its own connection threads and hands this thread complete
//! requests; answering one costs the event path nothing but the atomics it reads. A scrape
//! first runs `refresh` (the gauges that need a query: the journal's backlog on a connection of
//! its own, the kernel's watch count), then writes every series.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::{CONTENT_TYPE, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "metrics: cannot listen on {address}: {reason} (another process has the port, or the \
         address is not this machine's: choose another with [metrics] listen)"
    )]
    Listen { address: SocketAddr, reason: String },
    #[error("metrics: cannot start the server's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Sets the gauges that are read when a scrape comes.
pub type Refresh = Box<dyn Fn(&Metrics) + Send>;

/// The running endpoint; dropping it closes the socket and ends the thread.
pub struct MetricsServer {
    server: Arc<Server>,
    address: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `address` (port 0: one the kernel picks, see [`MetricsServer::address`]) and
    /// serves `metrics`, calling `refresh` before each scrape.
    pub fn start(
        address: SocketAddr,
        metrics: Arc<Metrics>,
        refresh: Refresh,
    ) -> Result<MetricsServer, MetricsError> {
        let server = Server::http(address).map_err(|error| MetricsError::Listen {
            address,
            reason: error.to_string(),
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(address);
        let server = Arc::new(server);
        let thread = {
            let server = server.clone();
            std::thread::Builder::new()
                .name("inotifier-metrics".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        answer(request, &metrics, &refresh);
                    }
                })
                .map_err(MetricsError::Thread)?
        };
        tracing::info!("metrics: serving http://{bound}/metrics");
        Ok(MetricsServer {
            server,
            address: bound,
            thread: Some(thread),
        })
    }

    /// Where it listens: the port the kernel chose for port 0.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn answer(request: Request, metrics: &Metrics, refresh: &Refresh) {
    let path = request.url().split('?').next().unwrap_or("");
    let response = match (request.method(), path) {
        (Method::Get | Method::Head, "/metrics") => {
            refresh(metrics);
            Response::from_string(metrics.encode())
                .with_header(header("Content-Type", CONTENT_TYPE))
        }
        (Method::Get | Method::Head, "/") => Response::from_string(
            "inotifier: the metrics are at /metrics (Prometheus text format)\n",
        )
        .with_header(header("Content-Type", "text/plain; charset=utf-8")),
        (Method::Get | Method::Head, _) => {
            Response::from_string("not found: the metrics are at /metrics\n").with_status_code(404)
        }
        _ => Response::from_string("only GET and HEAD\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD")),
    };
    // tiny_http leaves out the body of an answer to HEAD. A client that went away: nothing to
    // tell it.
    let _ = request.respond(response);
}
