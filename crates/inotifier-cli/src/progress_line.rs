//! The progress line of `inotifier watch` on a terminal: a long initial scan (or catch-up
//! with `--state`) shows where it is on stderr, redrawn in place and cleared when it ends.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inotifier_core::progress::{self, Update};

/// Draws every long pass of the engine on stderr. Only for a terminal: the caller asks.
pub fn install() {
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    progress::set_observer(Box::new(move |update: &Update<'_>| {
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        if update.finished {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            // The spinner turns while the engine is busy between two updates.
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        bar.set_message(update.to_string());
    }));
}
