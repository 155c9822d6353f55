//! Readiness and state reports to systemd (`Type=notify`), through `$NOTIFY_SOCKET`.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;

/// Where to send `sd_notify` messages; taken from the environment once, before any thread
/// starts, so the programs `exec` runs do not inherit it and talk to systemd in our name.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and removes it from the environment.
    ///
    /// # Safety
    /// Changes the environment: call it before starting any thread.
    pub unsafe fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty());
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        Notifier { socket }
    }

    pub fn disabled() -> Notifier {
        Notifier { socket: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `message` (lines such as `READY=1`); a missing socket is not an error.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let address = match socket.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None => SocketAddr::from_pathname(PathBuf::from(socket))?,
        };
        let datagram = UnixDatagram::unbound()?;
        datagram.send_to_addr(message.as_bytes(), &address)?;
        Ok(())
    }

    /// Reports a message, logging rather than failing: systemd going away must not stop us.
    pub fn report(&self, message: &str) {
        if let Err(error) = self.send(message) {
            tracing::warn!("cannot notify systemd ({message:?}): {error}");
        }
    }
}
