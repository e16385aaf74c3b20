//! tracing subscriber set-up from `--log-format` and `--log-level`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("--log-level {level:?}: {reason}")]
    Filter { level: String, reason: String },
    #[error("installing the log subscriber failed: {0}")]
    Install(String),
}

/// Install the global subscriber. `level` is a level or a full `EnvFilter` directive.
pub fn init(format: LogFormat, level: &str) -> Result<(), LoggingError> {
    let filter = EnvFilter::try_new(level).map_err(|e| LoggingError::Filter {
        level: level.to_string(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| LoggingError::Install(e.to_string()))
}
