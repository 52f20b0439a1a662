//! The assistant: the model that answers messages (`ASSISTANT_*`), if any.
//!
//! Its settings are the adapter's own ([`OpenAiSettings`]); without `ASSISTANT_URL`
//! there is none, and every reply is "Message received".

use std::time::Duration;

use memlayer_adapters::{ContextWindow, OpenAiSettings, Url};
use secrecy::SecretString;

use super::ConfigError;
use super::parse::parse;

/// Reads the `ASSISTANT_*` settings through `get`: none at all, or at least a URL and
/// a model.
pub(super) fn from_env<'a>(
    get: impl Fn(&str) -> Option<&'a str> + Copy,
) -> Result<Option<OpenAiSettings>, ConfigError> {
    const OTHERS: [&str; 8] = [
        "ASSISTANT_MODEL",
        "ASSISTANT_API_KEY",
        "ASSISTANT_SYSTEM_PROMPT",
        "ASSISTANT_CONTEXT_MESSAGES",
        "ASSISTANT_CONTEXT_CHARS",
        "ASSISTANT_TIMEOUT_SECS",
        "ASSISTANT_MAX_REPLY_CHARS",
        "ASSISTANT_MAX_TOKENS",
    ];
    let Some(url) = get("ASSISTANT_URL") else {
        return match OTHERS.into_iter().find(|name| get(name).is_some()) {
            Some(name) => Err(ConfigError {
                name: "ASSISTANT_URL",
                value: String::new(),
                reason: format!(
                    "required when {name} is set: the base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1"
                ),
            }),
            None => Ok(None),
        };
    };
    let base_url = Url::parse(url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| ConfigError {
            name: "ASSISTANT_URL",
            // A URL may carry credentials: name the problem, not the value.
            value: "(hidden)".into(),
            reason: "expected an http:// or https:// URL, e.g. http://127.0.0.1:8080/v1".into(),
        })?;
    let model = get("ASSISTANT_MODEL").ok_or_else(|| ConfigError {
        name: "ASSISTANT_MODEL",
        value: String::new(),
        reason: "required with ASSISTANT_URL: the model to ask for (any name for llama-server)"
            .into(),
    })?;
    Ok(Some(OpenAiSettings {
        base_url,
        model: model.to_owned(),
        api_key: get("ASSISTANT_API_KEY").map(SecretString::from),
        system_prompt: get("ASSISTANT_SYSTEM_PROMPT").map(str::to_owned),
        context: ContextWindow {
            messages: parse(get, "ASSISTANT_CONTEXT_MESSAGES", 20, 0..=1_000)?,
            chars: parse(get, "ASSISTANT_CONTEXT_CHARS", 16_000, 0..=10_000_000)?,
        },
        timeout: Duration::from_secs(parse(get, "ASSISTANT_TIMEOUT_SECS", 60, 1..=3_600)?),
        max_reply_chars: parse(get, "ASSISTANT_MAX_REPLY_CHARS", 100_000, 1..=10_000_000)?,
        // Unset: the model's own limit.
        max_tokens: match get("ASSISTANT_MAX_TOKENS") {
            Some(_) => Some(parse(get, "ASSISTANT_MAX_TOKENS", 0, 1..=10_000_000)?),
            None => None,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::super::{Config, vars};
    use super::*;

    #[test]
    fn without_assistant_settings_there_is_no_model() {
        assert!(Config::from_vars(&vars(&[])).unwrap().assistant.is_none());
    }

    #[test]
    fn an_assistant_needs_a_url_and_a_model_and_takes_the_rest_from_defaults() {
        let config = Config::from_vars(&vars(&[
            ("ASSISTANT_URL", "http://127.0.0.1:8080/v1"),
            ("ASSISTANT_MODEL", "smollm2"),
        ]))
        .unwrap();
        let assistant = config.assistant.unwrap();
        assert_eq!(assistant.base_url.as_str(), "http://127.0.0.1:8080/v1");
        assert_eq!(assistant.model, "smollm2");
        assert_eq!(
            assistant.context,
            ContextWindow {
                messages: 20,
                chars: 16_000
            }
        );
        assert_eq!(assistant.timeout, Duration::from_secs(60));
        assert!(assistant.api_key.is_none() && assistant.system_prompt.is_none());
    }

    #[test]
    fn incomplete_or_bad_assistant_settings_name_the_variable() {
        for (settings, name) in [
            (&[("ASSISTANT_MODEL", "m")][..], "ASSISTANT_URL"),
            (
                &[("ASSISTANT_URL", "http://127.0.0.1:8080/v1")][..],
                "ASSISTANT_MODEL",
            ),
            (
                &[
                    ("ASSISTANT_URL", "127.0.0.1:8080"),
                    ("ASSISTANT_MODEL", "m"),
                ][..],
                "ASSISTANT_URL",
            ),
            (
                &[("ASSISTANT_URL", "ftp://h/v1"), ("ASSISTANT_MODEL", "m")][..],
                "ASSISTANT_URL",
            ),
            (
                &[
                    ("ASSISTANT_URL", "http://h/v1"),
                    ("ASSISTANT_MODEL", "m"),
                    ("ASSISTANT_TIMEOUT_SECS", "0"),
                ][..],
                "ASSISTANT_TIMEOUT_SECS",
            ),
            (
                &[
                    ("ASSISTANT_URL", "http://h/v1"),
                    ("ASSISTANT_MODEL", "m"),
                    ("ASSISTANT_CONTEXT_MESSAGES", "x"),
                ][..],
                "ASSISTANT_CONTEXT_MESSAGES",
            ),
        ] {
            let error = Config::from_vars(&vars(settings)).unwrap_err();
            assert_eq!(error.name, name, "{settings:?}");
        }
    }

    #[test]
    fn the_assistant_api_key_is_never_shown() {
        let config = Config::from_vars(&vars(&[
            ("ASSISTANT_URL", "https://api.example.com/v1"),
            ("ASSISTANT_MODEL", "m"),
            ("ASSISTANT_API_KEY", "sk-very-secret"),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains("sk-very-secret"));
        assert!(!format!("{:?}", config.assistant).contains("sk-very-secret"));
    }
}
