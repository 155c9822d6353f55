//! The daemon library on real inotify and real files: routing, order per file, concurrency
//! across files, backpressure, retries, reload and drain. The processors here are real
//! processors written for the test: they record what they get.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use inotifier_core::ready::ReadyOptions;
use inotifier_core::{Event, Filters, Mask};
use inotifier_daemon::{
    Config, Daemon, DaemonSettings, JournalSettings, ProcessorConfig, ProcessorFactory, WatchConfig,
};
use inotifier_sinks::{BatchOutcome, BuildContext, ProcessError, Processor, RetryPolicy};
use inotifier_test_support::{inotify_shared, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

/// What a recording processor saw, shared with the test.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<Event>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// The size of every batch the router handed over.
    batches: Mutex<Vec<usize>>,
}

impl Log {
    fn names(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect()
    }

    fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

/// Blocks callers while closed.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn closed() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
}

struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// How the recording processor behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Fail this many times per event (retryable) before succeeding.
    failures_per_event: usize,
    /// Only events whose name contains this fail as `failures_per_event` says.
    flaky_only: Option<String>,
    /// Fail every event whose name contains this, without retry.
    permanent_for: Option<String>,
    /// Panic on events whose name contains this.
    panic_for: Option<String>,
    /// Wait this long in every call.
    delay: Duration,
    gate: Option<Arc<Gate>>,
    /// Hold each call until this many calls are in flight at once (or a deadline passed).
    rendezvous: usize,
}

struct Recorder {
    log: Arc<Log>,
    behaviour: Behaviour,
    attempts: Mutex<HashMap<PathBuf, usize>>,
}

impl Processor for Recorder {
    fn process(&self, event: &Event) -> Result<(), ProcessError> {
        let now = self.log.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let result = self.behave(event);
        self.log.in_flight.fetch_sub(1, Ordering::SeqCst);
        if result.is_ok() {
            self.log.events.lock().unwrap().push(event.clone());
        }
        result
    }

    fn process_batch(&self, events: &[&Event], go_on: &dyn Fn(usize) -> bool) -> BatchOutcome {
        self.log.batches.lock().unwrap().push(events.len());
        for (done, event) in events.iter().enumerate() {
            if !go_on(done) {
                return BatchOutcome::stopped(done);
            }
            if let Err(error) = self.process(event) {
                return BatchOutcome::failed(done, error);
            }
        }
        BatchOutcome::all(events.len())
    }
}

impl Recorder {
    fn behave(&self, event: &Event) -> Result<(), ProcessError> {
        let name = event.name.to_string_lossy();
        if let Some(gate) = &self.behaviour.gate {
            gate.pass();
        }
        if self.behaviour.rendezvous > 1 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.log.in_flight.load(Ordering::SeqCst) < self.behaviour.rendezvous
                && self.log.max_in_flight.load(Ordering::SeqCst) < self.behaviour.rendezvous
                && Instant::now() < deadline
            {
                std::thread::yield_now();
            }
        }
        std::thread::sleep(self.behaviour.delay);
        if let Some(word) = &self.behaviour.panic_for
            && name.contains(word.as_str())
        {
            panic!("told to panic on {name}");
        }
        if let Some(word) = &self.behaviour.permanent_for
            && name.contains(word.as_str())
        {
            return Err(ProcessError::permanent(format!("refusing {name}")));
        }
        if let Some(word) = &self.behaviour.flaky_only
            && !name.contains(word.as_str())
        {
            return Ok(());
        }
        let mut attempts = self.attempts.lock().unwrap();
        let seen = attempts.entry(event.pathname()).or_default();
        *seen += 1;
        if *seen <= self.behaviour.failures_per_event {
            return Err(ProcessError::retryable(format!("attempt {seen} fails")));
        }
        Ok(())
    }
}

/// Builds a recorder per processor kind `record:<label>`, keeping each one's log.
#[derive(Default)]
struct Recorders {
    behaviours: Mutex<HashMap<String, Behaviour>>,
    logs: Mutex<HashMap<String, Arc<Log>>>,
}

impl Recorders {
    fn with(self: &Arc<Self>, label: &str, behaviour: Behaviour) -> Arc<Self> {
        self.behaviours
            .lock()
            .unwrap()
            .insert(label.to_string(), behaviour);
        self.clone()
    }

    fn log(&self, label: &str) -> Arc<Log> {
        self.logs
            .lock()
            .unwrap()
            .entry(label.to_string())
            .or_default()
            .clone()
    }
}

impl ProcessorFactory for Recorders {
    fn build(
        &self,
        watch: &WatchConfig,
        _: &BuildContext<'_>,
    ) -> Result<Arc<dyn Processor>, String> {
        let label = watch
            .processor
            .kind
            .strip_prefix("record:")
            .ok_or_else(|| format!("unknown processor {}", watch.processor.kind))?;
        let behaviour = self
            .behaviours
            .lock()
            .unwrap()
            .get(label)
            .cloned()
            .unwrap_or_default();
        Ok(Arc::new(Recorder {
            log: self.log(label),
            behaviour,
            attempts: Mutex::default(),
        }))
    }
}

fn settings(dir: &Path, workers: usize, queue_capacity: usize) -> DaemonSettings {
    DaemonSettings {
        pid_file: dir.join("inotifier.pid"),
        stdout: None,
        stderr: None,
        log_level: tracing::Level::INFO,
        drain_timeout: Duration::from_secs(10),
        workers,
        queue_capacity,
    }
}

fn watch(path: &Path, events: Mask, label: &str) -> WatchConfig {
    WatchConfig {
        name: None,
        path: path.to_path_buf(),
        events,
        processor: ProcessorConfig {
            kind: format!("record:{label}"),
            options: Default::default(),
        },
        recursive: true,
        auto_add: true,
        filters: Filters::default(),
        backend: Default::default(),
        poll_interval: inotifier_core::DEFAULT_POLL_INTERVAL,
        ready: ReadyOptions::default(),
        retry: RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            multiplier: 2.0,
        },
    }
}

fn config(daemon: DaemonSettings, watches: Vec<WatchConfig>) -> Config {
    Config {
        source: None,
        journal: JournalSettings::disabled(),
        daemon,
        metrics: Default::default(),
        watches,
    }
}

#[track_caller]
fn wait_for(condition: impl FnMut() -> bool) {
    assert!(
        wait_until(DEADLINE, condition),
        "condition not met within {DEADLINE:?}"
    );
}

fn stop(daemon: Daemon) -> bool {
    daemon.stop(Instant::now() + Duration::from_secs(20))
}

#[test]
fn events_of_one_file_stay_in_order_while_files_run_concurrently() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let recorders = Arc::new(Recorders::default()).with(
        "order",
        Behaviour {
            rendezvous: 2,
            ..Default::default()
        },
    );
    let daemon = Daemon::start(
        config(
            settings(dir.path(), 4, 64),
            vec![watch(&watched, Mask::IN_MODIFY, "order")],
        ),
        recorders.clone(),
    )
    .unwrap();
    let files = 6;
    let writes = 40;
    let mut handles: Vec<std::fs::File> = (0..files)
        .map(|i| std::fs::File::create(watched.join(format!("f{i}"))).unwrap())
        .collect();
    for round in 0..writes {
        for handle in &mut handles {
            use std::io::Write;
            handle.write_all(format!("{round}\n").as_bytes()).unwrap();
        }
    }
    let log = recorders.log("order");
    // The kernel merges identical consecutive events of one file, so count files, not writes:
    // each must have had at least one modify, and the last write of each must be in.
    wait_for(|| {
        let names = log.names();
        (0..files).all(|i| names.contains(&format!("f{i}")))
    });
    assert!(stop(daemon));
    let events = log.events.lock().unwrap();
    let mut by_file: HashMap<String, Vec<u64>> = HashMap::new();
    for event in events.iter() {
        by_file
            .entry(event.name.to_string_lossy().into_owned())
            .or_default()
            .push(event.id);
    }
    for (file, ids) in &by_file {
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "events of {file} processed out of order: {ids:?}"
        );
    }
    assert!(
        log.max_in_flight.load(Ordering::SeqCst) >= 2,
        "different files were never processed at the same time"
    );
}

#[test]
fn a_slow_processor_holds_back_reading_instead_of_queueing_without_bound() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let gate = Gate::closed();
    let recorders = Arc::new(Recorders::default()).with(
        "slow",
        Behaviour {
            gate: Some(gate.clone()),
            ..Default::default()
        },
    );
    let (workers, capacity) = (2, 8);
    let daemon = Daemon::start(
        config(
            settings(dir.path(), workers, capacity),
            vec![watch(&watched, Mask::IN_CREATE, "slow")],
        ),
        recorders.clone(),
    )
    .unwrap();
    // Opened however the test ends (dropped before the daemon): a daemon dropped with its
    // workers stuck would never stop.
    let _open_at_end = OpenOnDrop(gate.clone());
    let files = 3000;
    for i in 0..files {
        std::fs::write(watched.join(format!("f{i:05}")), b"x").unwrap();
    }
    // Everything the router accepted is in a processor (blocked at the gate) or in a queue:
    // nothing else is buffered.
    let bound = workers * capacity;
    wait_for(|| daemon.counters().seen as usize >= capacity);
    let accepted = daemon.counters().seen as usize;
    assert!(
        accepted <= bound,
        "{accepted} events accepted with every worker blocked; at most {bound} may wait"
    );
    // Without a journal the reader waits, and the status says so (issue 20, point 8).
    wait_for(|| {
        daemon
            .problems()
            .iter()
            .any(|problem| problem.starts_with("reading paused: processor record:slow"))
    });
    gate.open();
    // Whatever the kernel queue dropped meanwhile, the overflow rescan reports: every file
    // reaches the processor.
    let log = recorders.log("slow");
    wait_for(|| {
        let names: std::collections::HashSet<String> = log.names().into_iter().collect();
        (0..files).all(|i| names.contains(&format!("f{i:05}")))
    });
    wait_for(|| daemon.problems().is_empty());
    assert!(stop(daemon));
}

#[test]
fn failures_are_retried_and_never_stop_the_daemon() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let recorders = Arc::new(Recorders::default()).with(
        "flaky",
        Behaviour {
            failures_per_event: 2,
            permanent_for: Some("refuse".into()),
            panic_for: Some("boom".into()),
            ..Default::default()
        },
    );
    let daemon = Daemon::start(
        config(
            settings(dir.path(), 2, 16),
            vec![watch(&watched, Mask::IN_CREATE, "flaky")],
        ),
        recorders.clone(),
    )
    .unwrap();
    for name in ["refuse-me", "boom-1", "first", "boom-2", "second"] {
        std::fs::write(watched.join(name), b"x").unwrap();
    }
    let log = recorders.log("flaky");
    wait_for(|| {
        let names = log.names();
        names.contains(&"first".into()) && names.contains(&"second".into())
    });
    wait_for(|| daemon.counters().failed == 3);
    let counters = daemon.counters();
    // Two retryable failures each for "first" and "second", none for the permanent and the
    // panicking ones.
    assert_eq!(counters.retried, 4, "{counters:?}");
    assert_eq!(counters.delivered, 2, "{counters:?}");
    assert!(
        !log.names()
            .iter()
            .any(|n| n.contains("refuse") || n.contains("boom"))
    );
    // Still alive after the panics: a new file is processed.
    std::fs::write(watched.join("third"), b"x").unwrap();
    wait_for(|| log.names().contains(&"third".into()));
    assert!(stop(daemon));
}

#[test]
fn queued_events_go_in_batches_and_a_failure_inside_one_is_retried_in_place() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let gate = Gate::closed();
    let _open = OpenOnDrop(gate.clone());
    let recorders = Arc::new(Recorders::default()).with(
        "batched",
        Behaviour {
            failures_per_event: 2,
            flaky_only: Some("f05".into()),
            gate: Some(gate.clone()),
            ..Default::default()
        },
    );
    // One worker: every event queues behind the first, held at the gate.
    let daemon = Daemon::start(
        config(
            settings(dir.path(), 1, 64),
            vec![watch(&watched, Mask::IN_CREATE, "batched")],
        ),
        recorders.clone(),
    )
    .unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
    for name in &names {
        std::fs::File::create(watched.join(name)).unwrap();
    }
    wait_for(|| daemon.counters().seen == 20);
    gate.open();
    let log = recorders.log("batched");
    wait_for(|| log.count() == 20);
    // In order, f05 included at its place: its two failures were retried before f06 was tried.
    assert_eq!(log.names(), names);
    let counters = daemon.counters();
    assert_eq!(
        (counters.delivered, counters.retried),
        (20, 2),
        "{counters:?}"
    );
    let batches = log.batches.lock().unwrap().clone();
    assert!(
        batches.len() <= 4 && batches.iter().any(|&size| size >= 10),
        "one call per event instead of batches: {batches:?}"
    );
    assert_eq!(counters.batches, batches.len() as u64);
    assert!(stop(daemon));
}

#[test]
fn events_a_watch_did_not_ask_for_are_not_routed_to_it() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let recorders = Arc::new(Recorders::default());
    let daemon = Daemon::start(
        config(
            settings(dir.path(), 2, 16),
            vec![
                watch(&watched, Mask::IN_DELETE, "deletes"),
                watch(&watched, Mask::IN_CREATE, "creates"),
            ],
        ),
        recorders.clone(),
    )
    .unwrap();
    std::fs::write(watched.join("a"), b"x").unwrap();
    std::fs::remove_file(watched.join("a")).unwrap();
    std::fs::write(watched.join("marker"), b"x").unwrap();
    let creates = recorders.log("creates");
    let deletes = recorders.log("deletes");
    wait_for(|| creates.names().contains(&"marker".into()));
    wait_for(|| deletes.count() == 1);
    assert!(stop(daemon));
    let masks =
        |log: &Log| -> Vec<Mask> { log.events.lock().unwrap().iter().map(|e| e.mask).collect() };
    assert_eq!(masks(&creates), vec![Mask::IN_CREATE, Mask::IN_CREATE]);
    assert_eq!(masks(&deletes), vec![Mask::IN_DELETE]);
}

#[test]
fn reload_keeps_unchanged_watches_without_losing_events() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let [kept, removed, added] = ["kept", "removed", "added"].map(|name| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        path
    });
    let recorders = Arc::new(Recorders::default());
    let daemon_settings = settings(dir.path(), 2, 64);
    let mut daemon = Daemon::start(
        config(
            daemon_settings.clone(),
            vec![
                watch(&kept, Mask::IN_CREATE, "kept"),
                watch(&removed, Mask::IN_CREATE, "removed"),
            ],
        ),
        recorders.clone(),
    )
    .unwrap();
    let kernel_watches_before = daemon.kernel_watches();

    // Files keep appearing in the kept watch while the configuration changes underneath.
    let stop_writing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let kept = kept.clone();
        let stop_writing = stop_writing.clone();
        std::thread::spawn(move || {
            let mut written = 0;
            while !stop_writing.load(Ordering::SeqCst) || written < 200 {
                std::fs::write(kept.join(format!("k{written:05}")), b"x").unwrap();
                written += 1;
            }
            written
        })
    };
    for round in 0..5 {
        let watches = if round % 2 == 0 {
            vec![
                watch(&kept, Mask::IN_CREATE, "kept"),
                watch(&added, Mask::IN_CREATE, "added"),
            ]
        } else {
            vec![
                watch(&kept, Mask::IN_CREATE, "kept"),
                watch(&removed, Mask::IN_CREATE, "removed"),
            ]
        };
        let summary = daemon
            .reload(config(daemon_settings.clone(), watches))
            .unwrap();
        assert_eq!(summary.unchanged, 1, "{summary:?}");
        assert_eq!(summary.added, 1, "{summary:?}");
        assert_eq!(summary.removed, 1, "{summary:?}");
    }
    // Ends with `added` watched and `removed` not.
    let summary = daemon
        .reload(config(
            daemon_settings.clone(),
            vec![
                watch(&kept, Mask::IN_CREATE, "kept"),
                watch(&added, Mask::IN_CREATE, "added"),
            ],
        ))
        .unwrap();
    assert_eq!(summary.unchanged, 2);
    stop_writing.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();

    // A path that does not exist: rejected, and the running watches stay.
    let error = daemon
        .reload(config(
            daemon_settings.clone(),
            vec![
                watch(&kept, Mask::IN_CREATE, "kept"),
                watch(&dir.path().join("missing"), Mask::IN_CREATE, "missing"),
            ],
        ))
        .unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
    assert_eq!(daemon.config().watches.len(), 2);

    std::fs::write(added.join("in-added"), b"x").unwrap();
    std::fs::write(removed.join("in-removed"), b"x").unwrap();
    std::fs::write(kept.join("z-last"), b"x").unwrap();
    let kept_log = recorders.log("kept");
    let added_log = recorders.log("added");
    wait_for(|| kept_log.names().contains(&"z-last".into()));
    wait_for(|| added_log.names().contains(&"in-added".into()));
    assert_eq!(daemon.kernel_watches(), kernel_watches_before);
    assert!(stop(daemon));
    let names: std::collections::HashSet<String> = kept_log.names().into_iter().collect();
    let lost: Vec<usize> = (0..written)
        .filter(|i| !names.contains(&format!("k{i:05}")))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {written} events lost across reloads: {lost:?}",
        lost.len()
    );
    assert!(
        !recorders
            .log("removed")
            .names()
            .contains(&"in-removed".into())
    );
}

#[test]
fn a_changed_watch_is_replaced_without_a_gap() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let recorders = Arc::new(Recorders::default());
    let daemon_settings = settings(dir.path(), 2, 64);
    let mut daemon = Daemon::start(
        config(
            daemon_settings.clone(),
            vec![watch(&watched, Mask::IN_CREATE, "w")],
        ),
        recorders.clone(),
    )
    .unwrap();
    let summary = daemon
        .reload(config(
            daemon_settings,
            vec![watch(&watched, Mask::IN_CREATE | Mask::IN_DELETE, "w")],
        ))
        .unwrap();
    assert_eq!(
        (
            summary.changed,
            summary.added,
            summary.removed,
            summary.unchanged
        ),
        (1, 0, 0, 0)
    );
    std::fs::write(watched.join("a"), b"x").unwrap();
    std::fs::remove_file(watched.join("a")).unwrap();
    let log = recorders.log("w");
    wait_for(|| {
        log.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.mask == Mask::IN_DELETE)
    });
    assert!(stop(daemon));
    let masks: Vec<Mask> = log.events.lock().unwrap().iter().map(|e| e.mask).collect();
    assert_eq!(masks, vec![Mask::IN_CREATE, Mask::IN_DELETE]);
}

#[test]
fn stopping_delivers_what_was_read_within_the_deadline_and_gives_up_after_it() {
    let _lock = inotify_shared();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let files = 40;
    let slow = Behaviour {
        delay: Duration::from_millis(10),
        ..Default::default()
    };

    // Enough time: every event read before the stop is delivered.
    let recorders = Arc::new(Recorders::default()).with("slow", slow.clone());
    let daemon = Daemon::start(
        config(
            settings(dir.path(), 1, 1024),
            vec![watch(&watched, Mask::IN_CREATE, "slow")],
        ),
        recorders.clone(),
    )
    .unwrap();
    for i in 0..files {
        std::fs::write(watched.join(format!("a{i}")), b"x").unwrap();
    }
    wait_for(|| daemon.counters().seen == files);
    let log = recorders.log("slow");
    assert!(
        log.count() < files as usize,
        "the processor was not slow enough to test a drain"
    );
    assert!(daemon.stop(Instant::now() + Duration::from_secs(20)));
    assert_eq!(log.count(), files as usize);

    // Too little time: the stop returns soon after its deadline and says so.
    let recorders = Arc::new(Recorders::default()).with(
        "stuck",
        Behaviour {
            delay: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let daemon = Daemon::start(
        config(
            settings(dir.path(), 1, 1024),
            vec![watch(&watched, Mask::IN_DELETE, "stuck")],
        ),
        recorders.clone(),
    )
    .unwrap();
    for i in 0..files {
        std::fs::remove_file(watched.join(format!("a{i}"))).unwrap();
    }
    wait_for(|| daemon.counters().seen == files);
    let started = Instant::now();
    assert!(!daemon.stop(Instant::now() + Duration::from_millis(300)));
    // The deadline, plus the one call in progress when it passed.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(recorders.log("stuck").count() < files as usize);
}
