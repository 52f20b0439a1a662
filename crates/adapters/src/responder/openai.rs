//! An assistant backed by any server that speaks OpenAI's chat-completions API
//! (llama.cpp's llama-server, Ollama, vLLM, OpenAI), with streamed answers.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use memlayer_domain::Role;
use memlayer_ports::{
    AssistantResponder, BoxError, ContextWindow, ReplyRequest, ReplyStream, ResponderError,
};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// How MemLayer reaches the model.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// The API's base URL, up to and including the version (`http://127.0.0.1:8080/v1`);
    /// requests go to `<base>/chat/completions`.
    pub base_url: reqwest::Url,
    /// The model to ask for.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<SecretString>,
    /// The instructions the model sees first, if any.
    pub system_prompt: Option<String>,
    /// How much of the chat's history the model sees.
    pub context: ContextWindow,
    /// The longest wait for a connection, for the answer to start, and between two
    /// pieces of it.
    pub timeout: Duration,
}

/// Why the adapter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the assistant's HTTP client: {0}")]
pub struct OpenAiSetupError(#[source] reqwest::Error);

/// The assistant answered by an OpenAI-compatible model server.
pub struct OpenAiResponder {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    settings: OpenAiSettings,
}

impl OpenAiResponder {
    /// An assistant that asks the model described by `settings`.
    pub fn new(settings: OpenAiSettings) -> Result<Self, OpenAiSetupError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .read_timeout(settings.timeout)
            .build()
            .map_err(OpenAiSetupError)?;
        Ok(Self {
            client,
            endpoint: chat_completions_url(&settings.base_url),
            settings,
        })
    }

    fn request_body(&self, request: &ReplyRequest) -> ChatCompletionRequest<'_> {
        let system = self
            .settings
            .system_prompt
            .as_deref()
            .map(|prompt| ChatMessage {
                role: "system",
                content: prompt.to_owned(),
            });
        let conversation = request
            .history
            .iter()
            .chain([&request.question])
            .map(|message| ChatMessage {
                role: match message.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                },
                content: message.content.as_str().to_owned(),
            });
        ChatCompletionRequest {
            model: &self.settings.model,
            messages: system.into_iter().chain(conversation).collect(),
            stream: true,
        }
    }
}

/// `<base>/chat/completions`, whether or not the base ends with a slash.
fn chat_completions_url(base: &reqwest::Url) -> reqwest::Url {
    let mut url = base.clone();
    let path = format!("{}/chat/completions", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

impl AssistantResponder for OpenAiResponder {
    fn context(&self) -> ContextWindow {
        self.settings.context
    }

    fn fixed_reply(&self) -> Option<String> {
        None
    }

    fn reply(&self, request: ReplyRequest) -> ReplyStream {
        let mut call = self
            .client
            .post(self.endpoint.clone())
            .json(&self.request_body(&request));
        if let Some(key) = &self.settings.api_key {
            match HeaderValue::try_from(format!("Bearer {}", key.expose_secret())) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    call = call.header(AUTHORIZATION, value);
                }
                Err(error) => {
                    return stream::iter([Err(ResponderError::Unavailable(error.into()))]).boxed();
                }
            }
        }
        let asked = std::time::Instant::now();
        stream::once(async move {
            let response = call.send().await.map_err(transport_error)?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(ResponderError::Unavailable(
                    format!("the model server answered {status}: {}", excerpt(&body)).into(),
                ));
            }
            Ok(pieces(response))
        })
        .try_flatten()
        .map(Timed::new(asked).observer())
        .chain(stream::poll_fn(move |_| {
            // The end of the stream, however it ended: the total time.
            metrics::histogram!("memlayer_assistant_upstream_seconds", "until" => "end")
                .record(asked.elapsed().as_secs_f64());
            std::task::Poll::Ready(None)
        }))
        .boxed()
    }
}

/// Records the upstream's time to its first piece of text.
struct Timed {
    asked: std::time::Instant,
    first: bool,
}

impl Timed {
    fn new(asked: std::time::Instant) -> Self {
        Self { asked, first: true }
    }

    fn observer<T, E>(mut self) -> impl FnMut(Result<T, E>) -> Result<T, E> {
        move |item| {
            if item.is_ok() && std::mem::take(&mut self.first) {
                metrics::histogram!("memlayer_assistant_upstream_seconds", "until" => "first_piece")
                    .record(self.asked.elapsed().as_secs_f64());
            }
            item
        }
    }
}

/// The text pieces of a streamed chat completion, until `data: [DONE]`.
fn pieces(response: reqwest::Response) -> BoxStream<'static, Result<String, ResponderError>> {
    let events = response.bytes_stream().eventsource();
    stream::unfold(Some(events), |events| async move {
        let mut events = events?;
        loop {
            let Some(event) = events.next().await else {
                // The body ended without `[DONE]`: the answer was cut off.
                let cut: BoxError = "the stream ended before [DONE]".into();
                return Some((Err(ResponderError::Broken(cut)), None));
            };
            let event = match event {
                Ok(event) => event,
                Err(eventsource_stream::EventStreamError::Transport(error)) => {
                    return Some((Err(transport_error(error)), None));
                }
                Err(error) => {
                    return Some((Err(ResponderError::Broken(error.to_string().into())), None));
                }
            };
            if event.data.trim() == "[DONE]" {
                return None;
            }
            match serde_json::from_str::<ChatCompletionChunk>(&event.data) {
                Ok(ChatCompletionChunk {
                    error: Some(error), ..
                }) => {
                    let error =
                        format!("the model server reported: {}", excerpt(&error.to_string()));
                    return Some((Err(ResponderError::Broken(error.into())), None));
                }
                Ok(chunk) => {
                    let text: String = chunk
                        .choices
                        .into_iter()
                        .filter_map(|choice| choice.delta.content)
                        .collect();
                    if !text.is_empty() {
                        return Some((Ok(text), Some(events)));
                    }
                }
                Err(error) => return Some((Err(ResponderError::Broken(error.into())), None)),
            }
        }
    })
    .boxed()
}

fn transport_error(error: reqwest::Error) -> ResponderError {
    // Never the URL in the message: it may carry credentials.
    let error = error.without_url();
    if error.is_timeout() {
        ResponderError::TimedOut(error.into())
    } else if error.is_connect() || error.is_request() {
        ResponderError::Unavailable(error.into())
    } else {
        ResponderError::Broken(error.into())
    }
}

/// At most the first 200 characters of an upstream message, for the log.
fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

#[derive(Serialize)]
struct ChatCompletionRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage>,
    stream: bool,
}

#[derive(Serialize)]
struct ChatMessage {
    role: &'static str,
    content: String,
}

#[derive(Deserialize)]
struct ChatCompletionChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
}

#[derive(Deserialize, Default)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_base_url_with_chat_completions_appended() {
        for base in ["http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1/"] {
            let url = chat_completions_url(&reqwest::Url::parse(base).unwrap());
            assert_eq!(url.as_str(), "http://127.0.0.1:8080/v1/chat/completions");
        }
    }

    #[test]
    fn a_chunk_without_content_has_no_text_and_an_error_chunk_is_read() {
        let role_only: ChatCompletionChunk =
            serde_json::from_str(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#).unwrap();
        assert_eq!(role_only.choices[0].delta.content, None);
        let error: ChatCompletionChunk =
            serde_json::from_str(r#"{"error":{"message":"overloaded"}}"#).unwrap();
        assert!(error.error.is_some());
    }
}
