//! `inotifier watch`: an ad-hoc watcher that prints every event.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use inotifier_core::duration::parse_duration;
use inotifier_core::ready::{DEFAULT_SETTLE, ReadyOptions, ReadyStage};
use inotifier_core::{
    Backend, BackendChoice, Batch, DEFAULT_POLL_INTERVAL, Engine, EngineOptions, Filters, Flow,
    Glob, Mask, Sink, Stopper, WatchId, WatchSpec,
};

use crate::output::{self, Format};
use crate::signals;
use crate::watch_state::WatchState;

#[derive(Args)]
#[command(
    about = "Watch paths and print one line per event",
    long_about = "Watch paths and print one line per event, flushed after each batch read from the kernel.\n\n\
Directories created inside a recursive watch are watched at once and scanned, so files created in \
them before their watch landed are reported too (marked \"synthetic\"). Moves are paired: an \
IN_MOVED_TO carries src_pathname. If the kernel queue overflows, IN_Q_OVERFLOW is printed and the \
watched trees are rescanned, so the creations, deletions and modifications it dropped are reported.\n\n\
A line \"inotifier: ready, N watches established\" goes to stderr once every watch is in place. \
Before it, when stderr is a terminal, a long initial scan shows a progress line there (directories \
watched, rate, how many are known to be left), cleared when the scan ends; nothing of it is \
written when stderr is a pipe or a file.\n\n\
IN_READY (0x00100000, ours, not the kernel's) reports a regular file whose write is complete: \
closed after writing and then untouched for the settle time (--settle), or renamed into place from \
a temporary name (--temp-pattern), or moved in from outside the watch. One per completed write; \
temporary files never get one; files found by a scan get one once settled. It is not part of \
ALL_EVENTS: ask for it with -e IN_READY, alone or with other events. Ready events carry the \
src_pathname of a rename into place.\n\n\
JSON output: one object per line with the keys id, mask, maskname, path, name, pathname, dir, wd, \
cookie, src_pathname (null when none), synthetic, origin (kernel, scan, rescan or catchup) and time (seconds \
since the epoch). Names are bytes: a byte that is not part of valid UTF-8 is written as the escape \
\\udcXX (XX the byte, PEP 383 surrogateescape), so os.fsencode(json.loads(line)[\"name\"]) in \
Python gives back the exact name.\n\n\
Exit status: 0 after SIGINT or SIGTERM (output flushed first), 1 on an error (a path that does not \
exist, out of inotify watches), 2 on a usage error.",
    after_help = "Examples:\n  inotifier watch -r /srv/uploads\n  inotifier watch -e IN_CLOSE_WRITE,IN_MOVED_TO -r --include '*.csv' --format text /data\n  inotifier watch -r --exclude .git --exclude '*.swp' .\n  inotifier watch -e IN_READY -r --settle 1s --temp-pattern '*.uploading' /srv/uploads"
)]
pub struct WatchArgs {
    /// Paths to watch (directories or files).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Events to report: names joined by | or , (IN_CREATE|IN_DELETE, create,delete; the IN_
    /// prefix is optional, case does not matter), groups IN_CLOSE, IN_MOVE and ALL_EVENTS, or an
    /// integer (256, 0x100). IN_READY (a file is completely written) is ours and not part of
    /// ALL_EVENTS: name it (-e IN_READY, -e ALL_EVENTS|IN_READY).
    #[arg(short, long = "events", value_name = "MASK", default_value = "ALL_EVENTS", value_parser = parse_mask)]
    events: Mask,

    /// Watch every directory below each PATH, and directories created there later.
    #[arg(short, long)]
    recursive: bool,

    /// Do not watch or report entries matching GLOB (repeatable). A pattern without / matches
    /// a name at any depth (node_modules, *.tmp); one with / matches the path relative to the
    /// watched PATH (build/**). An excluded directory gets no watch at all.
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    exclude: Vec<Glob>,

    /// Only report files matching GLOB (repeatable; same syntax as --exclude). Directories are
    /// still watched, so matching files below them are reported.
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    include: Vec<Glob>,

    /// With IN_READY: how long a file closed after writing must stay untouched to be ready
    /// (200ms, 1.5s, 2m) [default: 200ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    settle: Option<Duration>,

    /// With IN_READY: names of temporary files (repeatable; replaces the defaults *.part, *.tmp,
    /// *.crdownload and .*.swp). A temporary file is never ready; one renamed into place is ready
    /// at once. Matched against file names, so it cannot contain /.
    #[arg(long = "temp-pattern", value_name = "GLOB", value_parser = parse_temp_pattern)]
    temp_patterns: Vec<Glob>,

    /// Where events come from: auto (inotify, and polling below each PATH on a filesystem where
    /// inotify misses other hosts' changes: NFS, SMB/CIFS, FUSE, 9p, Ceph, ...; said on stderr),
    /// inotify, or poll (inotify for this machine's changes, and each tree listed again every
    /// --poll-interval for the others').
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = parse_backend)]
    backend: Backend,

    /// How often a polled tree is listed again (500ms, 2s) [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_poll_interval)]
    poll_interval: Option<Duration>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,

    /// Do not print the "ready" line on stderr.
    #[arg(short, long)]
    quiet: bool,

    /// Keep a snapshot of each watched tree in DIR (created, mode 0700), and at the next start
    /// with the same DIR first report what changed since (origin "catchup"): creations,
    /// deletions, modifications and renames, recognised by inode. The first run records the
    /// snapshot and reports nothing for what already exists.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

fn parse_mask(text: &str) -> Result<Mask, String> {
    text.parse::<Mask>().map_err(|error| error.to_string())
}

fn parse_backend(text: &str) -> Result<Backend, String> {
    Backend::from_name(text)
        .ok_or_else(|| format!("{text:?} is not one of {}", Backend::NAMES.join(", ")))
}

fn parse_poll_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_millis(10) {
        return Err(format!("{text}: give at least 10ms"));
    }
    Ok(interval)
}

fn parse_glob(text: &str) -> Result<Glob, String> {
    Glob::new(text).map_err(|error| error.to_string())
}

fn parse_temp_pattern(text: &str) -> Result<Glob, String> {
    if text.contains('/') {
        return Err(format!(
            "{text:?} contains /: temporary-file patterns are matched against file names"
        ));
    }
    parse_glob(text)
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let ready = ready_options(&args);
    let stop_signals = signals::block_stop_signals().context("cannot block SIGINT and SIGTERM")?;
    let mut state = args.state.as_deref().map(WatchState::open).transpose()?;
    let stage = Arc::new(Mutex::new(ReadyStage::new()));
    let write_error = Arc::new(Mutex::new(None));
    // Without IN_READY, the output is written from the reader thread itself (the fastest path);
    // with it, a pipeline thread runs the ready stage, which needs its own timers.
    let (engine, pipeline, registrations) = match &ready {
        None => {
            let sink = stdout_sink(args.format, write_error.clone());
            let engine = Engine::start_with_sink(EngineOptions::default(), sink)?;
            (engine, None, None)
        }
        Some(options) => {
            let (engine, batches) = Engine::start(EngineOptions::default())?;
            let (registrations, registered) = mpsc::channel();
            let pipeline = ReadyPipeline {
                batches,
                registered,
                stage: stage.clone(),
                user_mask: args.events,
                options: options.clone(),
                output: StdoutWriter::new(args.format),
                stopper: engine.stopper(),
                next_id: 1,
            };
            let thread = std::thread::Builder::new()
                .name("inotifier-ready".into())
                .spawn(move || pipeline.run())
                .context("cannot start the ready pipeline thread")?;
            (engine, Some(thread), Some(registrations))
        }
    };
    // A progress line only for a person watching: piped or logged stderr gets nothing.
    if !args.quiet && io::stderr().is_terminal() {
        crate::progress_line::install();
    }
    let added = add_watches(&engine, &args, registrations.as_ref(), state.as_mut());
    // Every id is sent: the pipeline stops waiting for more. Before the engine can be dropped by
    // an error below, since the pipeline must keep draining the engine's channel for it to stop.
    drop(registrations);
    added?;
    let engine = Arc::new(engine);
    // With --state, a stop signal goes to the state thread: it saves the snapshots a last
    // time, then stops the engine.
    let keeper = match state {
        Some(state) => Some(state.keep(engine.clone(), ready.is_some().then(|| stage.clone()))?),
        None => None,
    };
    let stopper = engine.stopper();
    let stop_keeper = keeper.as_ref().map(|(stop, _)| stop.clone());
    signals::on_stop_signal(stop_signals, move |signal| {
        tracing::info!("signal {signal} received, stopping");
        match stop_keeper {
            Some(stop) => drop(stop.send(())),
            None => stopper.stop(),
        }
    })
    .context("cannot start the signal thread")?;
    if !args.quiet {
        eprintln!(
            "inotifier: ready, {} watches established",
            engine.watch_count()?
        );
    }
    if let Some((stop, thread)) = keeper {
        drop(stop);
        // Ends after a stop signal, or within a second of the engine stopping by itself.
        let _ = thread.join();
    }
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.wait()?,
        Err(_) => unreachable!("the state thread, the only other owner, has ended"),
    }
    // The engine has stopped and closed its channel: the pipeline writes what it holds and ends.
    if let Some(thread) = pipeline {
        let written = thread
            .join()
            .map_err(|_| anyhow::anyhow!("the ready pipeline thread panicked"))?;
        if let Err(error) = written {
            *write_error.lock().expect("not poisoned") = Some(error);
        }
    }
    match write_error.lock().expect("not poisoned").take() {
        Some(error) => Err(error).context("cannot write events to stdout"),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Adds a watch per PATH (with `--state`, against its snapshot); with the ready pipeline,
/// sends it each id.
fn add_watches(
    engine: &Engine,
    args: &WatchArgs,
    registrations: Option<&Sender<WatchId>>,
    mut state: Option<&mut WatchState>,
) -> anyhow::Result<()> {
    let filters = Filters {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    for path in &args.paths {
        let mut spec = WatchSpec::new(path, args.events).recursive(args.recursive);
        spec.filters = filters.clone();
        spec.backend = args.backend;
        spec.poll_interval = args.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL);
        if !args.quiet {
            for reason in BackendChoice::of(&spec).reasons() {
                eprintln!("inotifier: {reason}");
            }
        }
        let id = match state.as_deref_mut() {
            Some(state) => state.add(engine, spec)?,
            None => engine.add_watch(spec)?,
        };
        if let Some(registrations) = registrations {
            // The pipeline waits for this before handling the watch's first event.
            let _ = registrations.send(id);
        }
    }
    Ok(())
}

/// The ready options when IN_READY is asked for. `--settle` and `--temp-pattern` without it are
/// a usage error: they would silently do nothing.
fn ready_options(args: &WatchArgs) -> Option<ReadyOptions> {
    if args.poll_interval.is_some() && args.backend == Backend::Inotify {
        clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            "--poll-interval does not apply to --backend inotify, which never polls\n",
        )
        .exit();
    }
    if !args.events.contains(Mask::IN_READY) {
        if args.settle.is_some() || !args.temp_patterns.is_empty() {
            clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "--settle and --temp-pattern only apply to IN_READY: add it to --events (-e IN_READY)\n",
            )
            .exit();
        }
        return None;
    }
    let mut options = ReadyOptions {
        settle: args.settle.unwrap_or(DEFAULT_SETTLE),
        ..ReadyOptions::default()
    };
    if !args.temp_patterns.is_empty() {
        options.temp_patterns = args.temp_patterns.clone();
    }
    Some(options)
}

/// The thread between the engine and stdout when IN_READY is asked for: feeds the ready stage,
/// wakes up when its next timer runs out, and numbers what it writes (ready events are made
/// without an id, and the engine's own ids skip the events the stage drops).
struct ReadyPipeline {
    batches: Receiver<Batch>,
    /// The ids of the watches added so far; closed once all are.
    registered: Receiver<WatchId>,
    /// Shared with `--state`'s thread, which holds back the snapshot of files still settling.
    stage: Arc<Mutex<ReadyStage>>,
    user_mask: Mask,
    options: ReadyOptions,
    output: StdoutWriter,
    stopper: Stopper,
    next_id: u64,
}

impl ReadyPipeline {
    /// Runs until the engine closes its channel; a write error stops the engine.
    fn run(mut self) -> io::Result<()> {
        loop {
            let next_deadline = self.lock_stage().next_deadline();
            let received = match next_deadline {
                Some(deadline) => self
                    .batches
                    .recv_timeout(deadline.saturating_duration_since(Instant::now())),
                None => self
                    .batches
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut events = match received {
                Ok(batch) => {
                    self.register_watches_of(&batch);
                    self.lock_stage().process(batch, Instant::now())
                }
                Err(RecvTimeoutError::Timeout) => self.lock_stage().poll(Instant::now()),
                // Files whose timer still runs are not ready: nothing more to write.
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            if events.is_empty() {
                continue;
            }
            for event in &mut events {
                event.id = self.next_id;
                self.next_id += 1;
            }
            match self.output.write(&events) {
                Ok(()) => {}
                // The reader of our output is gone (`| head`): nothing left to do.
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                    self.stopper.stop();
                    return Ok(());
                }
                Err(error) => {
                    self.stopper.stop();
                    return Err(error);
                }
            }
        }
    }

    fn lock_stage(&self) -> std::sync::MutexGuard<'_, ReadyStage> {
        self.stage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure the stage knows every watch of the batch. A watch's events can only come
    /// after `add_watch` returned its id, which the main thread sends at once: wait for it.
    fn register_watches_of(&mut self, batch: &Batch) {
        for event in batch {
            for &id in event.watches.iter() {
                while !self.lock_stage().has_watch(id) {
                    match self.registered.recv() {
                        Ok(added) => self.lock_stage().set_watch(
                            added,
                            self.user_mask,
                            Some(self.options.clone()),
                        ),
                        // Every watch is registered: this one was not added by us.
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

/// Event lines to stdout, each batch with one system call.
struct StdoutWriter {
    stdout: ManuallyDrop<File>,
    writer: output::EventWriter,
}

impl StdoutWriter {
    fn new(format: Format) -> StdoutWriter {
        StdoutWriter {
            // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never closes it.
            stdout: ManuallyDrop::new(unsafe { File::from_raw_fd(1) }),
            writer: output::EventWriter::new(format),
        }
    }

    fn write(&mut self, batch: &[inotifier_core::Event]) -> io::Result<()> {
        self.stdout.write_all(self.writer.write_batch(batch))
    }
}

/// Writes each batch to stdout with one system call, from the reader thread: no thread switch
/// per batch, and the output is flushed as soon as the kernel's batch is processed.
fn stdout_sink(format: Format, write_error: Arc<Mutex<Option<io::Error>>>) -> Sink {
    let mut stdout = StdoutWriter::new(format);
    Box::new(move |batch| {
        match stdout.write(batch) {
            Ok(()) => Flow::Continue,
            // The reader of our output is gone (`| head`): nothing left to do.
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Flow::Stop,
            Err(error) => {
                *write_error.lock().expect("not poisoned") = Some(error);
                Flow::Stop
            }
        }
    })
}
