//! Why a processor could not be built from its options.

/// A processor's options were wrong. The message names the processor and the option at fault
/// and says what is valid, ready to be shown to whoever wrote the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("unknown processor `{kind}`: expected one of {}", .expected.join(", "))]
    UnknownProcessor {
        kind: String,
        expected: Vec<&'static str>,
    },
    #[error(
        "unknown option `{option}` for processor {processor}: expected one of {}",
        .expected.join(", ")
    )]
    UnknownOption {
        processor: &'static str,
        option: String,
        expected: Vec<&'static str>,
    },
    #[error("missing option `{option}` for processor {processor}")]
    MissingOption {
        processor: &'static str,
        option: String,
    },
    #[error("option `{option}` of processor {processor}: {message}")]
    InvalidOption {
        processor: &'static str,
        option: String,
        message: String,
    },
    /// The options are right, but what they name is not on this machine: a file (a CA, a
    /// client key) or an environment variable (a secret). A host that only builds or
    /// migrates a project may lack it; the daemon's host may not (the Django checks make this
    /// a warning, the daemon's start an error).
    #[error("option `{option}` of processor {processor}: {message}")]
    Unavailable {
        processor: &'static str,
        option: String,
        message: String,
    },
}

impl BuildError {
    pub fn invalid(
        processor: &'static str,
        option: &str,
        message: impl Into<String>,
    ) -> BuildError {
        BuildError::InvalidOption {
            processor,
            option: option.to_string(),
            message: message.into(),
        }
    }

    /// What the option names is missing on this machine ([`BuildError::Unavailable`]).
    pub fn unavailable(
        processor: &'static str,
        option: &str,
        message: impl Into<String>,
    ) -> BuildError {
        BuildError::Unavailable {
            processor,
            option: option.to_string(),
            message: message.into(),
        }
    }

    /// Reading the file `path` that `option` names failed: missing or not readable by this
    /// user is [`BuildError::Unavailable`], anything else (a directory, an I/O error) invalid.
    pub fn unreadable(
        processor: &'static str,
        option: &str,
        path: &std::path::Path,
        error: &std::io::Error,
    ) -> BuildError {
        let message = format!("cannot read {}: {error}", path.display());
        match error.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                BuildError::unavailable(processor, option, message)
            }
            _ => BuildError::invalid(processor, option, message),
        }
    }

    /// Whether the options are right and only this machine lacks what they name.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, BuildError::Unavailable { .. })
    }

    /// The option at fault, when one is.
    pub fn option(&self) -> Option<&str> {
        match self {
            BuildError::UnknownProcessor { .. } => None,
            BuildError::UnknownOption { option, .. }
            | BuildError::MissingOption { option, .. }
            | BuildError::InvalidOption { option, .. }
            | BuildError::Unavailable { option, .. } => Some(option),
        }
    }
}
