//! A minimal synchronous Redis client (RESP2): connect with AUTH and SELECT, and pipelines of
//! commands (all written at once, then all replies read).
//!
//! STUB: to be written (see the API below).

use std::time::Duration;

use inotifier_sinks::ProcessError;

use crate::url::BrokerUrl;

/// One command: its arguments, the first being the command name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub args: Vec<Vec<u8>>,
}

impl Command {
    pub fn new(name: &str) -> Command {
        Command {
            args: vec![name.as_bytes().to_vec()],
        }
    }

    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Command {
        self.args.push(arg.as_ref().to_vec());
        self
    }
}

/// A reply. An error reply (`-ERR ...`) is a reply, not a failure of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// A connection to one Redis server.
pub struct RedisConnection {}

impl RedisConnection {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`), authenticates and
    /// selects the database; `timeout` bounds connecting and each reply. Failures are outages,
    /// but for a refused password, whose message names the fix.
    pub fn connect(url: &BrokerUrl, timeout: Duration) -> Result<RedisConnection, ProcessError> {
        let _ = (url, timeout);
        Err(ProcessError::outage("not written yet"))
    }

    /// Sends `commands` in one write and reads their replies, in order. A broken connection
    /// is an outage.
    pub fn pipeline(&mut self, commands: &[Command]) -> Result<Vec<Reply>, ProcessError> {
        let _ = commands;
        Err(ProcessError::outage("not written yet"))
    }
}
