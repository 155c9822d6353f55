//! The inotifier daemon as a library: configuration, routing of events to processors, and the
//! process lifecycle (foreground under systemd, or daemonized with a locked pid file). The
//! `inotifier` binary and the Django app both run on it.

pub mod config;

pub use config::{Config, DaemonSettings, ProcessorConfig, WatchConfig};
