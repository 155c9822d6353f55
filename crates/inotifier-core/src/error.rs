use std::io;
use std::path::PathBuf;

use crate::event::WatchId;
use crate::glob::GlobError;

/// Everything the engine can refuse or fail at, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: no such file or directory; check the path, or create it before watching it")]
    NotFound { path: PathBuf },

    #[error("{path}: permission denied; run as a user that can read this directory")]
    PermissionDenied { path: PathBuf },

    #[error(
        "out of inotify watches while adding {path}: fs.inotify.max_user_watches is {limit} and \
         this tree needs {needed} watches (besides those this user already has); raise it, e.g. \
         `sysctl fs.inotify.max_user_watches={suggested}`, or exclude directories you do not need"
    )]
    TooManyWatches {
        path: PathBuf,
        limit: String,
        needed: u64,
        suggested: u64,
    },

    #[error(
        "out of inotify instances: fs.inotify.max_user_instances is {limit} and this user has \
         used them all; stop other watchers or raise it, e.g. \
         `sysctl fs.inotify.max_user_instances={suggested}`"
    )]
    TooManyInstances { limit: String, suggested: u64 },

    #[error("invalid glob: {0}")]
    Glob(#[from] GlobError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("no watch with id {0:?}")]
    UnknownWatch(WatchId),

    #[error(
        "watch {0:?} has no snapshot to report changes against; take a full snapshot first, or \
         add the watch with a baseline"
    )]
    NoSnapshot(WatchId),

    #[error("the engine has stopped")]
    Stopped,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
