//! Logging and metrics: what is logged (`RUST_LOG`), how (`LOG_FORMAT`), and where
//! the Prometheus metrics are served (`METRICS_ADDR`).

use std::net::SocketAddr;

use super::ConfigError;
use super::parse::parse_with;

/// The logging and metrics settings.
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    /// Log filter, `tracing` targets syntax (`info`, `memlayer_http=debug,warn`); checked.
    pub filter: String,
    /// How log lines are written.
    pub format: LogFormat,
    /// Where the Prometheus metrics are served (`/metrics`); `None`: not at all.
    pub metrics_addr: Option<SocketAddr>,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line, with the span's fields (the request id), for log
    /// collectors.
    Json,
}

impl LoggingConfig {
    /// Reads `RUST_LOG`, `LOG_FORMAT` and `METRICS_ADDR` through `get`.
    pub fn from_env<'a>(get: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<Self, ConfigError> {
        Ok(Self {
            filter: log_filter(get("RUST_LOG"))?,
            format: parse_with(
                get,
                "LOG_FORMAT",
                Some(LogFormat::Text),
                |v| match v.to_ascii_lowercase().as_str() {
                    "text" => Some(LogFormat::Text),
                    "json" => Some(LogFormat::Json),
                    _ => None,
                },
                "text or json",
            )?,
            metrics_addr: get("METRICS_ADDR")
                .map(|v| {
                    v.parse()
                        .map_err(|error: std::net::AddrParseError| ConfigError {
                            name: "METRICS_ADDR",
                            value: v.to_owned(),
                            reason: format!(
                                "{error}: expected an address and port, like 127.0.0.1:9100"
                            ),
                        })
                })
                .transpose()?,
        })
    }
}

/// `RUST_LOG`, checked: a typo must not silently log nothing (or everything).
///
/// `tracing`'s parser reads any word that is not a level as a target, which then
/// enables that target alone: `[[[` (or ` info`, with its space) would switch every
/// line off, errors included. So a target must also look like one (a module path, like
/// `memlayer_http::routes`).
fn log_filter(value: Option<&str>) -> Result<String, ConfigError> {
    const EXPECTED: &str = "expected a level or target=level list, like info,memlayer_http=debug";
    let value = value.unwrap_or("info");
    let error = |reason: String| ConfigError {
        name: "RUST_LOG",
        value: value.to_owned(),
        reason,
    };
    value
        .parse::<tracing_subscriber::filter::Targets>()
        .map_err(|error_| error(format!("{error_} ({EXPECTED})")))?;
    let not_a_target = value
        .split(',')
        .map(|directive| {
            directive
                .split_once('=')
                .map_or(directive, |(target, _)| target)
        })
        .filter(|target| {
            target
                .parse::<tracing::level_filters::LevelFilter>()
                .is_err()
        })
        .find(|target| !is_target(target));
    match not_a_target {
        Some(target) => Err(error(format!(
            "{target:?} is neither a level nor a target ({EXPECTED})"
        ))),
        None => Ok(value.to_owned()),
    }
}

/// Whether `target` can name a `tracing` target: a module path (`memlayer_http`,
/// `actix_http::h1`) or a similar name, not punctuation.
fn is_target(target: &str) -> bool {
    !target.is_empty()
        && target.split("::").all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, vars};

    #[test]
    fn a_log_filter_naming_something_that_is_no_target_is_refused() {
        for bad in [
            "[[[",
            "info,[[[",
            "memlayer_http[{id}]=debug",
            "a b",
            "info,::x=debug",
        ] {
            let error = Config::from_vars(&vars(&[("RUST_LOG", bad)])).unwrap_err();
            assert_eq!(error.name, "RUST_LOG", "{bad}");
            assert!(error.to_string().contains("expected a level"), "{error}");
        }
        for good in [
            "info",
            "WARN",
            "memlayer_http",
            "memlayer_http=debug,warn",
            "actix_http::h1::dispatcher=off,info",
            "memlayer::connection=trace",
        ] {
            let config = Config::from_vars(&vars(&[("RUST_LOG", good)]));
            assert!(config.is_ok(), "{good}: {:?}", config.err());
        }
    }
}
