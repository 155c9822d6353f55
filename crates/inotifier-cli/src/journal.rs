//! `inotifier journal`: what the durable journal holds, per processor, and the operator's
//! hands on it: retry dead letters, purge, replay, check, recover, reset, import.
//!
//! Every subcommand works while the daemon runs (SQLite serializes the writes; what `retry`
//! and `replay` make pending reaches the running daemon within a second), except `recover`
//! and `reset`, which must not run under a daemon (the journal's lock refuses them).

use std::fs;
use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use inotifier_core::Event;
use inotifier_core::json::event_json;
use inotifier_core::text::printable;
use inotifier_daemon::config;
use inotifier_journal::{Entry, Journal, JournalOptions, ProcessorSummary, State};

#[derive(Args)]
#[command(
    about = "Inspect and repair the durable journal: pending and dead-lettered events per processor",
    long_about = "Inspect and repair the durable journal (SQLite) in which the daemon records \
every event before handing it to a processor, until the processor has handled it.\n\n\
The journal is found through the config file (--config: its [journal] path, by default the pid \
file with the extension .journal) or named directly (--journal). Without a subcommand, prints the \
summary.\n\n\
Every subcommand but recover and reset works while the daemon runs: events that retry and replay make \
pending are delivered by the running daemon within a second, or by the next start.\n\n\
Exit status: 0 done, 1 an error (no journal yet, journal disabled, unknown processor, corrupt \
journal: the message says what to do), 2 a usage error.",
    after_help = "Examples:\n  inotifier journal -c /etc/inotifier/inotifier.toml\n  \
inotifier journal list --dead --processor 'webhook@/srv/in' -c inotifier.toml\n  \
inotifier journal retry --ids 100-200 --journal /var/lib/inotifier/inotifier.journal"
)]
pub struct JournalArgs {
    /// The daemon's config file: its [journal] path is used (the rest is not checked).
    #[arg(
        short,
        long,
        value_name = "FILE",
        global = true,
        conflicts_with = "journal"
    )]
    config: Option<PathBuf>,

    /// The journal file itself, instead of --config.
    #[arg(long, value_name = "PATH", global = true)]
    journal: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<JournalCommand>,
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Per processor: pending and dead-lettered events, the oldest pending id, the last
    /// acknowledged id (the default subcommand).
    Summary,
    List(ListArgs),
    Retry(RetryArgs),
    Purge(PurgeArgs),
    Replay(ReplayArgs),
    Check(CheckArgs),
    Recover(RecoverArgs),
    Reset(ResetArgs),
    Import(ImportArgs),
}

#[derive(Args)]
#[command(
    about = "List pending (or, with --dead, dead-lettered) events",
    long_about = "List pending events (or, with --dead, dead-lettered ones) in id order: id, \
processor, event names, path, attempts and the last error. Names that are not UTF-8 are written \
with \\xNN escapes; with --json, one JSON object per line: processor, state, attempts, error and \
event (as `inotifier watch` writes events, with \\udcXX escapes)."
)]
struct ListArgs {
    /// Only the events of this processor key (as `inotifier journal summary` lists them).
    #[arg(long, value_name = "KEY")]
    processor: Option<String>,

    /// Dead-lettered events instead of pending ones.
    #[arg(long)]
    dead: bool,

    /// At most this many entries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,

    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    about = "Make dead-lettered events pending again",
    long_about = "Make dead-lettered events pending again, with a fresh count of attempts: all \
of them, or those of one processor and/or an id range. A running daemon delivers them within a \
second."
)]
struct RetryArgs {
    /// Only the events of this processor key.
    #[arg(long, value_name = "KEY")]
    processor: Option<String>,

    /// Only the events with ids in this range: A-B, or a single id.
    #[arg(long, value_name = "A-B", value_parser = parse_ids)]
    ids: Option<RangeInclusive<u64>>,
}

#[derive(Args)]
#[command(
    about = "Delete dead-lettered or pending events for good",
    long_about = "Delete dead-lettered (--dead) or pending (--pending) events for good: they \
will never be delivered. Purging pending events needs --processor or --ids, or --all to purge \
every pending event of every processor; an accident here loses events."
)]
#[command(group = clap::ArgGroup::new("state").required(true).args(["dead", "pending"]))]
struct PurgeArgs {
    /// Only the events of this processor key.
    #[arg(long, value_name = "KEY")]
    processor: Option<String>,

    /// Purge dead-lettered events.
    #[arg(long)]
    dead: bool,

    /// Purge pending events (not yet delivered).
    #[arg(long)]
    pending: bool,

    /// Only the events with ids in this range: A-B, or a single id.
    #[arg(long, value_name = "A-B", value_parser = parse_ids)]
    ids: Option<RangeInclusive<u64>>,

    /// With --pending and neither --processor nor --ids: yes, every pending event.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
#[command(
    about = "Deliver acknowledged events to a processor again",
    long_about = "Make the acknowledged events of a processor with ids in a range pending \
again, so that it receives them once more (a running daemon within a second). Only events still \
retained are replayed ([journal] retain: the newest 100,000 by default)."
)]
struct ReplayArgs {
    /// The processor key.
    #[arg(long, value_name = "KEY", required = true)]
    processor: String,

    /// The ids to replay: A-B, or a single id.
    #[arg(long, value_name = "A-B", value_parser = parse_ids, required = true)]
    ids: RangeInclusive<u64>,
}

#[derive(Args)]
#[command(
    about = "Read the whole journal file and report damage",
    long_about = "Read the whole journal file (SQLite's quick_check) and report damage: slow on \
a large journal, which is why the daemon does not do it when it opens the journal. A damaged \
journal is repaired with `inotifier journal recover`."
)]
struct CheckArgs {}

#[derive(Args)]
#[command(
    about = "Salvage a corrupt journal into a fresh one (daemon stopped)",
    long_about = "Salvage a corrupt journal: move it aside to PATH.corrupt-<unix time> (with its \
-wal), read every table it can, and write a fresh journal at PATH with what was read, then print \
what was salvaged and what was lost. Refused while a daemon runs with this journal (it holds \
the journal's lock file, PATH.lock): stop it first."
)]
struct RecoverArgs {}

#[derive(Args)]
#[command(
    about = "Accept the loss of a journal: move it aside so that the next start makes a new one",
    long_about = "Accept the loss of a journal that lost its content (a zero-length file, a file \
without tables) or that you want to start over: move it aside to PATH.reset-<unix time> (with \
its -wal and -shm), so that the next start makes a new journal, with a new instance id (message \
ids never repeat the old journal's). What the old journal owed is not delivered; use `recover` \
instead to salvage what a damaged journal still holds. Refused while a daemon runs with this \
journal: stop it first."
)]
struct ResetArgs {}

#[derive(Args)]
#[command(
    about = "Append the events of a JSON-lines file as pending for a processor",
    long_about = "Append the events of a JSON-lines file, as the jsonl processor and \
`inotifier watch` write them, to the journal as pending for a processor, which then receives \
them (a running daemon delivers them when it next reads the journal: at its next start). The \
events get new ids, above every id in the journal; empty lines are skipped; any line that is \
not an event stops the import before anything is appended.\n\n\
Creates the journal when it does not exist yet."
)]
struct ImportArgs {
    /// The JSON-lines file.
    #[arg(long, value_name = "FILE", required = true)]
    jsonl: PathBuf,

    /// The processor key the events are for (a watch's name, or PROCESSOR@PATH).
    #[arg(long, value_name = "KEY", required = true)]
    processor: String,
}

/// `A-B` or `A`.
fn parse_ids(text: &str) -> Result<RangeInclusive<u64>, String> {
    let number = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|_| format!("{part:?} is not an event id: write A-B or A, such as 100-200"))
    };
    let range = match text.split_once('-') {
        Some((start, end)) => number(start)?..=number(end)?,
        None => {
            let id = number(text)?;
            id..=id
        }
    };
    if range.start() > range.end() {
        return Err(format!("{text}: the first id is above the last"));
    }
    Ok(range)
}

/// Where the journal is.
struct Located {
    path: PathBuf,
}

fn locate(args: &JournalArgs) -> anyhow::Result<Located> {
    match (&args.journal, &args.config) {
        (Some(path), _) => Ok(Located { path: path.clone() }),
        (None, Some(file)) => {
            let (_, settings) = config::load_journal_settings(file)?;
            let Some(path) = settings.path else {
                bail!(
                    "the journal is disabled in {} ([journal] enabled = false): there is \
                     nothing to inspect",
                    file.display()
                );
            };
            Ok(Located { path })
        }
        (None, None) => unreachable!("checked by run"),
    }
}

/// Opens an existing journal: the admin commands never create one by mistake.
fn open(path: &Path) -> anyhow::Result<Journal> {
    match fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => bail!(
            "the daemon has not run with this config yet: no journal at {} (the daemon creates \
             it when it starts)",
            path.display()
        ),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    }
    Ok(Journal::open(&JournalOptions::new(path))?)
}

pub fn run(args: JournalArgs) -> anyhow::Result<ExitCode> {
    if args.journal.is_none() && args.config.is_none() {
        eprintln!(
            "error: say which journal: --config FILE (the daemon's config file) or --journal \
             PATH\n\nFor more information, try 'inotifier journal --help'."
        );
        return Ok(ExitCode::from(2));
    }
    let located = locate(&args)?;
    let mut out = io::stdout().lock();
    match args.command.unwrap_or(JournalCommand::Summary) {
        JournalCommand::Summary => {
            let journal = open(&located.path)?;
            write_summary(&mut out, &journal.summary()?)?;
        }
        JournalCommand::List(list) => {
            let journal = open(&located.path)?;
            let state = if list.dead {
                State::Dead
            } else {
                State::Pending
            };
            let entries = journal.list(list.processor.as_deref(), state, list.limit)?;
            if list.json {
                write_json(&mut out, &entries)?;
            } else {
                write_entries(&mut out, &entries, state)?;
            }
            if entries.len() == list.limit {
                eprintln!(
                    "(the first {} shown: --limit N for more, or --processor)",
                    list.limit
                );
            }
        }
        JournalCommand::Retry(retry) => {
            let journal = open(&located.path)?;
            let count = journal.retry_dead(retry.processor.as_deref(), retry.ids)?;
            writeln!(out, "{count} dead-lettered events made pending again")?;
        }
        JournalCommand::Purge(purge) => {
            let state = if purge.dead {
                State::Dead
            } else {
                State::Pending
            };
            if state == State::Pending
                && purge.processor.is_none()
                && purge.ids.is_none()
                && !purge.all
            {
                eprintln!(
                    "error: purging pending events loses them: name them with --processor KEY \
                     and/or --ids A-B, or give --all to purge every pending event"
                );
                return Ok(ExitCode::from(2));
            }
            let journal = open(&located.path)?;
            let count = journal.purge(purge.processor.as_deref(), state, purge.ids)?;
            writeln!(out, "{count} {} events purged", state.as_str())?;
        }
        JournalCommand::Replay(replay) => {
            let journal = open(&located.path)?;
            let (start, end) = (*replay.ids.start(), *replay.ids.end());
            let count = journal.replay(&replay.processor, replay.ids)?;
            writeln!(
                out,
                "{count} acknowledged events of {} (ids {start}-{end}) made pending again",
                replay.processor
            )?;
            if count == 0 {
                eprintln!(
                    "(none: ids no longer retained, not yet acknowledged, or never routed to \
                     this processor)"
                );
            }
        }
        JournalCommand::Check(_) => {
            let journal = open(&located.path)?;
            journal.check()?;
            writeln!(out, "{}: ok", located.path.display())?;
        }
        JournalCommand::Recover(_) => {
            // A daemon running with the journal holds its lock: recover refuses then.
            if fs::symlink_metadata(&located.path).is_err() {
                bail!(
                    "no journal at {}: nothing to recover",
                    located.path.display()
                );
            }
            let report = Journal::recover(&located.path)?;
            write!(out, "{report}")?;
            writeln!(out, "fresh journal written at {}", located.path.display())?;
        }
        JournalCommand::Reset(_) => {
            if fs::symlink_metadata(&located.path).is_err() {
                bail!("no journal at {}: nothing to reset", located.path.display());
            }
            let aside = Journal::reset(&located.path)?;
            writeln!(
                out,
                "journal {} moved aside to {}; the next start makes a new journal",
                located.path.display(),
                aside.display()
            )?;
        }
        JournalCommand::Import(import) => {
            let events = inotifier_sinks::jsonl::read::read_file(&import.jsonl)
                .map_err(anyhow::Error::msg)?;
            let journal = Journal::open(&JournalOptions::new(&located.path))?;
            match journal.import(&import.processor, events)? {
                Some((first, last)) => writeln!(
                    out,
                    "imported {} events for {} as pending, ids {first}-{last}",
                    last - first + 1,
                    import.processor
                )?,
                None => writeln!(
                    out,
                    "imported 0 events: {} holds none",
                    import.jsonl.display()
                )?,
            }
        }
    }
    out.flush().context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn id_or_dash(id: Option<u64>) -> String {
    id.map_or_else(|| "-".into(), |id| id.to_string())
}

fn write_summary(out: &mut impl Write, summary: &[ProcessorSummary]) -> io::Result<()> {
    if summary.is_empty() {
        return writeln!(out, "no processor has used this journal yet");
    }
    let width = summary
        .iter()
        .map(|s| s.key.chars().count())
        .max()
        .unwrap_or(0)
        .max("PROCESSOR".len());
    writeln!(
        out,
        "{:<width$}  {:>8}  {:>8}  {:>14}  {:>10}",
        "PROCESSOR", "PENDING", "DEAD", "OLDEST PENDING", "LAST ACKED"
    )?;
    for s in summary {
        writeln!(
            out,
            "{:<width$}  {:>8}  {:>8}  {:>14}  {:>10}",
            s.key,
            s.pending,
            s.dead,
            id_or_dash(s.oldest_pending),
            id_or_dash(s.last_acked)
        )?;
    }
    Ok(())
}

fn pathname_text(event: &Event) -> String {
    let mut bytes = Vec::new();
    printable(&mut bytes, event.pathname().as_os_str().as_bytes());
    String::from_utf8_lossy(&bytes).into_owned()
}

fn write_entries(out: &mut impl Write, entries: &[Entry], state: State) -> io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "no {} events", state.as_str());
    }
    writeln!(out, "ID\tPROCESSOR\tMASKNAME\tPATHNAME\tATTEMPTS\tERROR")?;
    for entry in entries {
        let error = entry
            .error
            .as_deref()
            .map_or_else(|| "-".to_string(), |e| e.replace(['\n', '\t'], " "));
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            entry.event.id,
            entry.processor,
            entry.event.mask.name(),
            pathname_text(&entry.event),
            entry.attempts,
            error
        )?;
    }
    Ok(())
}

fn write_json(out: &mut impl Write, entries: &[Entry]) -> io::Result<()> {
    for entry in entries {
        let head = serde_json::json!({
            "processor": entry.processor,
            "state": entry.state.as_str(),
            "attempts": entry.attempts,
            "error": entry.error,
        })
        .to_string();
        let mut line = head.into_bytes();
        // The event as `inotifier watch` writes it: serde_json cannot write names that are
        // not UTF-8 reversibly, event_json can.
        line.pop();
        line.extend_from_slice(b",\"event\":");
        event_json(&mut line, &entry.event);
        line.extend_from_slice(b"}\n");
        out.write_all(&line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges() {
        assert_eq!(parse_ids("3-9"), Ok(3..=9));
        assert_eq!(parse_ids("7"), Ok(7..=7));
        assert_eq!(parse_ids(" 1 - 2 "), Ok(1..=2));
        assert!(parse_ids("9-3").unwrap_err().contains("above"));
        assert!(parse_ids("a-3").unwrap_err().contains("not an event id"));
        assert!(parse_ids("").is_err());
    }
}
