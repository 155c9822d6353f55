//! `inotifier watch`: an ad-hoc watcher that prints every event.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Args;
use inotifier_core::{Engine, EngineOptions, Filters, Flow, Glob, Mask, Sink, WatchSpec};

use crate::output::{self, Format};
use crate::signals;

#[derive(Args)]
#[command(
    about = "Watch paths and print one line per event",
    long_about = "Watch paths and print one line per event, flushed after each batch read from the kernel.\n\n\
Directories created inside a recursive watch are watched at once and scanned, so files created in \
them before their watch landed are reported too (marked \"synthetic\"). Moves are paired: an \
IN_MOVED_TO carries src_pathname. If the kernel queue overflows, IN_Q_OVERFLOW is printed and the \
watched trees are rescanned, so the creations, deletions and modifications it dropped are reported.\n\n\
A line \"inotifier: ready, N watches established\" goes to stderr once every watch is in place.\n\n\
JSON output: one object per line with the keys id, mask, maskname, path, name, pathname, dir, wd, \
cookie, src_pathname (null when none), synthetic, origin (kernel, scan or rescan) and time (seconds \
since the epoch). Names are bytes: a byte that is not part of valid UTF-8 is written as the escape \
\\udcXX (XX the byte, PEP 383 surrogateescape), so os.fsencode(json.loads(line)[\"name\"]) in \
Python gives back the exact name.\n\n\
Exit status: 0 after SIGINT or SIGTERM (output flushed first), 1 on an error (a path that does not \
exist, out of inotify watches), 2 on a usage error.",
    after_help = "Examples:\n  inotifier watch -r /srv/uploads\n  inotifier watch -e IN_CLOSE_WRITE,IN_MOVED_TO -r --include '*.csv' --format text /data\n  inotifier watch -r --exclude .git --exclude '*.swp' ."
)]
pub struct WatchArgs {
    /// Paths to watch (directories or files).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Events to report: names joined by | or , (IN_CREATE|IN_DELETE, create,delete; the IN_
    /// prefix is optional, case does not matter), groups IN_CLOSE, IN_MOVE and ALL_EVENTS, or an
    /// integer (256, 0x100).
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

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,

    /// Do not print the "ready" line on stderr.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_mask(text: &str) -> Result<Mask, String> {
    text.parse::<Mask>().map_err(|error| error.to_string())
}

fn parse_glob(text: &str) -> Result<Glob, String> {
    Glob::new(text).map_err(|error| error.to_string())
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let stop_signals = signals::block_stop_signals().context("cannot block SIGINT and SIGTERM")?;
    let write_error = Arc::new(Mutex::new(None));
    let engine = Engine::start_with_sink(
        EngineOptions::default(),
        stdout_sink(args.format, write_error.clone()),
    )?;
    let filters = Filters {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    for path in &args.paths {
        let mut spec = WatchSpec::new(path, args.events).recursive(args.recursive);
        spec.filters = filters.clone();
        engine.add_watch(spec)?;
    }
    let stopper = engine.stopper();
    signals::on_stop_signal(stop_signals, move |signal| {
        tracing::info!("signal {signal} received, stopping");
        stopper.stop();
    })
    .context("cannot start the signal thread")?;
    if !args.quiet {
        eprintln!(
            "inotifier: ready, {} watches established",
            engine.watch_count()?
        );
    }
    engine.wait()?;
    match write_error.lock().expect("not poisoned").take() {
        Some(error) => Err(error).context("cannot write events to stdout"),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Writes each batch to stdout with one system call, from the reader thread: no thread switch
/// per batch, and the output is flushed as soon as the kernel's batch is processed.
fn stdout_sink(format: Format, write_error: Arc<Mutex<Option<io::Error>>>) -> Sink {
    // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never closes it.
    let mut stdout = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let mut writer = output::EventWriter::new(format);
    Box::new(move |batch| {
        match stdout.write_all(writer.write_batch(batch)) {
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
