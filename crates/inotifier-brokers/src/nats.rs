//! A minimal synchronous NATS client: CONNECT, publishing with headers, and the replies to
//! an inbox. STUB: to be written.
