//! Log output: human-readable in development, one JSON object per line in production.

use chat_config::{Config, LogFormat, Mode};
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber. `RUST_LOG` wins over `logging.level`.
/// Calling it twice is harmless (the second call keeps the first subscriber).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.logging.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.logging.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => config.mode == Mode::Production,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // An already-installed subscriber (tests) is fine.
    drop(result);
}
