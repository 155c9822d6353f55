//! The daemon's `tracing` events as Python `logging` records, when the Django project's
//! `LOGGING` configures the `inotifier` logger (or an ancestor: the root); otherwise the
//! daemon writes its lines to stderr exactly as the standalone daemon does.
//!
//! # Loggers
//!
//! [`logger_name`] is the one place that names them:
//!
//! - `inotifier.daemon`: start, stop, reloads, the router and its queues (`inotifier-daemon`,
//!   and this module's own messages);
//! - `inotifier.journal`: the durable journal (`inotifier-journal`, and the daemon's journal
//!   writer);
//! - `inotifier.engine`: the inotify engine (`inotifier-core`): scans, overflows, lost watches;
//! - `inotifier.processor.<kind>` for the native processors (`log`, `jsonl`, `exec`, `webhook`,
//!   `celery`, `redis_stream`, `jetstream`) and `inotifier.processor.<dotted name>` for the
//!   project's Python processors (`inotifier.processor.myapp.processors.Upload`, so that
//!   `LOGGING` can set each one's level; `inotifier.processor.python` for what the Python
//!   processors' wrapper says outside a delivery): what a processor says, and what the daemon says about one of its
//!   deliveries (retries, giving up), which happens inside the router's `delivery` span whose
//!   `processor` field names the kind; an event with a `processor` field of its own counts too;
//! - `inotifier.processor`: the code the broker processors share, outside a delivery;
//! - `inotifier.lib`: the libraries the daemon uses (NATS, AMQP clients), with their Rust
//!   target in the `rust_target` field.
//!
//! # Records
//!
//! Levels map to Python's: ERROR 40, WARN 30, INFO 20, DEBUG 10, TRACE 5 (pyo3-log's). The
//! message is the event's message; its fields, after those of the spans it is in (outermost
//! first), are attributes of the record (`extra`), as strings; a dot in a name becomes `_`
//! (`event.pathname` -> `event_pathname`), and a name a `LogRecord` has already (`name`,
//! `msg`, `process`, ...) gets the prefix `field_`, since `makeRecord` refuses to overwrite it.
//! `pathname` and `lineno` are the Rust source line of the event.
//!
//! # Why pyo3-log, and why a thread of its own
//!
//! pyo3-log is the maintained bridge from Rust to Python logging: it names, finds and caches
//! the Python loggers and their effective levels (`Caching::LoggersAndLevels`), maps levels
//! and turns key-values into `extra`. It bridges the `log` crate, not `tracing`, so the layer
//! here makes one `log::Record` per event (target: the Python logger's name) and hands it to a
//! `pyo3_log::Logger` it owns; that logger is not installed as the process's `log` logger.
//!
//! The records are not handed over on the thread that logs: they go through a bounded queue to
//! one thread that takes the GIL. A thread that logs may hold locks a thread holding the GIL
//! waits for (a Python processor acknowledges its events, with the GIL, through the journal's
//! locks), so taking the GIL there could deadlock; and a slow or stuck Python handler must not
//! hold up deliveries. The level test is made before queuing, on the cached level, without the
//! GIL: a record below its logger's level costs a cache lookup (only the first record of a
//! logger goes to Python, to learn its level). What this costs: `created` and `thread` of a
//! record are those of the handing over (within a millisecond or so of the event when Python
//! keeps up); when the queue is full records are dropped and counted, and a warning on
//! `inotifier.daemon` says how many; levels changed in Python after the start are not seen.
//!
//! A handler that raises does not reach the daemon: the exception is printed to stderr (as
//! `logging` does when `logging.raiseExceptions` is true) and the next record goes on. When the
//! daemon stops, what is queued is handed over for up to [`CLOSE_TIMEOUT`]; events after that
//! go to stderr.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Id, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Registry, filter::LevelFilter, prelude::*};

use crate::processor::describe;

/// How long a stopping daemon waits for Python to take what is queued.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Records waiting for the GIL; past that, Python is not keeping up and they are dropped.
const QUEUE: usize = 4096;

/// Records handed over per taking of the GIL, so that Python processors get it in between.
const PER_GIL: usize = 64;

/// Whether a bridge runs: read first by every callback, so that without one nothing else is.
static ACTIVE: AtomicBool = AtomicBool::new(false);

static BRIDGE: RwLock<Option<Arc<Shared>>> = RwLock::new(None);

/// The native processors that have a logger of their own; any other kind is a Python
/// processor.
const PROCESSOR_LOGGERS: &[(&str, &str)] = &[
    ("log", "inotifier.processor.log"),
    ("jsonl", "inotifier.processor.jsonl"),
    ("exec", "inotifier.processor.exec"),
    ("webhook", "inotifier.processor.webhook"),
    ("celery", "inotifier.processor.celery"),
    ("redis_stream", "inotifier.processor.redis_stream"),
    ("jetstream", "inotifier.processor.jetstream"),
];

/// The Python logger of an event of the Rust `target` (`crate::module::...`), in a delivery by
/// a processor of kind `processor` when it is given. See the [module docs](self).
pub fn logger_name(target: &str, processor: Option<&str>) -> Cow<'static, str> {
    if let Some(kind) = processor {
        return processor_logger(kind);
    }
    Cow::Borrowed(target_logger(target))
}

fn target_logger(target: &str) -> &'static str {
    let mut path = target.split("::");
    let krate = path.next().unwrap_or("");
    let module = path.next().unwrap_or("");
    match krate {
        "inotifier_core" => "inotifier.engine",
        "inotifier_journal" => "inotifier.journal",
        "inotifier_daemon" if module == "journal" => "inotifier.journal",
        // This crate (its library is `_native`): the Python processors' wrapper, and run_daemon.
        "_native" if module == "processor" => "inotifier.processor.python",
        "inotifier_daemon" | "_native" => "inotifier.daemon",
        "inotifier_sinks" | "inotifier_brokers" => {
            match PROCESSOR_LOGGERS.iter().find(|(kind, _)| *kind == module) {
                Some((_, name)) => name,
                None => "inotifier.processor",
            }
        }
        _ => "inotifier.lib",
    }
}

/// A native processor's logger by its kind, a Python processor's by its dotted name.
fn processor_logger(kind: &str) -> Cow<'static, str> {
    match PROCESSOR_LOGGERS.iter().find(|(native, _)| *native == kind) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(format!("inotifier.processor.{kind}")),
    }
}

/// The attributes every `LogRecord` has (and `message`, `asctime`, set by formatting):
/// `makeRecord` raises on an `extra` key among them.
const RECORD_ATTRIBUTES: &[&str] = &[
    "name",
    "msg",
    "args",
    "levelname",
    "levelno",
    "pathname",
    "filename",
    "module",
    "exc_info",
    "exc_text",
    "stack_info",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "processName",
    "process",
    "taskName",
    "message",
    "asctime",
];

/// The `extra` key of the field `name`. See the [module docs](self).
pub fn extra_key(name: &str) -> Cow<'_, str> {
    let key = if name.contains('.') {
        Cow::Owned(name.replace('.', "_"))
    } else {
        Cow::Borrowed(name)
    };
    if RECORD_ATTRIBUTES.contains(&key.as_ref()) {
        Cow::Owned(format!("field_{key}"))
    } else {
        key
    }
}

/// Installs the process's subscriber, once (a second daemon in the same process keeps the
/// first's level): events up to `level`, to stderr as the standalone daemon writes them, or to
/// Python while a [`Bridge`] runs.
pub fn init(level: Level) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let level = LevelFilter::from_level(level);
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(Unbridged(level));
        let subscriber = Registry::default()
            .with(stderr)
            .with(BridgeLayer(level))
            .with(level);
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Whether the project's logging configuration handles the `inotifier` loggers: `LOGGING`
/// gives `inotifier` (or the root) a handler. Django's default configures `django` only.
pub fn python_logging_configured(py: Python<'_>) -> bool {
    py.import("logging")
        .and_then(|logging| logging.getattr("getLogger")?.call1(("inotifier",)))
        .and_then(|logger| logger.call_method0("hasHandlers")?.is_truthy())
        .unwrap_or(false)
}

struct Shared {
    logger: Arc<pyo3_log::Logger>,
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

struct Message {
    logger: Cow<'static, str>,
    level: log::Level,
    source: Source,
    message: String,
    fields: Vec<(&'static str, String)>,
}

/// Where an event comes from: its Rust target and source line.
struct Source {
    target: &'static str,
    file: Option<&'static str>,
    line: Option<u32>,
    module_path: Option<&'static str>,
}

impl Source {
    fn of(metadata: &'static Metadata<'static>) -> Source {
        Source {
            target: metadata.target(),
            file: metadata.file(),
            line: metadata.line(),
            module_path: metadata.module_path(),
        }
    }

    fn here(file: &'static str, line: u32, module_path: &'static str) -> Source {
        Source {
            target: module_path,
            file: Some(file),
            line: Some(line),
            module_path: Some(module_path),
        }
    }
}

/// The bridge of one daemon run: from [`Bridge::start`] to [`Bridge::close`], the events go to
/// Python logging.
pub struct Bridge {
    thread: JoinHandle<()>,
    done: Receiver<()>,
}

/// Why the bridge could not start (the daemon then logs to stderr).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot set up Python logging: {0}")]
    Python(#[from] PyErr),
    #[error("cannot start the logging thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl Bridge {
    /// Starts handing the events over to Python logging (call [`init`] first).
    pub fn start(py: Python<'_>) -> Result<Bridge, StartError> {
        // Trace: INOTIFIER_LOG_LEVEL is the only cap on the Rust side, the Python loggers'
        // levels the rest.
        let logger = Arc::new(
            pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)?
                .filter(log::LevelFilter::Trace),
        );
        let (queue, received) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = {
            let logger = Arc::clone(&logger);
            let dropped = Arc::clone(&dropped);
            spawn_without_signals(move || {
                hand_over(&logger, &received, &dropped);
                let _ = done_tx.send(());
            })?
        };
        *BRIDGE.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Shared {
            logger,
            queue,
            dropped,
        }));
        ACTIVE.store(true, Ordering::SeqCst);
        Ok(Bridge { thread, done })
    }

    /// Back to stderr; what is queued is handed over for up to [`CLOSE_TIMEOUT`]. Call without
    /// the GIL: the thread handing over needs it.
    pub fn close(self) {
        ACTIVE.store(false, Ordering::SeqCst);
        // The last sender: the thread ends once it has handed over what was queued.
        drop(
            BRIDGE
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if self.done.recv_timeout(CLOSE_TIMEOUT).is_ok() {
            let _ = self.thread.join();
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "inotifier: the Python logging handlers did not take the last log records \
                 within {CLOSE_TIMEOUT:?}; stopping without them"
            );
        }
    }
}

/// A thread that takes no signal: the daemon takes SIGTERM, SIGINT and SIGHUP synchronously on
/// its main thread, and a thread that does not block them would be killed by them instead.
fn spawn_without_signals(work: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    // SAFETY: signal set manipulation on local sets, then pthread_sigmask on this thread (a new
    // thread inherits the mask); the previous mask is restored whatever spawn did.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        let spawned = std::thread::Builder::new()
            .name("inotifier-logging".into())
            .spawn(work);
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned
    }
}

/// The thread of the bridge: until every sender is gone, takes the GIL for up to [`PER_GIL`]
/// queued records at a time.
fn hand_over(logger: &pyo3_log::Logger, queue: &Receiver<Message>, dropped: &AtomicU64) {
    while let Ok(first) = queue.recv() {
        Python::attach(|py| {
            let mut next = Some(first);
            let mut handed = 0;
            while let Some(message) = next.take() {
                emit(py, logger, &message);
                handed += 1;
                if handed < PER_GIL {
                    next = queue.try_recv().ok();
                }
            }
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                emit(
                    py,
                    logger,
                    &Message {
                        logger: Cow::Borrowed("inotifier.daemon"),
                        level: log::Level::Warn,
                        source: Source::here(file!(), line!(), module_path!()),
                        message: format!(
                            "{lost} log record(s) dropped: the Python logging handlers did not \
                             keep up"
                        ),
                        fields: Vec::new(),
                    },
                );
            }
        });
    }
}

/// One record to Python; whatever its handlers raise stays here.
fn emit(py: Python<'_>, logger: &pyo3_log::Logger, message: &Message) {
    let mut fields: Vec<(Cow<'static, str>, &str)> = message
        .fields
        .iter()
        .map(|(name, value)| (extra_key(name), value.as_str()))
        .collect();
    if message.logger == "inotifier.lib" {
        fields.push((Cow::Borrowed("rust_target"), message.source.target));
    }
    let pairs = Pairs(&fields);
    // A panic here (none is known) must not end the thread: the records after it would be lost.
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        log::Log::log(
            logger,
            &log::Record::builder()
                .level(message.level)
                .target(&message.logger)
                .file_static(message.source.file)
                .line(message.source.line)
                .module_path_static(message.source.module_path)
                .args(format_args!("{}", message.message))
                .key_values(&pairs)
                .build(),
        );
    }));
    // pyo3-log leaves what the handlers raised as the thread's current exception.
    if let Some(error) = PyErr::take(py) {
        let print = py
            .import("logging")
            .and_then(|logging| logging.getattr("raiseExceptions")?.is_truthy())
            .unwrap_or(true);
        if print {
            let _ = writeln!(
                std::io::stderr(),
                "inotifier: a Python logging handler failed on a record of {}: {}",
                message.logger,
                describe(py, &error)
            );
        }
    }
}

struct Pairs<'a>(&'a [(Cow<'static, str>, &'a str)]);

impl log::kv::Source for Pairs<'_> {
    fn visit<'kvs>(
        &'kvs self,
        visitor: &mut dyn log::kv::VisitSource<'kvs>,
    ) -> Result<(), log::kv::Error> {
        for (key, value) in self.0 {
            visitor.visit_pair(log::kv::Key::from_str(key), log::kv::Value::from(*value))?;
        }
        Ok(())
    }
}

/// The stderr layer's filter: up to the level, while no bridge runs. Asked at every event
/// (`Interest::sometimes`), since a bridge starts and stops.
struct Unbridged(LevelFilter);

impl<S> Filter<S> for Unbridged {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        *metadata.level() <= self.0 && !ACTIVE.load(Ordering::Relaxed)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if *metadata.level() <= self.0 {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0)
    }
}

/// Hands the events to the bridge while one runs.
struct BridgeLayer(LevelFilter);

/// The fields of a span, kept for the records of the events inside it.
struct SpanFields(Vec<(&'static str, String)>);

impl SpanFields {
    fn processor(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == "processor")
            .map(|(_, value)| value.as_str())
    }
}

impl<S> Layer<S> for BridgeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !ACTIVE.load(Ordering::Relaxed) || attributes.fields().is_empty() {
            return;
        }
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.pairs));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !ACTIVE.load(Ordering::Relaxed) {
            return;
        }
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            match extensions.get_mut::<SpanFields>() {
                Some(known) => known.0.extend(fields.pairs),
                None => extensions.insert(SpanFields(fields.pairs)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !ACTIVE.load(Ordering::Relaxed) {
            return;
        }
        let bridge = BRIDGE.read().unwrap_or_else(PoisonError::into_inner);
        let Some(bridge) = bridge.as_ref() else {
            return;
        };
        let metadata = event.metadata();
        let logger = match event_processor(event) {
            Some(kind) => processor_logger(&kind),
            None => ctx
                .event_scope(event)
                .and_then(|mut scope| {
                    scope.find_map(|span| {
                        let extensions = span.extensions();
                        extensions
                            .get::<SpanFields>()?
                            .processor()
                            .map(processor_logger)
                    })
                })
                .unwrap_or_else(|| logger_name(metadata.target(), None)),
        };
        let level = log_level(*metadata.level());
        // The cached level of the Python logger: no GIL.
        let wanted = log::Metadata::builder()
            .level(level)
            .target(&logger)
            .build();
        if !log::Log::enabled(&*bridge.logger, &wanted) {
            return;
        }
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.pairs.extend(span_fields.0.iter().cloned());
                }
            }
        }
        event.record(&mut fields);
        let message = Message {
            logger,
            level,
            source: Source::of(metadata),
            message: fields.message.unwrap_or_default(),
            fields: fields.pairs,
        };
        match bridge.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                bridge.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The bridge is closing: the daemon is stopping.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0)
    }
}

/// The `processor` field of an event itself, looked for only when its callsite has one.
fn event_processor(event: &Event<'_>) -> Option<String> {
    event.metadata().fields().field("processor")?;
    let mut fields = Fields::default();
    event.record(&mut fields);
    fields
        .pairs
        .into_iter()
        .find(|(name, _)| *name == "processor")
        .map(|(_, value)| value)
}

fn log_level(level: Level) -> log::Level {
    match level {
        Level::ERROR => log::Level::Error,
        Level::WARN => log::Level::Warn,
        Level::INFO => log::Level::Info,
        Level::DEBUG => log::Level::Debug,
        Level::TRACE => log::Level::Trace,
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    pairs: Vec<(&'static str, String)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.pairs.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}
