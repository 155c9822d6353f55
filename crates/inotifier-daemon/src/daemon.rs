//! A running set of watches: the engine, the pipeline and the router, configured from a
//! [`Config`] and reconfigured in place by [`Daemon::reload`].

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotifier_core::{BackendChoice, Engine, EngineOptions, RescanObserver, WatchId, WatchSpec};
use inotifier_journal::{Journal, JournalError, JournalLock, JournalOptions};
use inotifier_metrics::{Degradation, Metrics};
use inotifier_sinks::{BuildContext, Processor};

use crate::config::FirstStart;
use crate::config::{Config, WatchConfig};
use crate::covered::Journaled;
use crate::health::Health;
use crate::keeper::{self, Keeper, Tracked, TrackedWatches};
use crate::pipeline::{self, Pipeline, SharedPipeline};
use crate::router::{Abandoner, Cursor, Route, Router};
use crate::stats::{Snapshot, Stats};
use crate::status::WatchReport;

/// Builds the processor of a watch. The binary builds native processors; the Django app also
/// builds Python ones.
pub trait ProcessorFactory: Send + Sync {
    fn build(
        &self,
        watch: &WatchConfig,
        context: &BuildContext<'_>,
    ) -> Result<Arc<dyn Processor>, String>;
}

/// The processors inotifier runs natively (see [`crate::processors`]).
pub struct NativeProcessors;

impl ProcessorFactory for NativeProcessors {
    fn build(
        &self,
        watch: &WatchConfig,
        context: &BuildContext<'_>,
    ) -> Result<Arc<dyn Processor>, String> {
        crate::processors::build(&watch.processor.kind, &watch.processor.options, *context)
            .map_err(|error| error.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot start the engine: {0}")]
    Engine(#[source] inotifier_core::Error),
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: std::path::PathBuf,
        #[source]
        source: inotifier_core::Error,
    },
    #[error("processor {processor} of watch {path}: {message}")]
    Processor {
        path: std::path::PathBuf,
        processor: String,
        message: String,
    },
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("{0}")]
    Journal(#[from] JournalError),
}

struct ActiveWatch {
    config: WatchConfig,
    id: WatchId,
    /// What its backend came to when it was added (`inotify`, `poll`, `inotify+poll`).
    backend: &'static str,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

pub struct Daemon {
    engine: Arc<Engine>,
    pipeline: SharedPipeline,
    timer_thread: Option<JoinHandle<()>>,
    abandoner: Abandoner,
    stats: Arc<Stats>,
    health: Arc<Health>,
    active: Vec<ActiveWatch>,
    factory: Arc<dyn ProcessorFactory>,
    config: Config,
    journal: Option<Arc<Journal>>,
    /// Held for the daemon's life: one daemon per journal.
    journal_lock: Option<JournalLock>,
    keeper: Option<Keeper>,
    /// The watches whose snapshot the journal keeps (catch-up on).
    tracked: TrackedWatches,
    metrics: Arc<Metrics>,
}

impl Daemon {
    /// Starts the engine and every watch of `config`; returns once all of them are in place.
    pub fn start(
        config: Config,
        factory: Arc<dyn ProcessorFactory>,
    ) -> Result<Daemon, DaemonError> {
        Daemon::start_with_metrics(config, factory, Arc::new(Metrics::new()))
    }

    /// [`Daemon::start`], counting into `metrics` (which a [`inotifier_metrics::MetricsServer`]
    /// may serve).
    pub fn start_with_metrics(
        config: Config,
        factory: Arc<dyn ProcessorFactory>,
        metrics: Arc<Metrics>,
    ) -> Result<Daemon, DaemonError> {
        let stats = Arc::new(Stats::default());
        let health = Arc::new(Health::default());
        let router = Router::new(
            config.daemon.workers,
            config.daemon.queue_capacity,
            stats.clone(),
            health.clone(),
        );
        let abandoner = router.abandoner();
        let journal = match &config.journal.path {
            Some(path) => {
                // First: a second daemon on this journal must not even read it.
                let lock = JournalLock::acquire(path)?;
                let options = JournalOptions {
                    retain: config.journal.retain,
                    ..JournalOptions::new(path)
                };
                let journal = Arc::new(Journal::open(&options)?);
                tracing::info!(
                    "journal {}: events from id {} on",
                    path.display(),
                    journal.next_event_id()
                );
                Some((journal, lock))
            }
            None => None,
        };
        let (journal, journal_lock) = journal.unzip();
        let first_id = journal
            .as_ref()
            .map_or(1, |journal| journal.next_event_id());
        let pipeline = Pipeline::shared(router, first_id, health.clone());
        let engine_options = EngineOptions {
            on_rescan: {
                let metrics = metrics.clone();
                RescanObserver::new(move |took| metrics.rescan_took(took))
            },
            ..EngineOptions::default()
        };
        let engine = Engine::start_with_sink(engine_options, pipeline::sink(pipeline.clone()))
            .map_err(DaemonError::Engine)?;
        let engine = Arc::new(engine);
        let timer_thread = pipeline::spawn_timers(pipeline.clone()).map_err(DaemonError::Thread)?;
        let mut daemon = Daemon {
            engine,
            pipeline,
            timer_thread: Some(timer_thread),
            abandoner,
            stats,
            health,
            active: Vec::new(),
            factory,
            config: Config {
                watches: Vec::new(),
                ..config.clone()
            },
            journal,
            journal_lock,
            keeper: None,
            tracked: TrackedWatches::default(),
            metrics,
        };
        for watch in &config.watches {
            match daemon.add(watch) {
                Ok(active) => daemon.active.push(active),
                Err(error) => {
                    // Nothing was delivered yet that needs draining; end the threads.
                    daemon.stop(Instant::now() + Duration::from_secs(1));
                    return Err(error);
                }
            }
        }
        daemon.config = config;
        if let Some(journal) = &daemon.journal {
            daemon.keeper = Some(
                Keeper::start(
                    journal.clone(),
                    daemon.pipeline.clone(),
                    daemon.engine.clone(),
                    daemon.tracked.clone(),
                )
                .map_err(DaemonError::Thread)?,
            );
        }
        Ok(daemon)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn counters(&self) -> Snapshot {
        self.stats.snapshot()
    }

    /// What makes the daemon degraded now (see [`crate::health`]).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.health.problems();
        problems.extend(self.engine.gaps().describe());
        problems
    }

    /// Directories and files the kernel watches for us.
    pub fn kernel_watches(&self) -> usize {
        self.engine.watch_count().unwrap_or(0)
    }

    /// What makes the daemon degraded now, in numbers (for the metrics).
    pub fn degradation(&self) -> Degradation {
        let gaps = self.engine.gaps();
        Degradation {
            problems: self.problems().len(),
            reading_paused: self.health.holds(crate::journal::HEALTH_KEY)
                || self
                    .health
                    .count_prefix(crate::router::READING_HEALTH_PREFIX)
                    > 0,
            journal_unreadable: self
                .health
                .count_prefix(crate::router::JOURNAL_READ_HEALTH_PREFIX),
            roots_missing: gaps.lost_roots.len(),
            out_of_watches: gaps.out_of_watches,
            path_too_long: gaps.too_long,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Each watch with its counters, in the configuration's order.
    pub fn watch_reports(&self) -> Vec<WatchReport> {
        self.active
            .iter()
            .map(|active| {
                let key = active.config.key();
                WatchReport {
                    counters: self.metrics.watch(&key).counters(),
                    key,
                    path: active.config.path.clone(),
                    processor: active.config.processor.kind.clone(),
                    backend: active.backend.into(),
                }
            })
            .collect()
    }

    fn base_dir(&self) -> &Path {
        self.config
            .source
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"))
    }

    fn add(&self, watch: &WatchConfig) -> Result<ActiveWatch, DaemonError> {
        let context = BuildContext {
            base_dir: self.base_dir(),
            journal: self.journal.as_ref().map(|journal| journal.instance()),
        };
        let processor =
            self.factory
                .build(watch, &context)
                .map_err(|message| DaemonError::Processor {
                    path: watch.path.clone(),
                    processor: watch.processor.kind.clone(),
                    message,
                })?;
        let spec = watch.spec();
        let backend = BackendChoice::of(&spec).summary();
        // A reload that changes a watch adds the new one while the old one, of the same key,
        // still delivers: its pending events are in flight, and its changes are being
        // journaled, so neither redelivery nor catch-up is due.
        let replacing = self
            .active
            .iter()
            .any(|active| active.config.key() == watch.key());
        let (id, caught_up) = self.add_to_engine(watch, spec, replacing)?;
        let cursor = match &self.journal {
            Some(journal) => Some(Cursor {
                journal: journal.clone(),
                processor: journal.processor(&watch.key())?,
            }),
            None => None,
        };
        let route = Route {
            watch: id,
            path: watch.path.clone(),
            processor_name: watch.processor.kind.clone(),
            processor,
            events: watch.events,
            retry: watch.retry.clone(),
            cursor: cursor.clone(),
            metrics: self.metrics.watch(&watch.key()),
        };
        let ready = watch
            .events
            .contains(inotifier_core::Mask::IN_READY)
            .then(|| watch.ready.clone());
        // What the journal still owes this processor goes first; a watch replacing one of
        // the same key in a reload leaves it to the one it replaces.
        let owed = match cursor.as_ref().filter(|_| !replacing) {
            Some(cursor) => cursor.journal.pending_count(cursor.processor)?,
            None => 0,
        };
        if owed > 0 {
            tracing::info!(
                "{owed} event(s) pending since the last run redelivered to {}",
                watch.key()
            );
        }
        let journaled = match (&cursor, caught_up) {
            // Only spares duplicates: a journal that cannot say leaves catch-up as it was.
            (Some(cursor), true) => match self.journaled_since_snapshot(cursor, &watch.key()) {
                Ok(journaled) => Some(journaled),
                Err(error) => {
                    tracing::warn!(
                        "cannot read what the journal holds of {} ({error}): catch-up may \
                         report again changes delivered before the stop",
                        watch.key()
                    );
                    None
                }
            },
            _ => None,
        };
        pipeline::register(
            &self.pipeline,
            route,
            ready,
            (owed > 0).then_some(0),
            journaled,
        )
        .map_err(DaemonError::Thread)?;
        tracing::info!(
            "watching {} for {} with processor {}",
            watch.path.display(),
            watch.events.name(),
            watch.processor.kind
        );
        Ok(ActiveWatch {
            config: watch.clone(),
            id,
            backend,
        })
    }

    /// Adds the watch to the engine. With catch-up, against the snapshot the journal kept of
    /// it: what changed while the daemon was down is reported first. The first start of a
    /// watch records its snapshot (and reports nothing, unless `first_start = "report"`), as
    /// does a watch `replacing` a running one of the same key.
    fn add_to_engine(
        &self,
        watch: &WatchConfig,
        spec: WatchSpec,
        replacing: bool,
    ) -> Result<(WatchId, bool), DaemonError> {
        let engine_error = |source| DaemonError::Watch {
            path: watch.path.clone(),
            source,
        };
        let journal = match &self.journal {
            Some(journal) if self.config.journal.catch_up => journal,
            _ => {
                return Ok((self.engine.add_watch(spec).map_err(engine_error)?, false));
            }
        };
        let caught_up = !replacing && journal.snapshot_saved_ns(&watch.key())?.is_some();
        let key = watch.key();
        let baseline = match replacing {
            true => None,
            false => journal.load_snapshot(&key)?,
        };
        let id = match baseline {
            Some(baseline) => {
                tracing::info!(
                    "catching up on {}: comparing it with its snapshot of {} entries",
                    watch.path.display(),
                    baseline.len()
                );
                self.engine
                    .add_watch_with_baseline(spec, baseline)
                    .map_err(engine_error)?
            }
            None if !replacing && self.config.journal.first_start == FirstStart::Report => {
                tracing::info!(
                    "first start on {}: reporting every entry as created",
                    watch.path.display()
                );
                self.engine
                    .add_watch_with_baseline(spec, Vec::new())
                    .map_err(engine_error)?
            }
            None => {
                let id = self.engine.add_watch(spec).map_err(engine_error)?;
                let snapshot = self.engine.snapshot(id).map_err(engine_error)?;
                journal.replace_snapshot(&key, &snapshot)?;
                tracing::info!(
                    "first start on {}: its snapshot of {} entries is recorded",
                    watch.path.display(),
                    snapshot.len()
                );
                id
            }
        };
        keeper::lock(&self.tracked).push(Tracked::new(id, key, watch.path.clone()));
        Ok((id, caught_up))
    }

    /// What the journal holds for `cursor` from a while before the snapshot of `key` was last
    /// saved: the changes catch-up need not report again (see [`crate::covered`]).
    fn journaled_since_snapshot(
        &self,
        cursor: &Cursor,
        key: &str,
    ) -> Result<Journaled, DaemonError> {
        /// Entries are saved only once settled: some journaled a little before the last save
        /// may be missing from it.
        const BEFORE_SAVE_NS: i64 = 60_000_000_000;
        let Some(saved) = cursor.journal.snapshot_saved_ns(key)? else {
            return Ok(Journaled::new(&[]));
        };
        let events = cursor
            .journal
            .journaled_since(cursor.processor, saved - BEFORE_SAVE_NS)?;
        Ok(Journaled::new(&events))
    }

    fn remove(&self, active: &ActiveWatch) {
        keeper::lock(&self.tracked).retain(|tracked| tracked.id != active.id);
        pipeline::lock(&self.pipeline).unregister(active.id);
        if let Err(error) = self.engine.remove_watch(active.id) {
            tracing::warn!(
                "removing the watch on {}: {error}",
                active.config.path.display()
            );
        }
        tracing::info!("stopped watching {}", active.config.path.display());
    }

    /// Applies a new configuration: watches that did not change keep running untouched (no
    /// event of theirs is lost), new and changed ones are added before removed and replaced
    /// ones go, so a changed watch has no gap either. If any new watch cannot be set up, the
    /// reload is undone and the old configuration keeps running.
    pub fn reload(&mut self, config: Config) -> Result<ReloadSummary, DaemonError> {
        if config.daemon != self.config.daemon {
            tracing::warn!(
                "the [daemon] settings changed; they take effect at the next restart, only the \
                 watches are reloaded"
            );
        }
        let mut summary = ReloadSummary::default();
        let mut added = Vec::new();
        for watch in &config.watches {
            if self.active.iter().any(|active| &active.config == watch) {
                continue;
            }
            match self.add(watch) {
                Ok(active) => added.push(active),
                Err(error) => {
                    for active in &added {
                        self.remove(active);
                    }
                    return Err(error);
                }
            }
            if self
                .active
                .iter()
                .any(|active| active.config.path == watch.path)
            {
                summary.changed += 1;
            } else {
                summary.added += 1;
            }
        }
        let (kept, gone): (Vec<ActiveWatch>, Vec<ActiveWatch>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|active| config.watches.contains(&active.config));
        summary.unchanged = kept.len();
        for active in &gone {
            self.remove(active);
            let key = active.config.key();
            // A changed watch keeps its key, and so its series.
            if !config.watches.iter().any(|watch| watch.key() == key) {
                self.metrics.remove_watch(&key);
            }
        }
        summary.removed = gone.len().saturating_sub(summary.changed);
        self.active = kept;
        self.active.extend(added);
        self.config = Config {
            daemon: self.config.daemon.clone(),
            ..config
        };
        Ok(summary)
    }

    /// Stops reading, then lets the processors finish what was read, until `deadline`. Returns
    /// whether every event read was delivered (or failed for good) in time.
    pub fn stop(self, deadline: Instant) -> bool {
        let Daemon {
            engine,
            pipeline,
            timer_thread,
            abandoner,
            journal,
            journal_lock,
            keeper,
            ..
        } = self;
        if let Some(keeper) = &keeper {
            keeper.finish(deadline);
        }
        // The reader may be blocked feeding a full worker queue: past the deadline, make the
        // workers give up so that it can finish.
        engine.stopper().stop();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let joiner = std::thread::spawn(move || {
            // The keeper, its last round waiting on the engine at worst, ends once the engine
            // stopped; then this is the only handle.
            if let Some(keeper) = keeper {
                keeper.join();
            }
            let result = match Arc::try_unwrap(engine) {
                Ok(engine) => engine.wait(),
                Err(_) => Ok(()),
            };
            let _ = done_tx.send(result);
        });
        let timeout = deadline.saturating_duration_since(Instant::now());
        let engine_result = match done_rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => {
                abandoner.abandon();
                done_rx.recv().unwrap_or(Ok(()))
            }
        };
        let _ = joiner.join();
        if let Err(error) = engine_result {
            tracing::error!("the engine stopped with an error: {error}");
        }
        if let Some(thread) = timer_thread {
            pipeline::stop_timers(&pipeline, thread);
        }
        let router = pipeline::lock(&pipeline).take_router();
        let complete = match router {
            Some(router) => router.drain(deadline),
            None => true,
        };
        if let Some(journal) = journal
            && let Err(error) = journal.flush()
        {
            tracing::error!(
                "the last acknowledgements could not be written to the journal ({error}): \
                 the next start delivers those events again"
            );
        }
        drop(journal_lock);
        complete
    }
}
