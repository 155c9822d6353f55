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

    /// The option at fault, when one is.
    pub fn option(&self) -> Option<&str> {
        match self {
            BuildError::UnknownProcessor { .. } => None,
            BuildError::UnknownOption { option, .. }
            | BuildError::MissingOption { option, .. }
            | BuildError::InvalidOption { option, .. } => Some(option),
        }
    }
}
