//! The journal's housekeeping thread of a running daemon: hands the workers the events that
//! `inotifier journal retry` or `replay` put back (from another process), once a second.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use inotifier_journal::Journal;

use crate::pipeline::{self, SharedPipeline};

const PERIOD: Duration = Duration::from_secs(1);

pub struct Keeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl Keeper {
    pub fn start(journal: Arc<Journal>, pipeline: SharedPipeline) -> std::io::Result<Keeper> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("inotifier-journal".into())
                .spawn(move || {
                    let (stopped, wake) = &*stop;
                    let mut guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                    while !*guard {
                        guard = wake
                            .wait_timeout(guard, PERIOD)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                        if *guard {
                            break;
                        }
                        drop(guard);
                        requeue(&journal, &pipeline);
                        guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                    }
                })?
        };
        Ok(Keeper { stop, thread })
    }

    pub fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        let _ = self.thread.join();
    }
}

fn requeue(journal: &Journal, pipeline: &SharedPipeline) {
    let requeued = match journal.take_requeued() {
        Ok(requeued) => requeued,
        Err(error) => {
            tracing::warn!("cannot read the events put back in the journal: {error}");
            return;
        }
    };
    if requeued.is_empty() {
        return;
    }
    let pipeline = pipeline::lock(pipeline);
    let mut unknown = 0;
    // In id order already; one dispatch per processor keeps each one's order.
    let mut by_processor: Vec<(inotifier_journal::ProcessorId, Vec<_>)> = Vec::new();
    for (processor, event) in requeued {
        match by_processor
            .iter_mut()
            .find(|(known, _)| *known == processor)
        {
            Some((_, events)) => events.push(event),
            None => by_processor.push((processor, vec![event])),
        }
    }
    for (processor, events) in by_processor {
        match pipeline.route_of(processor) {
            Some(route) => {
                tracing::info!(
                    "{} event(s) put back in the journal redelivered to {}",
                    events.len(),
                    route.processor_name
                );
                pipeline.redeliver(&route, events);
            }
            // Stays pending in the journal: the watch's next start delivers it.
            None => unknown += events.len(),
        }
    }
    if unknown > 0 {
        tracing::warn!(
            "{unknown} event(s) put back for processors no watch of this daemon runs: they stay \
             pending until one does"
        );
    }
}
