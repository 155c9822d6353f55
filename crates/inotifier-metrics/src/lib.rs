//! The metrics of a running daemon, in the Prometheus text format, and the endpoint that serves
//! them ([`MetricsServer`], `[metrics] listen`).
//!
//! The series (see docs/metrics.md for their meaning):
//!
//! | series | type | labels |
//! | --- | --- | --- |
//! | `inotifier_events_total` | counter | `watch`, `origin` (kernel, scan, rescan, catchup) |
//! | `inotifier_deliveries_total` | counter | `watch`, `outcome` (delivered, retried, failed, dead) |
//! | `inotifier_delivery_duration_seconds` | histogram | `watch` |
//! | `inotifier_journal_pending`, `inotifier_dead_letters` | gauge | `watch` |
//! | `inotifier_journal_oldest_pending_age_seconds` | gauge | `watch` |
//! | `inotifier_kernel_watches`, `inotifier_kernel_watches_limit` | gauge | |
//! | `inotifier_queue_overflows_total`, `inotifier_rescans_total` | counter | `watch` |
//! | `inotifier_rescan_duration_seconds` | histogram | |
//! | `inotifier_ready` | gauge | |
//! | `inotifier_degraded`, `inotifier_reading_paused` | gauge (0 or 1) | |
//! | `inotifier_journal_unreadable_processors`, `inotifier_watched_roots_missing` | gauge | |
//! | `inotifier_unwatched_directories` | gauge | `reason` (out_of_watches, path_too_long) |
//! | `inotifier_build_info` | gauge (1) | `version` |
//! | `process_*` | the standard process series | |
//!
//! The `prometheus` crate keeps the registry and writes the text format, with its collector of
//! the `process_*` series; nothing of the exposition is ours. The event path only adds to
//! atomics: each watch's series are looked up once, when the watch starts ([`WatchMetrics`]),
//! and the gauges that need a query (the journal's backlog, the kernel's watches) are set by the
//! server's own thread just before it answers a scrape.

mod server;

use std::time::Duration;

use inotifier_core::Origin;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::{Deserialize, Serialize};

pub use server::{MetricsError, MetricsServer};

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// From half a millisecond (a jsonl append) to a minute (a webhook's timeouts and retries).
const DELIVERY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// From a small tree (a millisecond) to millions of files (minutes).
const RESCAN_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Every series of one daemon, in a registry of its own (several daemons may run in one
/// process: the tests, a Django test suite).
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    deliveries: IntCounterVec,
    delivery_duration: HistogramVec,
    journal_pending: IntGaugeVec,
    dead_letters: IntGaugeVec,
    oldest_pending_age: GaugeVec,
    kernel_watches: IntGauge,
    kernel_watches_limit: IntGauge,
    overflows: IntCounterVec,
    rescans: IntCounterVec,
    rescan_duration: Histogram,
    ready: IntGauge,
    degraded: IntGauge,
    reading_paused: IntGauge,
    journal_unreadable: IntGauge,
    roots_missing: IntGauge,
    unwatched: IntGaugeVec,
}

/// What makes the daemon degraded, in numbers (its `status` says it in words).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Degradation {
    /// Every condition held.
    pub problems: usize,
    /// Reading from the kernel stopped: the journal cannot be written, or a processor's queue
    /// is full.
    pub reading_paused: bool,
    /// Processors whose owed events the journal cannot read.
    pub journal_unreadable: usize,
    /// Watched paths gone, waiting to come back.
    pub roots_missing: usize,
    /// Directories left unwatched for want of inotify watches (retried).
    pub out_of_watches: usize,
    /// Directories whose path is longer than PATH_MAX.
    pub path_too_long: usize,
}

/// What the journal owes one watch (its processor), for the backlog gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog {
    pub watch: String,
    pub pending: u64,
    pub dead: u64,
    /// How long the oldest pending event has waited; `None` when nothing is pending.
    pub oldest_pending_age: Option<Duration>,
}

fn registered<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("each series is registered once, under a name of its own");
    metric
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid series"),
    )
}

fn gauges(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    registered(
        registry,
        IntGaugeVec::new(Opts::new(name, help), &["watch"]).expect("valid series"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(registry, IntGauge::new(name, help).expect("valid series"))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let build_info = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "inotifier_build_info",
                    "The running inotifier's version (always 1).",
                ),
                &["version"],
            )
            .expect("valid series"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Linux only, which is all inotifier runs on; a process whose /proc cannot be read
        // just lacks these series.
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Metrics {
            events: counters(
                &registry,
                "inotifier_events_total",
                "Events routed to each watch, by origin: read from the kernel, or synthesized by a \
                 scan of a new directory, an overflow rescan or the catch-up after a restart.",
                &["watch", "origin"],
            ),
            deliveries: counters(
                &registry,
                "inotifier_deliveries_total",
                "Deliveries to each watch's processor, by outcome: delivered; retried (an attempt \
                 failed and is tried again); failed (given up, no journal to keep it); dead (given \
                 up and dead-lettered in the journal).",
                &["watch", "outcome"],
            ),
            delivery_duration: registered(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "inotifier_delivery_duration_seconds",
                        "How long each call of a watch's processor took: a call carries a batch \
                         of events; the retries of a failed event are not in it.",
                    )
                    .buckets(DELIVERY_BUCKETS.to_vec()),
                    &["watch"],
                )
                .expect("valid series"),
            ),
            journal_pending: gauges(
                &registry,
                "inotifier_journal_pending",
                "Events the journal holds for each watch's processor that it has not acknowledged.",
            ),
            dead_letters: gauges(
                &registry,
                "inotifier_dead_letters",
                "Events given up on and kept in the journal, for `inotifier journal retry`.",
            ),
            oldest_pending_age: registered(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "inotifier_journal_oldest_pending_age_seconds",
                        "How long the oldest pending event of each watch has waited (0 when none \
                         is pending): how far behind its delivery is.",
                    ),
                    &["watch"],
                )
                .expect("valid series"),
            ),
            kernel_watches: gauge(
                &registry,
                "inotifier_kernel_watches",
                "Directories and files the kernel watches for this daemon.",
            ),
            kernel_watches_limit: gauge(
                &registry,
                "inotifier_kernel_watches_limit",
                "The kernel's limit of watches per user (/proc/sys/fs/inotify/max_user_watches).",
            ),
            overflows: counters(
                &registry,
                "inotifier_queue_overflows_total",
                "Kernel queue overflows (IN_Q_OVERFLOW) that concerned each watch.",
                &["watch"],
            ),
            rescans: counters(
                &registry,
                "inotifier_rescans_total",
                "Rescans of each watched tree after an overflow, which report what the kernel \
                 dropped.",
                &["watch"],
            ),
            rescan_duration: registered(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "inotifier_rescan_duration_seconds",
                        "How long each overflow rescan of every watched tree took.",
                    )
                    .buckets(RESCAN_BUCKETS.to_vec()),
                )
                .expect("valid series"),
            ),
            ready: gauge(
                &registry,
                "inotifier_ready",
                "1 once every watch is in place, 0 while the daemon starts or reloads.",
            ),
            degraded: gauge(
                &registry,
                "inotifier_degraded",
                "1 while something makes the daemon degraded (`inotifier status` says what).",
            ),
            reading_paused: gauge(
                &registry,
                "inotifier_reading_paused",
                "1 while reading from the kernel is stopped: the journal cannot be written (a \
                 full disk), or a processor's queue is full.",
            ),
            journal_unreadable: gauge(
                &registry,
                "inotifier_journal_unreadable_processors",
                "Processors whose owed events the journal cannot read (a damaged journal).",
            ),
            roots_missing: gauge(
                &registry,
                "inotifier_watched_roots_missing",
                "Watched paths that are gone, watched again once they are back.",
            ),
            unwatched: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "inotifier_unwatched_directories",
                        "Directories of the watched trees the kernel does not watch: out of \
                         inotify watches (retried every second), or paths longer than PATH_MAX.",
                    ),
                    &["reason"],
                )
                .expect("valid series"),
            ),
            registry,
        }
    }

    /// The series of the watch `name` (its key in the journal), looked up once.
    pub fn watch(&self, name: &str) -> WatchMetrics {
        let origin = |origin: Origin| self.events.with_label_values(&[name, origin.as_str()]);
        let outcome = |outcome: &str| self.deliveries.with_label_values(&[name, outcome]);
        WatchMetrics {
            events: [
                origin(Origin::Kernel),
                origin(Origin::Scan),
                origin(Origin::Rescan),
                origin(Origin::CatchUp),
            ],
            delivered: outcome("delivered"),
            retried: outcome("retried"),
            failed: outcome("failed"),
            dead: outcome("dead"),
            call_duration: self.delivery_duration.with_label_values(&[name]),
            overflows: self.overflows.with_label_values(&[name]),
            rescans: self.rescans.with_label_values(&[name]),
        }
    }

    /// Drops the series of a watch a reload removed.
    pub fn remove_watch(&self, name: &str) {
        for origin in [
            Origin::Kernel,
            Origin::Scan,
            Origin::Rescan,
            Origin::CatchUp,
        ] {
            let _ = self.events.remove_label_values(&[name, origin.as_str()]);
        }
        for outcome in ["delivered", "retried", "failed", "dead"] {
            let _ = self.deliveries.remove_label_values(&[name, outcome]);
        }
        let _ = self.delivery_duration.remove_label_values(&[name]);
        let _ = self.overflows.remove_label_values(&[name]);
        let _ = self.rescans.remove_label_values(&[name]);
    }

    pub fn rescan_took(&self, duration: Duration) {
        self.rescan_duration.observe(duration.as_secs_f64());
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn set_degradation(&self, now: Degradation) {
        self.degraded.set(i64::from(now.problems > 0));
        self.reading_paused.set(i64::from(now.reading_paused));
        self.journal_unreadable
            .set(saturating(now.journal_unreadable as u64));
        self.roots_missing.set(saturating(now.roots_missing as u64));
        self.unwatched
            .with_label_values(&["out_of_watches"])
            .set(saturating(now.out_of_watches as u64));
        self.unwatched
            .with_label_values(&["path_too_long"])
            .set(saturating(now.path_too_long as u64));
    }

    pub fn set_kernel_watches(&self, in_place: usize, limit: Option<u64>) {
        self.kernel_watches.set(saturating(in_place as u64));
        if let Some(limit) = limit {
            self.kernel_watches_limit.set(saturating(limit));
        }
    }

    /// The journal's backlog, one row per processor key it knows (a watch removed from the
    /// configuration keeps its row while the journal still owes it events).
    pub fn set_backlog(&self, rows: &[Backlog]) {
        self.journal_pending.reset();
        self.dead_letters.reset();
        self.oldest_pending_age.reset();
        for row in rows {
            let label = [row.watch.as_str()];
            self.journal_pending
                .with_label_values(&label)
                .set(saturating(row.pending));
            self.dead_letters
                .with_label_values(&label)
                .set(saturating(row.dead));
            let age = row.oldest_pending_age.unwrap_or_default();
            self.oldest_pending_age
                .with_label_values(&label)
                .set(age.as_secs_f64());
        }
    }

    /// Every series, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|error| format!("# the metrics could not be encoded: {error}\n"))
    }
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One watch's series: what its event path adds to.
#[derive(Clone)]
pub struct WatchMetrics {
    /// By [`Origin`]: kernel, scan, rescan, catchup.
    events: [IntCounter; 4],
    delivered: IntCounter,
    retried: IntCounter,
    failed: IntCounter,
    dead: IntCounter,
    call_duration: Histogram,
    overflows: IntCounter,
    rescans: IntCounter,
}

fn index(origin: Origin) -> usize {
    match origin {
        Origin::Kernel => 0,
        Origin::Scan => 1,
        Origin::Rescan => 2,
        Origin::CatchUp => 3,
    }
}

impl WatchMetrics {
    pub fn event(&self, origin: Origin) {
        self.events[index(origin)].inc();
    }

    pub fn delivered(&self, count: usize) {
        self.delivered.inc_by(count as u64);
    }

    pub fn retried(&self) {
        self.retried.inc();
    }

    /// Given up; `dead_lettered` when a journal keeps it.
    pub fn given_up(&self, dead_lettered: bool) {
        if dead_lettered {
            self.dead.inc();
        } else {
            self.failed.inc();
        }
    }

    pub fn call_took(&self, duration: Duration) {
        self.call_duration.observe(duration.as_secs_f64());
    }

    /// The kernel queue overflowed; the rescan that follows covers this watch.
    pub fn overflowed(&self) {
        self.overflows.inc();
        self.rescans.inc();
    }

    /// The counters now, for the status file (`inotifier status --json`).
    pub fn counters(&self) -> WatchCounters {
        WatchCounters {
            events: EventCounts {
                kernel: self.events[0].get(),
                scan: self.events[1].get(),
                rescan: self.events[2].get(),
                catchup: self.events[3].get(),
            },
            delivered: self.delivered.get(),
            retried: self.retried.get(),
            failed: self.failed.get(),
            dead: self.dead.get(),
            overflows: self.overflows.get(),
            rescans: self.rescans.get(),
        }
    }
}

/// One watch's counters since the daemon started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCounters {
    pub events: EventCounts,
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
    pub dead: u64,
    pub overflows: u64,
    pub rescans: u64,
}

/// Events by origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    pub kernel: u64,
    pub scan: u64,
    pub rescan: u64,
    pub catchup: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find(|line| line.starts_with(series))
    }

    #[test]
    fn a_watchs_series_count_what_it_is_given_and_go_when_it_is_removed() {
        let metrics = Metrics::new();
        let uploads = metrics.watch("uploads");
        uploads.event(Origin::Kernel);
        uploads.event(Origin::Kernel);
        uploads.event(Origin::CatchUp);
        uploads.delivered(3);
        uploads.retried();
        uploads.given_up(true);
        uploads.overflowed();
        uploads.call_took(Duration::from_millis(3));
        let text = metrics.encode();
        assert_eq!(
            line(
                &text,
                r#"inotifier_events_total{origin="kernel",watch="uploads"}"#
            ),
            Some(r#"inotifier_events_total{origin="kernel",watch="uploads"} 2"#)
        );
        assert!(text.contains(r#"inotifier_deliveries_total{outcome="dead",watch="uploads"} 1"#));
        assert!(text.contains(r#"inotifier_queue_overflows_total{watch="uploads"} 1"#));
        assert!(
            text.contains(
                r#"inotifier_delivery_duration_seconds_bucket{watch="uploads",le="0.005"} 1"#
            ),
            "{text}"
        );
        assert_eq!(uploads.counters().events.catchup, 1);
        assert_eq!(uploads.counters().delivered, 3);

        metrics.remove_watch("uploads");
        assert!(!metrics.encode().contains(r#"watch="uploads""#));
    }

    #[test]
    fn the_backlog_replaces_the_last_one() {
        let metrics = Metrics::new();
        metrics.set_backlog(&[Backlog {
            watch: "old".into(),
            pending: 5,
            dead: 1,
            oldest_pending_age: Some(Duration::from_secs(90)),
        }]);
        assert!(
            metrics
                .encode()
                .contains(r#"inotifier_journal_oldest_pending_age_seconds{watch="old"} 90"#)
        );
        metrics.set_backlog(&[Backlog {
            watch: "new".into(),
            pending: 0,
            dead: 0,
            oldest_pending_age: None,
        }]);
        let text = metrics.encode();
        assert!(!text.contains(r#"watch="old""#), "{text}");
        assert!(text.contains(r#"inotifier_journal_pending{watch="new"} 0"#));
    }

    #[test]
    fn two_daemons_in_one_process_have_registries_of_their_own() {
        let (first, second) = (Metrics::new(), Metrics::new());
        first.watch("a").delivered(1);
        assert!(!second.encode().contains(r#"watch="a""#));
        assert!(first.encode().contains("inotifier_build_info{version="));
        assert!(first.encode().contains("process_resident_memory_bytes"));
    }
}
