//! `inotifier watch --state DIR`: catch-up for ad-hoc watches. A snapshot of each watched tree
//! is kept in `DIR/watch.journal` (the daemon's journal format, snapshots only); the next
//! `watch` with the same DIR and PATH first reports, marked `"origin": "catchup"`, what changed
//! in between.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use inotifier_core::ready::ReadyStage;
use inotifier_core::{Engine, WatchId, WatchSpec};
use inotifier_daemon::hold_back_settling;
use inotifier_journal::{Journal, JournalOptions};

const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Several clock ticks: the export holds back entries changed in the last ones.
const LAST_ROUNDS_APART: Duration = Duration::from_millis(15);

pub struct WatchState {
    journal: Arc<Journal>,
    watches: Vec<Tracked>,
}

struct Tracked {
    id: WatchId,
    key: String,
    root: PathBuf,
}

impl WatchState {
    /// Opens (creating it, mode 0700, if need be) the state directory and its journal.
    pub fn open(dir: &Path) -> anyhow::Result<WatchState> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let journal = Journal::open(&JournalOptions::new(dir.join("watch.journal")))?;
        Ok(WatchState {
            journal: Arc::new(journal),
            watches: Vec::new(),
        })
    }

    /// Adds a watch: against the snapshot saved for its path by an earlier run (what changed
    /// since is reported first), or, the first time, recording one.
    pub fn add(&mut self, engine: &Engine, spec: WatchSpec) -> anyhow::Result<WatchId> {
        let root = std::path::absolute(&spec.path).unwrap_or_else(|_| spec.path.clone());
        let key = format!("watch:{}", root.display());
        let id = match self.journal.load_snapshot(&key)? {
            Some(baseline) => engine.add_watch_with_baseline(spec, baseline)?,
            None => {
                let id = engine.add_watch(spec)?;
                self.journal.replace_snapshot(&key, &engine.snapshot(id)?)?;
                id
            }
        };
        self.watches.push(Tracked { id, key, root });
        Ok(id)
    }

    /// Saves the snapshots every second until told to stop (or the engine stops), then once
    /// more and stops the engine. `stage`: the ready stage, whose files still settling are held
    /// back (else a run ending before their ready event would never report it).
    pub fn keep(
        self,
        engine: Arc<Engine>,
        stage: Option<Arc<Mutex<ReadyStage>>>,
    ) -> anyhow::Result<(Sender<()>, JoinHandle<()>)> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("inotifier-state".into())
            .spawn(move || {
                let mut saver = Saver {
                    state: self,
                    deferred: Default::default(),
                };
                loop {
                    match stopped.recv_timeout(SAVE_EVERY) {
                        Err(RecvTimeoutError::Timeout) => {
                            if !saver.save(&engine, stage.as_deref()) {
                                return;
                            }
                        }
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            saver.save(&engine, stage.as_deref());
                            for _ in 0..3 {
                                std::thread::sleep(LAST_ROUNDS_APART);
                                saver.save(&engine, stage.as_deref());
                            }
                            engine.stopper().stop();
                            return;
                        }
                    }
                }
            })
            .context("cannot start the state thread")?;
        Ok((stop, thread))
    }
}

struct Saver {
    state: WatchState,
    /// Held-back changes per watch, in order.
    deferred: std::collections::HashMap<WatchId, Vec<inotifier_core::SnapshotChange>>,
}

impl Saver {
    /// One round; false once the engine has stopped.
    fn save(&mut self, engine: &Engine, stage: Option<&Mutex<ReadyStage>>) -> bool {
        for watch in &self.state.watches {
            let changes = match engine.snapshot_changes(watch.id) {
                Ok(changes) => changes,
                Err(inotifier_core::Error::Stopped) => return false,
                Err(error) => {
                    tracing::warn!("cannot export the snapshot of {}: {error}", watch.key);
                    continue;
                }
            };
            let mut all = self.deferred.remove(&watch.id).unwrap_or_default();
            all.extend(changes);
            if all.is_empty() {
                continue;
            }
            let (save, mut deferred) = match stage {
                Some(stage) => {
                    let stage = stage.lock().unwrap_or_else(|e| e.into_inner());
                    hold_back_settling(all, &watch.root, |path| stage.is_settling(watch.id, path))
                }
                None => (all, Vec::new()),
            };
            if let Err(error) = self.state.journal.save_snapshot(&watch.key, &save) {
                tracing::warn!("cannot save the snapshot of {}: {error}", watch.key);
                let mut again = save;
                again.append(&mut deferred);
                deferred = again;
            }
            if !deferred.is_empty() {
                self.deferred.insert(watch.id, deferred);
            }
        }
        true
    }
}
