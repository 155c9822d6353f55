//! The "file is ready" event, [`Mask::IN_READY`]: a regular file whose write is complete.
//!
//! The kernel says when a file was closed after being opened for writing (`IN_CLOSE_WRITE`), not
//! when its content is final: a downloader may write a `.part` file and rename it, an uploader may
//! close and reopen a file for every chunk. `IN_READY` is ours, derived from the kernel's events
//! and selected like them (`-e IN_READY`, `IN_CREATE|IN_READY`); its bit, `0x00100000`, is one the
//! kernel does not use for inotify, and it is not part of [`Mask::ALL_EVENTS`].
//!
//! # When a file is ready
//! - **Settled after a close.** `IN_CLOSE_WRITE` of a regular file arms a timer of
//!   [`ReadyOptions::settle`] (default 200 ms); another close re-arms it. `IN_MODIFY` disarms it
//!   until the next close: a file still being written is not ready, whether the writer reopens it
//!   for every chunk (many closes, the last one counts) or keeps it open (one close at the end).
//!   The file is ready when its timer runs out: one ready event per completed write.
//! - **Renamed into place.** A file renamed from a temporary name (one matching
//!   [`ReadyOptions::temp_patterns`]: by default `*.part`, `*.tmp`, `*.crdownload`, `.*.swp`) is
//!   ready at once, and so is a file moved in from outside the watch (an `IN_MOVED_TO` without its
//!   `IN_MOVED_FROM`). Never a directory, and never when the new name is itself temporary.
//! - **Found by a scan.** The engine synthesizes `IN_CLOSE_WRITE` for every regular file it finds
//!   when it lists a new directory or rescans after an overflow, and for every file a catch-up
//!   finds created or modified while nobody watched, so such a file is ready once it has settled
//!   like any other (or at the close of its writer, if the kernel reports further writes). A
//!   file a catch-up finds renamed from a temporary name is ready at once, like a rename seen
//!   live.
//! - **Temporary files never are.** Their closes are ignored; patterns are matched against the
//!   file's name (a pattern with a `/` never matches).
//! - **Cancelled** by the file's deletion, and by a move out of the watch. A file renamed while
//!   its timer runs keeps the timer under its new name (dropped if the new name is temporary).
//!
//! A ready event is delivered only if the path is still a regular file (or gone, since the ready
//! state was reached before it went) when it is emitted: FIFOs, devices and symlinks get none.
//!
//! # Where it runs
//! A [`WatchSpec`](crate::WatchSpec) whose mask holds `IN_READY` makes the engine also deliver the
//! detector's inputs ([`READY_INPUTS`]) to that watch, from the kernel and from scans alike. A
//! [`ReadyStage`] between the engine and the consumer runs one [`ReadyDetector`] per such watch,
//! inserts the ready events, and drops what a watch received only for the detector. Ready events
//! carry `id` 0: the stage after this one (the daemon's journal, `inotifier watch`'s output)
//! numbers the events it delivers.
//!
//! # Limits
//! A file whose writer pauses longer than the settle time with the file still open is reported
//! ready at the pause, and again after its final close. A file found by an overflow rescan while
//! its writer was paused the same way is too.
//!
//! An overflow rescan reports a file modified when it cannot tell (a change within a clock tick
//! of the last event it saw): a file it reports whose inode, size and times are those it had at
//! its last ready event has no new completed write, and gets no second one.
//!
//! Memory per watch is bounded: timers only for files whose timer is armed, the few moves whose
//! second half has not been seen yet (at most 256, for 2 s), and the fingerprints of the last
//! 4096 files found ready (32 bytes each).

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Batch;
use crate::event::{Event, Origin, WatchId};
use crate::glob::Glob;
use crate::mask::Mask;

/// The kernel events the ready detector needs; a watch asking for `IN_READY` is delivered them.
pub const READY_INPUTS: Mask = Mask(
    Mask::IN_CLOSE_WRITE.0
        | Mask::IN_MODIFY.0
        | Mask::IN_MOVED_FROM.0
        | Mask::IN_MOVED_TO.0
        | Mask::IN_CREATE.0
        | Mask::IN_DELETE.0,
);

/// The kernel events the engine delivers to a watch whose mask is `mask`: the kernel events it
/// names, plus [`READY_INPUTS`] when it asks for `IN_READY`. Never holds our own bits.
pub const fn delivered_events(mask: Mask) -> Mask {
    let kernel = mask.intersection(Mask::ALL_EVENTS);
    if mask.contains(Mask::IN_READY) {
        kernel.union(READY_INPUTS)
    } else {
        kernel
    }
}

/// When a file counts as ready, per watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyOptions {
    /// How long a file closed after writing must stay untouched.
    pub settle: Duration,
    /// Names of temporary files: they never get a ready event, and a file renamed from one of
    /// them into place is ready at once. Matched against the file's name.
    pub temp_patterns: Vec<Glob>,
}

/// The default [`ReadyOptions::settle`].
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(200);

pub const DEFAULT_TEMP_PATTERNS: [&str; 4] = ["*.part", "*.tmp", "*.crdownload", ".*.swp"];

impl Default for ReadyOptions {
    fn default() -> ReadyOptions {
        ReadyOptions {
            settle: DEFAULT_SETTLE,
            temp_patterns: DEFAULT_TEMP_PATTERNS
                .iter()
                .map(|pattern| Glob::new(pattern).expect("valid default pattern"))
                .collect(),
        }
    }
}

impl ReadyOptions {
    /// Whether a file of this name is temporary.
    pub fn is_temporary(&self, name: &OsStr) -> bool {
        let name = name.as_bytes();
        self.temp_patterns.iter().any(|glob| glob.matches(name))
    }
}

/// How long an `IN_MOVED_FROM` is remembered while its `IN_MOVED_TO` may still come. The engine
/// pairs moves within milliseconds and delivers both halves in order, so this is only a bound
/// for moves out of the watch, whose second half never comes.
const MOVE_MEMORY: Duration = Duration::from_secs(2);
/// At most this many unfinished moves are remembered; the oldest is forgotten first.
const MAX_MOVES: usize = 256;
/// How many files found ready are remembered (32 bytes each), to recognize the rescan's spurious
/// reports; the oldest is forgotten first.
const MAX_RECENT_READY: usize = 4096;

/// What a regular file looked like when it was found ready.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fingerprint {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

/// What is at a path when its ready event is due.
enum Found {
    Regular {
        ino: u64,
        fingerprint: Fingerprint,
    },
    /// Gone since: it was ready before it went, and its deletion or move follows.
    Gone,
    /// A FIFO, a device, a symlink, a directory: never ready.
    Other,
}

fn look_at(pathname: &Path) -> Found {
    match std::fs::symlink_metadata(pathname) {
        Ok(meta) if meta.file_type().is_file() => Found::Regular {
            ino: meta.ino(),
            fingerprint: Fingerprint {
                size: meta.size(),
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            },
        },
        Ok(_) => Found::Other,
        Err(_) => Found::Gone,
    }
}

/// The files found ready last, by inode. An overflow rescan reports a file modified when it
/// cannot tell (a change within a clock tick of its last event): the engine prefers a spurious
/// report to a lost one, but a file unchanged since its ready event has no new completed write.
#[derive(Default)]
struct RecentReady {
    by_inode: HashMap<u64, Fingerprint>,
    order: VecDeque<u64>,
}

impl RecentReady {
    fn remember(&mut self, ino: u64, fingerprint: Fingerprint) {
        if self.by_inode.insert(ino, fingerprint).is_none() {
            if self.order.len() == MAX_RECENT_READY
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_inode.remove(&oldest);
            }
            self.order.push_back(ino);
        }
    }

    fn unchanged_since_ready(&self, pathname: &Path) -> bool {
        match look_at(pathname) {
            Found::Regular { ino, fingerprint } => self.by_inode.get(&ino) == Some(&fingerprint),
            Found::Gone | Found::Other => false,
        }
    }
}

/// A file whose settle timer is armed.
struct Armed {
    pathname: PathBuf,
    /// The event the ready one copies its path, name, watch descriptor, watches and origin from.
    trigger: Event,
}

/// An `IN_MOVED_FROM` waiting for its `IN_MOVED_TO`, with the timers of what moved.
struct MovedFrom {
    cookie: u32,
    from: PathBuf,
    seen: Instant,
    carried: Vec<(Instant, Armed)>,
}

/// Decides when the files of one watch are ready, from the events delivered to that watch.
///
/// Feed it every event of the watch in order with [`observe`](ReadyDetector::observe), and call
/// [`poll`](ReadyDetector::poll) by [`next_deadline`](ReadyDetector::next_deadline). `now` is
/// the caller's: the detector reads no monotonic clock itself.
pub struct ReadyDetector {
    options: ReadyOptions,
    /// Armed timers by pathname: the deadline and sequence number that key `timers`.
    pending: HashMap<PathBuf, (Instant, u64)>,
    /// The same timers in deadline order (the sequence number breaks ties in arming order).
    timers: BTreeMap<(Instant, u64), Armed>,
    next_sequence: u64,
    moves: VecDeque<MovedFrom>,
    recent: RecentReady,
    /// Reused to look pathnames up without allocating, for the many `IN_MODIFY` of big writes.
    scratch: PathBuf,
}

impl ReadyDetector {
    pub fn new(options: ReadyOptions) -> ReadyDetector {
        ReadyDetector {
            options,
            pending: HashMap::new(),
            timers: BTreeMap::new(),
            next_sequence: 0,
            moves: VecDeque::new(),
            recent: RecentReady::default(),
            scratch: PathBuf::new(),
        }
    }

    pub fn options(&self) -> &ReadyOptions {
        &self.options
    }

    /// Whether a file of this name is temporary (never ready itself).
    pub fn is_temporary(&self, name: &OsStr) -> bool {
        self.options.is_temporary(name)
    }

    /// How many files have an armed timer.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Whether `pathname` waits out its settle time, or is moving (its `IN_MOVED_FROM` waits
    /// for the pair): its ready event is still to come.
    pub fn is_settling(&self, pathname: &Path) -> bool {
        self.pending.contains_key(pathname) || self.moves.iter().any(|moved| moved.from == pathname)
    }

    /// When the next timer runs out, if one is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(deadline, _)| *deadline)
    }

    /// Takes in one event of the watch; ready events it causes at once (a rename into place) are
    /// appended to `out`.
    pub fn observe(&mut self, event: &Event, now: Instant, out: &mut Vec<Event>) {
        let mask = event.mask;
        if mask.intersects(Mask::IN_Q_OVERFLOW) {
            // What was dropped is synthesized by the rescan that follows.
            return;
        }
        if mask.intersects(Mask::IN_IGNORED | Mask::IN_DELETE_SELF) {
            // The watched object itself is gone (or no longer watched): so is what lies below.
            self.cancel_below(&event.path);
            return;
        }
        if event.dir() {
            self.observe_directory(event, now);
            return;
        }
        if mask.contains(Mask::IN_CLOSE_WRITE) {
            let pathname = event.pathname();
            let spurious =
                event.origin == Origin::Rescan && self.recent.unchanged_since_ready(&pathname);
            if !spurious && !self.is_temporary(file_name(event)) {
                self.arm(pathname, event.clone(), now + self.options.settle);
            }
        } else if mask.contains(Mask::IN_MOVED_FROM) {
            self.moved_from(event, now);
        } else if mask.contains(Mask::IN_MOVED_TO) {
            self.moved_to(event, now, out);
        } else if mask.intersects(Mask::IN_MODIFY | Mask::IN_CREATE | Mask::IN_DELETE) {
            // Written again, replaced by a new file, or gone: not ready until its next close.
            if !self.pending.is_empty() {
                self.disarm_event(event);
            }
        }
    }

    /// Appends a ready event for every file whose timer ran out by `now`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Event>) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let armed = entry.remove();
            self.pending.remove(&armed.pathname);
            self.emit(&armed.pathname, &armed.trigger, None, out);
        }
        self.forget_old_moves(now);
    }

    fn observe_directory(&mut self, event: &Event, now: Instant) {
        let mask = event.mask;
        if mask.contains(Mask::IN_MOVED_FROM) {
            self.moved_from(event, now);
        } else if mask.contains(Mask::IN_MOVED_TO) {
            // A directory renamed inside the watch takes its files' timers along.
            if let Some(moved) = self.take_move(event.cookie) {
                let to = event.pathname();
                for (deadline, armed) in moved.carried {
                    let armed = rebase(armed, &moved.from, &to);
                    self.arm(armed.pathname, armed.trigger, deadline);
                }
            }
        } else if mask.contains(Mask::IN_DELETE) {
            // Its files' deletions came first; this is for the case they were not seen.
            self.cancel_below(&event.pathname());
        }
    }

    fn moved_from(&mut self, event: &Event, now: Instant) {
        let from = event.pathname();
        let carried = if event.dir() {
            self.take_below(&from)
        } else {
            self.disarm(&from).into_iter().collect()
        };
        if self.moves.len() == MAX_MOVES {
            self.moves.pop_front();
        }
        self.moves.push_back(MovedFrom {
            cookie: event.cookie,
            from,
            seen: now,
            carried,
        });
    }

    fn moved_to(&mut self, event: &Event, now: Instant, out: &mut Vec<Event>) {
        let to = event.pathname();
        // Whatever had that name is replaced.
        self.disarm(&to);
        let moved = self.take_move(event.cookie);
        if self.is_temporary(file_name(event)) {
            return;
        }
        let from_temporary = event
            .src_pathname
            .as_deref()
            .and_then(Path::file_name)
            .is_some_and(|name| self.is_temporary(name));
        match moved {
            // Renamed inside the watch while its timer ran: the timer goes along.
            Some(mut moved) if !moved.carried.is_empty() => {
                let (deadline, armed) = moved.carried.remove(0);
                let trigger = Event {
                    origin: armed.trigger.origin,
                    ..event.clone()
                };
                self.arm(to, trigger, deadline);
            }
            // Renamed inside the watch from a name that was not temporary: not a new write.
            Some(_) if !from_temporary => {}
            // From a temporary name, or moved in from outside the watch.
            _ => self.emit(&to, event, event.src_pathname.clone(), out),
        }
        self.forget_old_moves(now);
    }

    /// Appends the ready event of the file at `pathname`, unless something other than a regular
    /// file is there now.
    fn emit(
        &mut self,
        pathname: &Path,
        trigger: &Event,
        src_pathname: Option<PathBuf>,
        out: &mut Vec<Event>,
    ) {
        match look_at(pathname) {
            Found::Other => return,
            Found::Regular { ino, fingerprint } => self.recent.remember(ino, fingerprint),
            Found::Gone => {}
        }
        out.push(ready_event(trigger, src_pathname));
    }

    fn take_move(&mut self, cookie: u32) -> Option<MovedFrom> {
        if cookie == 0 {
            return None;
        }
        let index = self.moves.iter().position(|m| m.cookie == cookie)?;
        self.moves.remove(index)
    }

    fn forget_old_moves(&mut self, now: Instant) {
        while self
            .moves
            .front()
            .is_some_and(|m| now.saturating_duration_since(m.seen) > MOVE_MEMORY)
        {
            self.moves.pop_front();
        }
    }

    fn arm(&mut self, pathname: PathBuf, trigger: Event, deadline: Instant) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let key = (deadline, sequence);
        match self.pending.entry(pathname.clone()) {
            MapEntry::Occupied(mut occupied) => {
                let old = std::mem::replace(occupied.get_mut(), key);
                self.timers.remove(&old);
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(key);
            }
        }
        self.timers.insert(key, Armed { pathname, trigger });
    }

    /// Disarms the timer of the event's file, looking it up without allocating.
    fn disarm_event(&mut self, event: &Event) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.as_mut_os_string().clear();
        scratch.push(&event.path);
        if !event.name.is_empty() {
            scratch.push(&event.name);
        }
        self.disarm(&scratch);
        self.scratch = scratch;
    }

    fn disarm(&mut self, pathname: &Path) -> Option<(Instant, Armed)> {
        let key = self.pending.remove(pathname)?;
        self.timers.remove(&key).map(|armed| (key.0, armed))
    }

    /// Removes and returns the timers of the files below directory `dir`.
    fn take_below(&mut self, dir: &Path) -> Vec<(Instant, Armed)> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let below: Vec<PathBuf> = self
            .pending
            .keys()
            .filter(|pathname| pathname.starts_with(dir))
            .cloned()
            .collect();
        below
            .iter()
            .filter_map(|pathname| self.disarm(pathname))
            .collect()
    }

    fn cancel_below(&mut self, dir: &Path) {
        self.take_below(dir);
    }
}

/// The timer of a file inside a directory moved from `from` to `to`, with its paths moved too.
fn rebase(armed: Armed, from: &Path, to: &Path) -> Armed {
    let moved = |path: &Path| match path.strip_prefix(from) {
        Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
        Ok(rest) => to.join(rest),
        Err(_) => path.to_path_buf(),
    };
    let mut trigger = armed.trigger;
    trigger.path = Arc::from(moved(&trigger.path));
    Armed {
        pathname: moved(&armed.pathname),
        trigger,
    }
}

/// The name of the event's subject: its `name`, or for events about a watched file itself, the
/// last component of its path.
fn file_name(event: &Event) -> &OsStr {
    if event.name.is_empty() {
        event.path.file_name().unwrap_or_default()
    } else {
        &event.name
    }
}

fn ready_event(trigger: &Event, src_pathname: Option<PathBuf>) -> Event {
    Event {
        // Numbered by the stage that delivers it.
        id: 0,
        mask: Mask::IN_READY,
        cookie: 0,
        wd: trigger.wd,
        path: trigger.path.clone(),
        name: trigger.name.clone(),
        src_pathname,
        origin: trigger.origin,
        time_ns: crate::sys::realtime_ns(),
        watches: trigger.watches.clone(),
    }
}

/// What the stage knows of one watch.
struct StageWatch {
    /// The mask the watch was given: what its consumer asked for.
    user_mask: Mask,
    detector: Option<ReadyDetector>,
    /// `[id]`, shared by the ready events of this watch.
    alone: Arc<[WatchId]>,
}

/// The stage between the engine and whoever consumes its events (the daemon's router,
/// `inotifier watch`'s output): runs a [`ReadyDetector`] for every watch that asked for
/// `IN_READY`, inserts the ready events, and keeps of each event only the watches that asked for
/// it (the engine delivers [`READY_INPUTS`] to ready watches whatever else they asked for).
///
/// Register every watch with [`set_watch`](ReadyStage::set_watch) before its events reach
/// [`process`](ReadyStage::process); events of unknown watches pass as they are. Call
/// [`poll`](ReadyStage::poll) when [`next_deadline`](ReadyStage::next_deadline) passes. With no
/// watch asking for `IN_READY`, batches pass through untouched.
#[derive(Default)]
pub struct ReadyStage {
    watches: HashMap<WatchId, StageWatch>,
    ready_watches: usize,
}

impl ReadyStage {
    pub fn new() -> ReadyStage {
        ReadyStage::default()
    }

    /// Registers (or changes) a watch: `user_mask` is the mask of its [`crate::WatchSpec`]. With
    /// `IN_READY` in it, files are ready by `ready` (the defaults when `None`); a watch that keeps
    /// the same options keeps its armed timers.
    pub fn set_watch(&mut self, id: WatchId, user_mask: Mask, ready: Option<ReadyOptions>) {
        let options = user_mask
            .contains(Mask::IN_READY)
            .then(|| ready.unwrap_or_default());
        let kept = self
            .watches
            .remove(&id)
            .and_then(|old| old.detector)
            .filter(|detector| Some(detector.options()) == options.as_ref());
        let detector = kept.or_else(|| options.map(ReadyDetector::new));
        self.watches.insert(
            id,
            StageWatch {
                user_mask,
                detector,
                alone: Arc::new([id]),
            },
        );
        self.count_ready_watches();
    }

    /// Forgets a watch and its armed timers.
    pub fn remove_watch(&mut self, id: WatchId) {
        self.watches.remove(&id);
        self.count_ready_watches();
    }

    /// Whether [`set_watch`](ReadyStage::set_watch) registered this watch.
    pub fn has_watch(&self, id: WatchId) -> bool {
        self.watches.contains_key(&id)
    }

    /// Whether any watch asks for `IN_READY`; if not, batches pass through untouched.
    pub fn is_active(&self) -> bool {
        self.ready_watches > 0
    }

    fn count_ready_watches(&mut self) {
        self.ready_watches = self
            .watches
            .values()
            .filter(|watch| watch.detector.is_some())
            .count();
    }

    /// Feeds a batch from the engine to the detectors. Returns the events each watch asked for,
    /// each ready event right after the event that made it, then the ready events whose settle
    /// time has passed by `now`.
    pub fn process(&mut self, batch: Batch, now: Instant) -> Batch {
        if !self.is_active() {
            return batch;
        }
        let mut out = Vec::with_capacity(batch.len());
        let mut ready = Vec::new();
        for mut event in batch {
            for id in event.watches.iter() {
                if let Some(watch) = self.watches.get_mut(id)
                    && let Some(detector) = watch.detector.as_mut()
                {
                    let start = ready.len();
                    detector.observe(&event, now, &mut ready);
                    retag(&mut ready[start..], &watch.alone);
                }
            }
            match self.asked_for(&event) {
                Asked::All => out.push(event),
                Asked::None => {}
                Asked::Some(watches) => {
                    event.watches = watches;
                    out.push(event);
                }
            }
            merge_into(&mut out, &mut ready);
        }
        self.poll_into(now, &mut out);
        out
    }

    /// The ready events whose settle time has passed by `now`.
    pub fn poll(&mut self, now: Instant) -> Batch {
        let mut out = Vec::new();
        if self.is_active() {
            self.poll_into(now, &mut out);
        }
        out
    }

    /// How many files are waiting out their settle time, over all watches.
    pub fn pending_count(&self) -> usize {
        self.watches
            .values()
            .filter_map(|watch| watch.detector.as_ref())
            .map(ReadyDetector::pending_count)
            .sum()
    }

    /// Whether a file of `watch` still has its ready event to come (see
    /// [`ReadyDetector::is_settling`]).
    pub fn is_settling(&self, watch: WatchId, pathname: &Path) -> bool {
        self.watches
            .get(&watch)
            .and_then(|watch| watch.detector.as_ref())
            .is_some_and(|detector| detector.is_settling(pathname))
    }

    /// When [`poll`](ReadyStage::poll) has something to deliver next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.watches
            .values()
            .filter_map(|watch| watch.detector.as_ref()?.next_deadline())
            .min()
    }

    fn poll_into(&mut self, now: Instant, out: &mut Vec<Event>) {
        let mut ready = Vec::new();
        for watch in self.watches.values_mut() {
            if let Some(detector) = watch.detector.as_mut() {
                let start = ready.len();
                detector.poll(now, &mut ready);
                retag(&mut ready[start..], &watch.alone);
            }
        }
        merge_into(out, &mut ready);
    }

    /// Which of the event's watches asked for it.
    fn asked_for(&self, event: &Event) -> Asked {
        let kernel_event = event.mask.intersection(Mask::ALL_EVENTS);
        let always = event.mask.intersects(Mask::SPECIAL_EVENTS);
        let wants = |id: &WatchId| {
            always
                || self
                    .watches
                    .get(id)
                    .is_none_or(|watch| watch.user_mask.intersects(kernel_event))
        };
        let wanted = event.watches.iter().filter(|id| wants(id)).count();
        if wanted == event.watches.len() {
            Asked::All
        } else if wanted == 0 {
            Asked::None
        } else {
            Asked::Some(event.watches.iter().copied().filter(wants).collect())
        }
    }
}

enum Asked {
    All,
    None,
    Some(Arc<[WatchId]>),
}

/// Ready events are the business of the watch whose detector made them.
fn retag(events: &mut [Event], watches: &Arc<[WatchId]>) {
    for event in events {
        event.watches = watches.clone();
    }
}

/// Moves `ready` to `out`, one event per file: several watches that find the same file ready at
/// the same moment share one event, as the engine's events are shared.
fn merge_into(out: &mut Vec<Event>, ready: &mut Vec<Event>) {
    let start = out.len();
    for event in ready.drain(..) {
        let same = out[start..].iter_mut().find(|earlier| {
            earlier.path == event.path
                && earlier.name == event.name
                && earlier.src_pathname == event.src_pathname
        });
        match same {
            Some(earlier) => {
                let mut watches = earlier.watches.to_vec();
                watches.extend(event.watches.iter());
                watches.sort_unstable();
                watches.dedup();
                earlier.watches = watches.into();
            }
            None => out.push(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::event::Origin;

    const SETTLE: Duration = Duration::from_millis(200);

    struct Fixture {
        dir: tempfile::TempDir,
        path: Arc<Path>,
        start: Instant,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path: Arc<Path> = Arc::from(dir.path());
            Fixture {
                dir,
                path,
                start: Instant::now(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.start + Duration::from_millis(ms)
        }

        /// An event about `name` in the fixture's directory; the file is created when `mask`
        /// implies it exists, as the kernel would have seen it.
        fn event(&self, mask: Mask, name: &str) -> Event {
            let pathname = self.dir.path().join(name);
            if !mask.contains(Mask::IN_ISDIR)
                && !mask.intersects(Mask::IN_DELETE | Mask::IN_MOVED_FROM)
                && !pathname.exists()
            {
                std::fs::write(&pathname, b"content").unwrap();
            }
            Event {
                id: 7,
                mask,
                cookie: 0,
                wd: 1,
                path: self.path.clone(),
                name: OsString::from(name),
                src_pathname: None,
                origin: Origin::Kernel,
                time_ns: 0,
                watches: Arc::new([WatchId(1)]),
            }
        }

        fn moved(&self, from: &str, to: &str, cookie: u32, is_dir: bool) -> (Event, Event) {
            let isdir = if is_dir {
                Mask::IN_ISDIR
            } else {
                Mask::empty()
            };
            let from_path = self.dir.path().join(from);
            let to_path = self.dir.path().join(to);
            if from_path.exists() {
                std::fs::rename(&from_path, &to_path).unwrap();
            }
            let mut moved_from = self.event(Mask::IN_MOVED_FROM | isdir, from);
            moved_from.cookie = cookie;
            let mut moved_to = self.event(Mask::IN_MOVED_TO | isdir, to);
            moved_to.cookie = cookie;
            moved_to.src_pathname = Some(from_path);
            (moved_from, moved_to)
        }
    }

    fn detector() -> ReadyDetector {
        ReadyDetector::new(ReadyOptions::default())
    }

    fn names(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_closed_file_is_ready_once_it_has_settled() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        let close = f.event(Mask::IN_CLOSE_WRITE, "a.csv");
        detector.observe(&close, f.at(0), &mut out);
        assert!(out.is_empty());
        assert_eq!(detector.next_deadline(), Some(f.at(0) + SETTLE));
        detector.poll(f.at(199), &mut out);
        assert!(out.is_empty(), "not before the settle time");
        detector.poll(f.at(200), &mut out);
        assert_eq!(out.len(), 1);
        let ready = &out[0];
        assert_eq!(ready.mask, Mask::IN_READY);
        assert_eq!(ready.id, 0, "numbered by a later stage");
        assert_eq!(ready.path, close.path);
        assert_eq!(ready.name, close.name);
        assert_eq!((ready.wd, ready.cookie), (1, 0));
        assert_eq!(ready.src_pathname, None);
        assert_eq!(ready.origin, Origin::Kernel);
        assert!(ready.time_ns > 0);
        assert_eq!(&*ready.watches, &[WatchId(1)]);
        assert_eq!(detector.next_deadline(), None);
        assert_eq!(detector.pending_count(), 0);
        detector.poll(f.at(10_000), &mut out);
        assert_eq!(out.len(), 1, "one ready event per completed write");
    }

    #[test]
    fn a_file_closed_after_every_chunk_is_ready_after_the_last() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        for chunk in 0..100 {
            let now = f.at(chunk * 10);
            detector.observe(&f.event(Mask::IN_MODIFY, "big"), now, &mut out);
            detector.poll(now, &mut out);
            detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "big"), now, &mut out);
            detector.poll(now, &mut out);
        }
        assert!(out.is_empty(), "still being written");
        assert_eq!(detector.pending_count(), 1);
        detector.poll(f.at(990 + 199), &mut out);
        assert!(out.is_empty());
        detector.poll(f.at(990 + 200), &mut out);
        assert_eq!(names(&out), ["big"]);
    }

    #[test]
    fn a_modification_disarms_until_the_next_close() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "a"), f.at(0), &mut out);
        detector.observe(&f.event(Mask::IN_MODIFY, "a"), f.at(100), &mut out);
        assert_eq!(detector.pending_count(), 0, "only armed timers are kept");
        detector.poll(f.at(5000), &mut out);
        assert!(out.is_empty(), "a file being written is not ready");
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "a"), f.at(6000), &mut out);
        detector.poll(f.at(6200), &mut out);
        assert_eq!(names(&out), ["a"]);
    }

    #[test]
    fn deletion_and_recreation_cancel() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "gone"), f.at(0), &mut out);
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "new"), f.at(0), &mut out);
        std::fs::remove_file(f.dir.path().join("gone")).unwrap();
        detector.observe(&f.event(Mask::IN_DELETE, "gone"), f.at(10), &mut out);
        detector.observe(&f.event(Mask::IN_CREATE, "new"), f.at(10), &mut out);
        detector.poll(f.at(1000), &mut out);
        assert!(out.is_empty(), "{:?}", names(&out));
    }

    #[test]
    fn temporary_files_are_never_ready_and_make_their_rename_ready_at_once() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        for name in ["a.part", "b.tmp", "c.crdownload", ".d.swp"] {
            assert!(detector.is_temporary(OsStr::new(name)), "{name}");
            detector.observe(&f.event(Mask::IN_CLOSE_WRITE, name), f.at(0), &mut out);
        }
        assert!(!detector.is_temporary(OsStr::new("d.swp")));
        assert!(!detector.is_temporary(OsStr::new("report.csv")));
        assert_eq!(detector.next_deadline(), None);
        let (from, to) = f.moved("a.part", "a", 5, false);
        detector.observe(&from, f.at(1), &mut out);
        assert!(out.is_empty());
        detector.observe(&to, f.at(1), &mut out);
        assert_eq!(names(&out), ["a"]);
        assert_eq!(out[0].src_pathname, Some(f.dir.path().join("a.part")));
        detector.poll(f.at(10_000), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn custom_patterns_replace_the_defaults() {
        let f = Fixture::new();
        let mut detector = ReadyDetector::new(ReadyOptions {
            settle: Duration::from_millis(50),
            temp_patterns: vec![Glob::new("*.upload").unwrap()],
        });
        let mut out = Vec::new();
        assert!(!detector.is_temporary(OsStr::new("x.part")));
        detector.observe(
            &f.event(Mask::IN_CLOSE_WRITE, "x.upload"),
            f.at(0),
            &mut out,
        );
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "x.part"), f.at(0), &mut out);
        detector.poll(f.at(50), &mut out);
        assert_eq!(names(&out), ["x.part"]);
        let (from, to) = f.moved("x.upload", "x", 9, false);
        detector.observe(&from, f.at(60), &mut out);
        detector.observe(&to, f.at(60), &mut out);
        assert_eq!(names(&out), ["x.part", "x"]);
    }

    #[test]
    fn a_rename_inside_the_watch_keeps_the_timer_or_is_no_new_write() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "draft"), f.at(0), &mut out);
        let (from, to) = f.moved("draft", "final", 11, false);
        detector.observe(&from, f.at(50), &mut out);
        detector.observe(&to, f.at(50), &mut out);
        assert!(out.is_empty());
        detector.poll(f.at(199), &mut out);
        assert!(out.is_empty(), "the timer keeps its deadline");
        detector.poll(f.at(200), &mut out);
        assert_eq!(names(&out), ["final"]);
        assert_eq!(out[0].src_pathname, None);

        // Already ready, renamed again: nothing new was written.
        let (from, to) = f.moved("final", "final2", 12, false);
        detector.observe(&from, f.at(300), &mut out);
        detector.observe(&to, f.at(300), &mut out);
        detector.poll(f.at(10_000), &mut out);
        assert_eq!(out.len(), 1);

        // Renamed to a temporary name while pending: never ready.
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "b"), f.at(20_000), &mut out);
        let (from, to) = f.moved("b", "b.tmp", 13, false);
        detector.observe(&from, f.at(20_001), &mut out);
        detector.observe(&to, f.at(20_001), &mut out);
        detector.poll(f.at(30_000), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn moved_in_from_outside_is_ready_at_once_but_not_a_directory_nor_a_temporary_name() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        let mut unpaired = f.event(Mask::IN_MOVED_TO, "arrived");
        unpaired.cookie = 44;
        detector.observe(&unpaired, f.at(0), &mut out);
        assert_eq!(names(&out), ["arrived"]);
        assert_eq!(out[0].src_pathname, None);

        std::fs::create_dir(f.dir.path().join("dir")).unwrap();
        detector.observe(
            &f.event(Mask::IN_MOVED_TO | Mask::IN_ISDIR, "dir"),
            f.at(0),
            &mut out,
        );
        detector.observe(&f.event(Mask::IN_MOVED_TO, "in.part"), f.at(0), &mut out);
        // A paired move whose first half happened outside this watch.
        let (_, mut to) = f.moved("elsewhere", "also-arrived", 45, false);
        to.src_pathname = Some(PathBuf::from("/somewhere/else"));
        detector.observe(&to, f.at(0), &mut out);
        assert_eq!(names(&out), ["arrived", "also-arrived"]);
    }

    #[test]
    fn a_file_moved_out_is_never_ready() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "leaving"), f.at(0), &mut out);
        let mut from = f.event(Mask::IN_MOVED_FROM, "leaving");
        from.cookie = 3;
        detector.observe(&from, f.at(10), &mut out);
        detector.poll(f.at(10_000), &mut out);
        assert!(out.is_empty());
        assert_eq!(detector.pending_count(), 0);
        assert!(detector.moves.is_empty(), "unfinished moves are forgotten");
    }

    #[test]
    fn a_renamed_directory_takes_its_files_timers_along() {
        let f = Fixture::new();
        std::fs::create_dir(f.dir.path().join("d")).unwrap();
        std::fs::write(f.dir.path().join("d/inner"), b"x").unwrap();
        let mut detector = detector();
        let mut out = Vec::new();
        let mut close = f.event(Mask::IN_CLOSE_WRITE, "inner");
        close.path = Arc::from(f.dir.path().join("d"));
        close.wd = 2;
        detector.observe(&close, f.at(0), &mut out);
        let (from, to) = f.moved("d", "e", 21, true);
        detector.observe(&from, f.at(10), &mut out);
        detector.observe(&to, f.at(10), &mut out);
        detector.poll(f.at(200), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].pathname(), f.dir.path().join("e/inner"));
        assert_eq!(out[0].wd, 2, "the directory keeps its watch");
    }

    #[test]
    fn only_regular_files_are_ready() {
        let f = Fixture::new();
        let fifo = f.dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink("target", f.dir.path().join("link")).unwrap();
        let mut detector = detector();
        let mut out = Vec::new();
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "fifo"), f.at(0), &mut out);
        detector.observe(&f.event(Mask::IN_MOVED_TO, "link"), f.at(0), &mut out);
        detector.poll(f.at(1000), &mut out);
        assert!(out.is_empty(), "{:?}", names(&out));
    }

    #[test]
    fn scanned_files_settle_like_closed_ones() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        let mut create = f.event(Mask::IN_CREATE, "found");
        create.origin = Origin::Rescan;
        let mut close = f.event(Mask::IN_CLOSE_WRITE, "found");
        close.origin = Origin::Rescan;
        detector.observe(&create, f.at(0), &mut out);
        detector.observe(&close, f.at(0), &mut out);
        detector.poll(f.at(200), &mut out);
        assert_eq!(names(&out), ["found"]);
        assert_eq!(out[0].origin, Origin::Rescan);
    }

    #[test]
    fn a_rescan_reporting_a_file_unchanged_since_its_ready_event_is_no_new_write() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        detector.observe(&f.event(Mask::IN_CLOSE_WRITE, "a"), f.at(0), &mut out);
        detector.poll(f.at(200), &mut out);
        assert_eq!(names(&out), ["a"]);
        let rescan = |mask| {
            let mut event = f.event(mask, "a");
            event.origin = Origin::Rescan;
            event
        };
        // The overflow rescan could not tell whether it changed, and says it did.
        detector.observe(&rescan(Mask::IN_MODIFY), f.at(1000), &mut out);
        detector.observe(&rescan(Mask::IN_CLOSE_WRITE), f.at(1000), &mut out);
        assert_eq!(detector.next_deadline(), None);
        // It really changed.
        std::fs::write(f.dir.path().join("a"), b"new and longer content").unwrap();
        detector.observe(&rescan(Mask::IN_MODIFY), f.at(2000), &mut out);
        detector.observe(&rescan(Mask::IN_CLOSE_WRITE), f.at(2000), &mut out);
        detector.poll(f.at(2200), &mut out);
        assert_eq!(names(&out), ["a", "a"]);
        assert_eq!(out[1].origin, Origin::Rescan);
    }

    #[test]
    fn recent_ready_files_are_bounded() {
        let mut recent = RecentReady::default();
        let fingerprint = Fingerprint {
            size: 1,
            mtime_ns: 2,
            ctime_ns: 3,
        };
        for ino in 0..(MAX_RECENT_READY as u64 * 2) {
            recent.remember(ino, fingerprint);
            recent.remember(ino, fingerprint);
        }
        assert_eq!(recent.by_inode.len(), MAX_RECENT_READY);
        assert_eq!(recent.order.len(), MAX_RECENT_READY);
    }

    #[test]
    fn unfinished_moves_are_bounded() {
        let f = Fixture::new();
        let mut detector = detector();
        let mut out = Vec::new();
        for cookie in 1..=(MAX_MOVES as u32 * 2) {
            let mut from = f.event(Mask::IN_MOVED_FROM, "x");
            from.cookie = cookie;
            detector.observe(&from, f.at(0), &mut out);
        }
        assert_eq!(detector.moves.len(), MAX_MOVES);
    }

    // ----- the stage ---------------------------------------------------------------------------

    #[test]
    fn without_ready_watches_batches_pass_untouched() {
        let f = Fixture::new();
        let mut stage = ReadyStage::new();
        stage.set_watch(WatchId(1), Mask::IN_CREATE, Some(ReadyOptions::default()));
        assert!(!stage.is_active());
        let batch = vec![f.event(Mask::IN_MODIFY, "a")];
        assert_eq!(stage.process(batch.clone(), f.at(0)), batch);
        assert_eq!(stage.next_deadline(), None);
    }

    #[test]
    fn the_stage_keeps_what_each_watch_asked_for_and_adds_ready_events() {
        let f = Fixture::new();
        let mut stage = ReadyStage::new();
        stage.set_watch(WatchId(1), Mask::IN_READY | Mask::IN_CREATE, None);
        stage.set_watch(WatchId(2), Mask::IN_MODIFY, None);
        assert!(stage.is_active());
        let both: Arc<[WatchId]> = Arc::new([WatchId(1), WatchId(2)]);
        let mut create = f.event(Mask::IN_CREATE, "a");
        create.watches = both.clone();
        let modify = f.event(Mask::IN_MODIFY, "a");
        let mut modify_both = modify.clone();
        modify_both.watches = both.clone();
        let close = f.event(Mask::IN_CLOSE_WRITE, "a");
        let mut unknown = f.event(Mask::IN_ATTRIB, "a");
        unknown.watches = Arc::new([WatchId(9)]);

        let out = stage.process(
            vec![create, modify, modify_both, close, unknown.clone()],
            f.at(0),
        );
        let summary: Vec<(Mask, Vec<WatchId>)> =
            out.iter().map(|e| (e.mask, e.watches.to_vec())).collect();
        assert_eq!(
            summary,
            [
                (Mask::IN_CREATE, vec![WatchId(1)]),
                (Mask::IN_MODIFY, vec![WatchId(2)]),
                (Mask::IN_ATTRIB, vec![WatchId(9)]),
            ]
        );
        assert_eq!(stage.next_deadline(), Some(f.at(200)));
        assert!(stage.poll(f.at(199)).is_empty());
        let ready = stage.poll(f.at(200));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].mask, Mask::IN_READY);
        assert_eq!(&*ready[0].watches, &[WatchId(1)]);
        assert_eq!(stage.next_deadline(), None);

        stage.remove_watch(WatchId(1));
        assert!(!stage.is_active());
    }

    #[test]
    fn the_stage_inserts_immediate_ready_events_after_their_trigger_and_merges_watches() {
        let f = Fixture::new();
        let mut stage = ReadyStage::new();
        stage.set_watch(WatchId(1), Mask::IN_READY, None);
        stage.set_watch(WatchId(2), Mask::IN_READY | Mask::IN_MOVED_TO, None);
        let both: Arc<[WatchId]> = Arc::new([WatchId(1), WatchId(2)]);
        let (mut from, mut to) = f.moved("a.part", "a", 8, false);
        std::fs::write(f.dir.path().join("a"), b"done").unwrap();
        from.watches = both.clone();
        to.watches = both.clone();
        let out = stage.process(vec![from, to], f.at(0));
        let summary: Vec<(Mask, Vec<WatchId>)> =
            out.iter().map(|e| (e.mask, e.watches.to_vec())).collect();
        assert_eq!(
            summary,
            [
                (Mask::IN_MOVED_TO, vec![WatchId(2)]),
                (Mask::IN_READY, vec![WatchId(1), WatchId(2)]),
            ]
        );
    }

    #[test]
    fn process_delivers_what_settled_meanwhile() {
        let f = Fixture::new();
        let mut stage = ReadyStage::new();
        stage.set_watch(WatchId(1), Mask::IN_READY | Mask::IN_CREATE, None);
        stage.process(vec![f.event(Mask::IN_CLOSE_WRITE, "a")], f.at(0));
        let out = stage.process(vec![f.event(Mask::IN_CREATE, "b")], f.at(500));
        assert_eq!(names(&out), ["b", "a"]);
        assert_eq!(out[1].mask, Mask::IN_READY);
    }

    #[test]
    fn changing_a_watch_keeps_its_timers_when_its_options_stay() {
        let f = Fixture::new();
        let mut stage = ReadyStage::new();
        stage.set_watch(WatchId(1), Mask::IN_READY, None);
        stage.process(vec![f.event(Mask::IN_CLOSE_WRITE, "a")], f.at(0));
        stage.set_watch(WatchId(1), Mask::IN_READY | Mask::IN_CREATE, None);
        assert_eq!(stage.next_deadline(), Some(f.at(200)));
        let slower = ReadyOptions {
            settle: Duration::from_secs(1),
            ..ReadyOptions::default()
        };
        stage.set_watch(WatchId(1), Mask::IN_READY, Some(slower));
        assert_eq!(stage.next_deadline(), None);
    }

    #[test]
    fn delivered_events_never_hold_our_bits() {
        assert_eq!(
            delivered_events(Mask::IN_READY),
            READY_INPUTS,
            "the detector's inputs"
        );
        assert_eq!(
            delivered_events(Mask::IN_READY | Mask::IN_ATTRIB | Mask::IN_ONLYDIR),
            READY_INPUTS | Mask::IN_ATTRIB
        );
        assert_eq!(delivered_events(Mask::IN_CREATE), Mask::IN_CREATE);
        assert!(!READY_INPUTS.intersects(Mask::IN_READY));
    }
}
