//! One connection to a broker, made when first needed and made again after it broke: the
//! processors' reconnection.

use std::sync::Mutex;

use inotifier_sinks::ProcessError;

/// A lazily opened connection of type `C`, shared by the daemon's workers (one at a time).
pub struct Link<C> {
    /// The broker, for messages (a URL without its password).
    what: String,
    connect: Box<dyn Fn() -> Result<C, ProcessError> + Send + Sync>,
    connection: Mutex<Option<C>>,
}

impl<C> Link<C> {
    pub fn new(
        what: impl Into<String>,
        connect: impl Fn() -> Result<C, ProcessError> + Send + Sync + 'static,
    ) -> Link<C> {
        Link {
            what: what.into(),
            connect: Box::new(connect),
            connection: Mutex::new(None),
        }
    }

    /// Runs `work` on the connection, connecting first when there is none. A failure marked
    /// [`ProcessError::outage`] (the connection broke, or none could be made) closes the
    /// connection, so that the next call connects again.
    pub fn with<T>(
        &self,
        work: impl FnOnce(&mut C) -> Result<T, ProcessError>,
    ) -> Result<T, ProcessError> {
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let connection = (self.connect)()?;
            tracing::info!(broker = %self.what, "connected");
            *slot = Some(connection);
        }
        let connection = slot.as_mut().expect("connected above");
        let result = work(connection);
        if let Err(error) = &result
            && error.outage
        {
            tracing::warn!(broker = %self.what, "connection closed: {error}");
            *slot = None;
        }
        result
    }

    /// Closes the connection after `error` broke it (found outside [`Link::with`], such as a
    /// batch that partly succeeded), so that the next call connects again.
    pub fn broken(&self, error: &ProcessError) {
        tracing::warn!(broker = %self.what, "connection closed: {error}");
        self.close();
    }

    /// Closes the connection, if any (the daemon stops).
    pub fn close(&self) {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    pub fn what(&self) -> &str {
        &self.what
    }
}

/// The text of `error` with its causes, as far as they add to it: the libraries' `Display` of a
/// failed connection often leaves out the part an operator needs (the TLS alert, the
/// certificate's fault).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
