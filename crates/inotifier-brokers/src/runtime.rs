//! The async runtime of the clients that need one (`async-nats`, `lapin`), private to this
//! crate: the processors stay synchronous and block on it.
//!
//! It is made on first use, which is a processor's first connection: after the daemon
//! forked into the background, never before (a runtime's threads do not survive a fork). One
//! worker thread runs every connection's I/O; the daemon's worker threads wait on their own
//! futures with [`block_on`].

use std::future::Future;
use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("inotifier-brokers-io")
            .enable_all()
            .build()
            .expect("the brokers' runtime: a thread and an epoll instance")
    })
}

/// Runs `future` to its end on the brokers' runtime, blocking the calling thread (a thread
/// of the daemon's, not one of the runtime's). Public for this crate's tests only: the rest of
/// the daemon never sees the runtime.
#[doc(hidden)]
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Whether the runtime was made (by a first connection). For tests.
#[doc(hidden)]
pub fn started() -> bool {
    RUNTIME.get().is_some()
}
