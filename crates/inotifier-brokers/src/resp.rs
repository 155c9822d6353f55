//! A minimal synchronous Redis client (RESP2): connect with AUTH and SELECT, and pipelines of
//! commands (all written at once, then all replies read).
//!
//! # Failures
//! Every failure of the connection is an outage ([`ProcessError::outage`]): the daemon waits
//! it out, retrying with backoff and without counting attempts, and [`crate::link::Link`]
//! connects again on the next try. That covers a server that cannot be reached, a connection
//! closed or reset, no reply within the timeout, and bytes that are not a Redis reply (the
//! connection cannot be trusted to be in step any more).
//!
//! A refused password, or a database the server does not have, is an outage too, on purpose:
//! it is fixed by an operator (the URL in the daemon's environment), not by the events, so
//! none of them is given up (dead-lettered) meanwhile; the message says what to fix, and the
//! daemon delivers everything once the URL is right and the daemon restarted.
//!
//! An error reply (`-ERR ...`) to a command is not a failure of the connection: it is
//! returned in place, as [`Reply::Error`], for the caller to judge.
//!
//! The reader never panics on what the network sends: lengths are bounded, nesting is
//! bounded, and anything malformed is an error.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use inotifier_sinks::ProcessError;

use crate::link::Link;
use crate::url::BrokerUrl;

/// The longest bulk string read: Redis's own default limit (`proto-max-bulk-len`).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// The longest status, error or length line read: generous for error messages, small
/// enough that a peer sending garbage without a newline cannot exhaust memory.
const MAX_LINE: usize = 64 * 1024;

/// How deeply arrays may nest in a reply: Redis's replies to the commands a client sends
/// nest a few levels; the bound keeps hostile input from exhausting the stack.
const MAX_DEPTH: usize = 32;

/// How many elements are reserved up front for an array: its announced length is not
/// trusted for an allocation.
const MAX_PREALLOCATED: usize = 1024;

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

    /// Appends the command to `out` as Redis reads it: an array of bulk strings.
    pub fn encode(&self, out: &mut Vec<u8>) {
        push_header(out, b'*', self.args.len());
        for arg in &self.args {
            push_header(out, b'$', arg.len());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, length: usize) {
    out.push(kind);
    out.extend_from_slice(length.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
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

impl Reply {
    /// The error reply's text, when this is one.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(message) => Some(message),
            _ => None,
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("not a Redis reply: {0}")]
    Malformed(String),
}

/// Reads one reply from `reader`, however its bytes arrive.
pub fn read_reply(reader: &mut impl BufRead) -> Result<Reply, ReadError> {
    read_nested(reader, 0)
}

fn read_nested(reader: &mut impl BufRead, depth: usize) -> Result<Reply, ReadError> {
    let line = read_line(reader)?;
    let Some((&kind, rest)) = line.split_first() else {
        return Err(ReadError::Malformed("an empty line".into()));
    };
    match kind {
        b'+' => Ok(Reply::Status(String::from_utf8_lossy(rest).into_owned())),
        b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
        b':' => parse_integer(rest).map(Reply::Integer),
        b'$' => {
            let Some(length) = parse_length(rest, MAX_BULK, "bulk string")? else {
                return Ok(Reply::Bulk(None));
            };
            let mut data = vec![0; length + 2];
            reader.read_exact(&mut data).map_err(eof_is_closed)?;
            if !data.ends_with(b"\r\n") {
                return Err(ReadError::Malformed(format!(
                    "a bulk string of {length} bytes not followed by CRLF"
                )));
            }
            data.truncate(length);
            Ok(Reply::Bulk(Some(data)))
        }
        b'*' => {
            let Some(count) = parse_length(rest, usize::MAX, "array")? else {
                return Ok(Reply::Array(None));
            };
            if depth >= MAX_DEPTH {
                return Err(ReadError::Malformed(format!(
                    "arrays nested more than {MAX_DEPTH} deep"
                )));
            }
            let mut items = Vec::with_capacity(count.min(MAX_PREALLOCATED));
            for _ in 0..count {
                items.push(read_nested(reader, depth + 1)?);
            }
            Ok(Reply::Array(Some(items)))
        }
        other => Err(ReadError::Malformed(format!(
            "unknown reply type {:?}",
            char::from(other)
        ))),
    }
}

/// A line without its CRLF.
fn read_line(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut line = Vec::new();
    // One byte more than allowed tells a line too long from one exactly at the limit.
    let read = Read::take(&mut *reader, MAX_LINE as u64 + 2).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Err(ReadError::Closed);
    }
    if !line.ends_with(b"\n") {
        return Err(if line.len() > MAX_LINE {
            ReadError::Malformed(format!("a line longer than {MAX_LINE} bytes"))
        } else {
            ReadError::Closed
        });
    }
    if !line.ends_with(b"\r\n") {
        return Err(ReadError::Malformed("a line ending without CR".into()));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_integer(text: &[u8]) -> Result<i64, ReadError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| {
            ReadError::Malformed(format!(
                "{:?} is not an integer",
                String::from_utf8_lossy(text)
            ))
        })
}

/// A length of at most `max`, or `None` for -1 (the null bulk string or array).
fn parse_length(text: &[u8], max: usize, what: &str) -> Result<Option<usize>, ReadError> {
    match parse_integer(text)? {
        -1 => Ok(None),
        length => usize::try_from(length)
            .ok()
            .filter(|&length| length <= max)
            .map(Some)
            .ok_or_else(|| ReadError::Malformed(format!("{what} of length {length}"))),
    }
}

fn eof_is_closed(error: io::Error) -> ReadError {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        ReadError::Closed
    } else {
        ReadError::Io(error)
    }
}

/// The database number of a `redis://` URL: its path, `0` when empty.
pub fn database(url: &BrokerUrl) -> Result<u32, String> {
    if url.path.is_empty() {
        return Ok(0);
    }
    url.path.parse::<u32>().map_err(|_| {
        format!(
            "the path of a Redis URL is the database number, such as redis://host:6379/0, \
             not {:?}",
            url.path
        )
    })
}

/// A connection to one Redis server.
pub struct RedisConnection {
    /// The server, for messages: its URL without the password.
    server: String,
    timeout: Duration,
    /// Replies are read through the buffer; commands are written to the stream under it.
    stream: BufReader<TcpStream>,
    /// The commands of a pipeline, encoded; kept to reuse its allocation.
    out: Vec<u8>,
    /// Pipelines sent since the handshake.
    pipelines: u64,
    /// Whether the last failure was the server not answering in time (rather than the
    /// connection breaking).
    timed_out: bool,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`), authenticates and
    /// selects the database; `timeout` bounds connecting and each read or write. Every
    /// failure is an outage (see the module docs); a refused password says to fix the URL in
    /// the environment variable of the daemon that holds it.
    pub fn connect(url: &BrokerUrl, timeout: Duration) -> Result<RedisConnection, ProcessError> {
        RedisConnection::connect_from(
            url,
            "the environment variable of the daemon that holds it",
            timeout,
        )
    }

    /// [`RedisConnection::connect`], where `url_origin` says where the URL came from (such as
    /// "the environment variable REDIS_URL"), for the message of a refused password.
    pub fn connect_from(
        url: &BrokerUrl,
        url_origin: &str,
        timeout: Duration,
    ) -> Result<RedisConnection, ProcessError> {
        let server = url.to_string();
        let database = database(url)
            .map_err(|error| ProcessError::outage(format!("Redis {server}: {error}")))?;
        let stream = open(url, &server, timeout)?;
        let mut connection = RedisConnection {
            server,
            timeout,
            stream: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::new(),
            pipelines: 0,
            timed_out: false,
        };
        connection.handshake(url, url_origin, database)?;
        connection.pipelines = 0;
        Ok(connection)
    }

    /// AUTH, SELECT and a PING, in one round trip: the PING proves the server speaks Redis
    /// and, without a password, that it needs none (it answers `NOAUTH` otherwise).
    fn handshake(
        &mut self,
        url: &BrokerUrl,
        url_origin: &str,
        database: u32,
    ) -> Result<(), ProcessError> {
        let mut commands = Vec::new();
        let authenticates = url.password.is_some();
        if let Some(password) = &url.password {
            let mut auth = Command::new("AUTH");
            if let Some(user) = &url.user {
                auth = auth.arg(user);
            }
            commands.push(auth.arg(password));
        }
        if database != 0 {
            commands.push(Command::new("SELECT").arg(database.to_string()));
        }
        commands.push(Command::new("PING"));
        let replies = self.pipeline(&commands)?;
        for (command, reply) in commands.iter().zip(&replies) {
            let Some(error) = reply.error() else {
                continue;
            };
            let server = &self.server;
            let message = match command.args[0].as_slice() {
                b"AUTH" => format!(
                    "Redis {server} refused the user and password of its URL ({error}): put \
                     the right URL in {url_origin} and restart the daemon; events wait until \
                     then"
                ),
                b"SELECT" => format!(
                    "Redis {server} has no database {database} ({error}): fix the database \
                     number of its URL"
                ),
                _ if !authenticates && error.starts_with("NOAUTH") => format!(
                    "Redis {server} requires a password ({error}): put the URL with its \
                     password in {url_origin} and restart the daemon; events wait until then"
                ),
                _ => format!("Redis {server} answered {error}"),
            };
            return Err(ProcessError::outage(message));
        }
        Ok(())
    }

    /// The server, as its URL without the password.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// How many pipelines were sent since connecting: 0 on a fresh connection.
    pub fn pipelines(&self) -> u64 {
        self.pipelines
    }

    /// Whether the last pipeline failed because the server did not answer within the
    /// timeout: it may still be working on the commands.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Sends `commands` in one write and reads their replies, in order. A broken connection
    /// is an outage.
    pub fn pipeline(&mut self, commands: &[Command]) -> Result<Vec<Reply>, ProcessError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        self.pipelines += 1;
        self.out.clear();
        for command in commands {
            command.encode(&mut self.out);
        }
        if let Err(error) = self.stream.get_mut().write_all(&self.out) {
            return Err(self.broken("sending", ReadError::Io(error)));
        }
        // A large pipeline leaves a large buffer: keep a moderate one for the next.
        if self.out.capacity() > 1024 * 1024 {
            self.out = Vec::new();
        }
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            match read_reply(&mut self.stream) {
                Ok(reply) => replies.push(reply),
                Err(error) => return Err(self.broken("reading a reply", error)),
            }
        }
        Ok(replies)
    }

    fn broken(&mut self, doing: &str, error: ReadError) -> ProcessError {
        self.timed_out = matches!(
            &error,
            ReadError::Io(error)
                if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
        );
        let what = if self.timed_out {
            format!("no answer within {:?}", self.timeout)
        } else {
            error.to_string()
        };
        ProcessError::outage(format!("Redis {}: {doing}: {what}", self.server))
    }
}

/// A TCP connection to the first of the URL's addresses that answers.
fn open(url: &BrokerUrl, server: &str, timeout: Duration) -> Result<TcpStream, ProcessError> {
    let addresses: Vec<SocketAddr> = url
        .address()
        .to_socket_addrs()
        .map_err(|error| {
            ProcessError::outage(format!(
                "Redis {server}: cannot resolve {}: {error}",
                url.host
            ))
        })?
        .collect();
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, timeout) {
            Ok(stream) => {
                let configured = stream
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| stream.set_write_timeout(Some(timeout)))
                    // Each pipeline is one write: nothing is gained by delaying it.
                    .and_then(|()| stream.set_nodelay(true));
                match configured {
                    Ok(()) => return Ok(stream),
                    Err(error) => last_error = Some((address, error)),
                }
            }
            Err(error) => last_error = Some((address, error)),
        }
    }
    Err(ProcessError::outage(match last_error {
        Some((address, error)) => format!("Redis {server}: cannot connect to {address}: {error}"),
        None => format!("Redis {server}: {} has no address", url.host),
    }))
}

/// Sends `commands` as one pipeline on `link`'s connection. A connection that worked before
/// and breaks now may have been closed while idle (a Redis restart): it is replaced and the
/// pipeline sent once more at once, rather than after the retry delay. Commands Redis
/// executed before the break are executed again (delivery is at least once). A Redis that did
/// not answer in time may still be working: it is not sent more at once.
pub fn send(
    link: &Link<RedisConnection>,
    commands: &[Command],
) -> Result<Vec<Reply>, ProcessError> {
    let mut send_again = false;
    let result = link.with(|connection| {
        let used = connection.pipelines() > 0;
        let result = connection.pipeline(commands);
        send_again = result.is_err() && used && !connection.timed_out();
        result
    });
    match result {
        Err(error) if error.outage && send_again => {
            link.with(|connection| connection.pipeline(commands))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(commands: &[Command]) -> Vec<u8> {
        let mut out = Vec::new();
        for command in commands {
            command.encode(&mut out);
        }
        out
    }

    /// A reader handing out at most `step` bytes per read, as a network may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn replies(data: &[u8], step: usize) -> Result<Vec<Reply>, ReadError> {
        let mut reader = BufReader::with_capacity(step.max(1), Trickle { data, step });
        let mut replies = Vec::new();
        while !reader.fill_buf()?.is_empty() {
            replies.push(read_reply(&mut reader)?);
        }
        Ok(replies)
    }

    const EVERY_KIND: &[u8] = b"+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\r\nl\r\n$-1\r\n$0\r\n\r\n\
        *2\r\n*1\r\n:1\r\n$1\r\nx\r\n*-1\r\n*0\r\n";

    fn every_kind() -> Vec<Reply> {
        vec![
            Reply::Status("OK".into()),
            Reply::Error("ERR wrong".into()),
            Reply::Integer(-42),
            Reply::Bulk(Some(b"he\r\nl".to_vec())),
            Reply::Bulk(None),
            Reply::Bulk(Some(Vec::new())),
            Reply::Array(Some(vec![
                Reply::Array(Some(vec![Reply::Integer(1)])),
                Reply::Bulk(Some(b"x".to_vec())),
            ])),
            Reply::Array(None),
            Reply::Array(Some(Vec::new())),
        ]
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let commands = [
            Command::new("XADD")
                .arg("s")
                .arg("*")
                .arg("f")
                .arg(b"a\r\nb"),
            Command::new("PING"),
            Command::new("SET").arg("k").arg(""),
        ];
        assert_eq!(
            encoded(&commands),
            b"*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nf\r\n$4\r\na\r\nb\r\n\
              *1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn every_kind_of_reply_is_read_however_the_bytes_arrive() {
        for step in [1, 2, 3, 7, 4096] {
            assert_eq!(
                replies(EVERY_KIND, step).unwrap(),
                every_kind(),
                "step {step}"
            );
        }
    }

    #[test]
    fn a_reply_cut_short_is_a_closed_connection() {
        for end in 1..EVERY_KIND.len() {
            let cut = &EVERY_KIND[..end];
            match replies(cut, 3) {
                Ok(read) => assert!(every_kind().starts_with(&read), "cut at {end}"),
                Err(ReadError::Closed) => {}
                Err(other) => panic!("cut at {end}: {other}"),
            }
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        for (data, why) in [
            (&b"?what\r\n"[..], "unknown reply type"),
            (b"+OK\n", "without CR"),
            (b":12a\r\n", "not an integer"),
            (b"$-2\r\n", "length -2"),
            (b"$3\r\nabcd\r\n", "not followed by CRLF"),
            (b"*-5\r\n", "length -5"),
            (b"$999999999999\r\n", "length 999999999999"),
            (b"\r\n", "an empty line"),
        ] {
            let error = replies(data, 2).unwrap_err();
            assert!(
                matches!(error, ReadError::Malformed(_)) && error.to_string().contains(why),
                "{:?}: {error}",
                String::from_utf8_lossy(data)
            );
        }
        let long = [b"+".repeat(MAX_LINE + 10), b"\r\n".to_vec()].concat();
        assert!(
            replies(&long, 4096)
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(
            replies(&deep, 4096)
                .unwrap_err()
                .to_string()
                .contains("nested")
        );
        // A huge announced array is not allocated up front: it just runs out of data.
        assert!(matches!(
            replies(b"*4000000000\r\n:1\r\n", 4096),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn the_database_is_the_path() {
        let parse = |text| BrokerUrl::parse(text, &[("redis", 6379)]).unwrap();
        assert_eq!(database(&parse("redis://h")), Ok(0));
        assert_eq!(database(&parse("redis://h/")), Ok(0));
        assert_eq!(database(&parse("redis://h/3")), Ok(3));
        let error = database(&parse("redis://h/cache")).unwrap_err();
        assert!(error.contains("database number"), "{error}");
    }
}
