//! The inotifier daemon as a library: configuration, routing of events to processors, and the
//! process lifecycle (foreground under systemd, or daemonized with a locked pid file). The
//! `inotifier` binary and the Django app both run on it.
//!
//! - [`Daemon`]: the engine, the ready detector and the router, set up from a [`Config`] and
//!   reloaded in place.
//! - [`lifecycle::run`]: a foreground daemon: pid file, readiness (systemd `READY=1`),
//!   SIGHUP reload, SIGTERM/SIGINT drain.
//! - [`daemonize::daemonize`]: the double fork of `inotifier start`.
//! - [`control`]: `stop` and `status` from outside, through the pid file.

pub mod config;
pub mod control;
mod covered;
mod daemon;
pub mod daemonize;
pub mod doctor;
pub mod health;
pub mod identity;
mod journal;
mod keeper;
pub mod lifecycle;
mod metrics;
pub mod notify;
pub mod pidfile;
mod pipeline;
pub mod processors;
pub mod report;
mod router;
pub mod stats;
pub mod status;

pub use config::{
    Config, DaemonSettings, FirstStart, JournalSettings, MetricsSettings, ProcessorConfig,
    WatchConfig,
};
pub use daemon::{Daemon, DaemonError, NativeProcessors, ProcessorFactory, ReloadSummary};
pub use keeper::hold_back_settling;
