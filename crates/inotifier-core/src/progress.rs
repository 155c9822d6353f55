//! Progress of the long passes: the initial scan of a tree, the catch-up diff after downtime,
//! the replay of what the journal owes a processor. Each logs how far it got (entries done,
//! rate, estimated rest) every [`interval`] while it runs, at `info`, and once more when it
//! ends if it logged before; a pass that ends sooner logs nothing.
//!
//! Cheap when nothing is slow: [`Progress::tick`] only adds, and reads the clock every
//! [`CHECK_EVERY`] entries.
//!
//! An [`Observer`] set by the program ([`set_observer`]; `inotifier watch` draws a progress
//! line on a terminal with it) is told at the same checks, once the pass has run for
//! [`SHOW_AFTER`] (or the interval, when shorter), and at its end.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Entries between two looks at the clock.
pub const CHECK_EVERY: u64 = 256;

/// How long a pass runs before an observer hears of it: a short one is not worth a line.
pub const SHOW_AFTER: Duration = Duration::from_millis(500);

/// Seconds between two progress lines: 5, or the environment variable
/// `INOTIFIER_PROGRESS_INTERVAL` (a number of seconds, `0` for a line at every check, as the
/// tests use).
pub fn interval() -> Duration {
    static INTERVAL: OnceLock<Duration> = OnceLock::new();
    *INTERVAL.get_or_init(|| {
        std::env::var("INOTIFIER_PROGRESS_INTERVAL")
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .unwrap_or(Duration::from_secs(5))
    })
}

/// Which pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The directories of a new watch, watched one by one; the total is not known in advance.
    Scan,
    /// The entries on disk compared with the journal's snapshot.
    CatchUp,
    /// Events the journal owes a processor, handed over.
    Replay,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Scan => "initial scan",
            Task::CatchUp => "catch-up",
            Task::Replay => "journal replay",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Task::Scan => "directories",
            Task::CatchUp => "entries",
            Task::Replay => "events",
        }
    }
}

/// Where a pass is, for an observer.
#[derive(Debug, Clone)]
pub struct Update<'a> {
    pub task: Task,
    /// What the pass is about: the watched path, or the processor and its path.
    pub subject: &'a str,
    pub done: u64,
    /// The whole, when known.
    pub total: Option<u64>,
    /// Known to be left when there is no total (the directories found but not yet scanned).
    pub at_least_left: Option<u64>,
    pub elapsed: Duration,
    /// The pass ended: this is its last update.
    pub finished: bool,
}

impl Update<'_> {
    /// Entries per second so far.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.done as f64 / seconds
        } else {
            0.0
        }
    }

    /// The rest at the rate so far, when the total is known.
    pub fn estimated_rest(&self) -> Option<Duration> {
        let left = self.total?.saturating_sub(self.done);
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate))
    }
}

/// "initial scan of /srv/in: 12000 directories, 4000/s, at least 300 more".
impl std::fmt::Display for Update<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = self.task.unit();
        write!(f, "{} of {}: ", self.task.as_str(), self.subject)?;
        match self.total {
            Some(total) => write!(f, "{} of {total} {unit}", self.done)?,
            None => write!(f, "{} {unit}", self.done)?,
        }
        write!(f, ", {:.0}/s", self.rate())?;
        if self.finished {
            return write!(f, ", done in {:.1?}", self.elapsed);
        }
        if let Some(rest) = self.estimated_rest() {
            write!(f, ", about {}s left", rest.as_secs().max(1))?;
        } else if let Some(left) = self.at_least_left {
            write!(f, ", at least {left} more")?;
        }
        Ok(())
    }
}

/// Told of every pass that runs long enough; see the [module docs](self).
pub type Observer = Box<dyn Fn(&Update<'_>) + Send + Sync>;

static OBSERVER: OnceLock<Observer> = OnceLock::new();

/// Sets the process's observer, once; later calls are ignored.
pub fn set_observer(observer: Observer) {
    let _ = OBSERVER.set(observer);
}

/// One pass, ticked as it goes; dropped (or [`Progress::finish`]ed) at its end.
pub struct Progress {
    task: Task,
    subject: String,
    total: Option<u64>,
    at_least_left: Option<u64>,
    done: u64,
    next_check: u64,
    started: Instant,
    next_line: Instant,
    logged: bool,
    observed: bool,
}

impl Progress {
    pub fn new(task: Task, subject: impl Into<String>, total: Option<u64>) -> Progress {
        let started = Instant::now();
        Progress {
            task,
            subject: subject.into(),
            total,
            at_least_left: None,
            done: 0,
            next_check: CHECK_EVERY,
            started,
            next_line: started + interval(),
            logged: false,
            observed: false,
        }
    }

    /// `n` more entries done.
    #[inline]
    pub fn tick(&mut self, n: u64) {
        self.done += n;
        if self.done >= self.next_check {
            self.check();
        }
    }

    /// `n` more entries done, and `left` known to be left (when the total is unknown).
    #[inline]
    pub fn tick_with_left(&mut self, n: u64, left: u64) {
        self.at_least_left = Some(left);
        self.tick(n);
    }

    /// The total grew (more events journaled while replaying).
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    #[cold]
    fn check(&mut self) {
        self.next_check = self.done + CHECK_EVERY;
        let now = Instant::now();
        if now >= self.next_line {
            self.next_line = now + interval();
            self.logged = true;
            tracing::info!("{}", self.update(now, false));
        }
        if let Some(observer) = OBSERVER.get()
            && now.duration_since(self.started) >= SHOW_AFTER.min(interval())
        {
            self.observed = true;
            observer(&self.update(now, false));
        }
    }

    fn update(&self, now: Instant, finished: bool) -> Update<'_> {
        Update {
            task: self.task,
            subject: &self.subject,
            done: self.done,
            total: self.total,
            at_least_left: self.at_least_left,
            elapsed: now.duration_since(self.started),
            finished,
        }
    }

    /// The pass ended; the same as dropping it.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !(self.logged || self.observed) {
            return;
        }
        let update = self.update(Instant::now(), true);
        if self.logged {
            tracing::info!("{update}");
        }
        if self.observed
            && let Some(observer) = OBSERVER.get()
        {
            observer(&update);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_say_the_rate_and_the_rest() {
        let update = Update {
            task: Task::CatchUp,
            subject: "/srv/in",
            done: 1000,
            total: Some(3000),
            at_least_left: None,
            elapsed: Duration::from_secs(2),
            finished: false,
        };
        assert_eq!(
            update.to_string(),
            "catch-up of /srv/in: 1000 of 3000 entries, 500/s, about 4s left"
        );
        let scan = Update {
            task: Task::Scan,
            total: None,
            at_least_left: Some(40),
            ..update.clone()
        };
        assert_eq!(
            scan.to_string(),
            "initial scan of /srv/in: 1000 directories, 500/s, at least 40 more"
        );
        let done = Update {
            finished: true,
            ..update
        };
        assert_eq!(
            done.to_string(),
            "catch-up of /srv/in: 1000 of 3000 entries, 500/s, done in 2.0s"
        );
    }
}
