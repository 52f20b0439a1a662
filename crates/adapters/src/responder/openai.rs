//! An assistant backed by any server that speaks OpenAI's chat-completions API
//! (llama.cpp's llama-server, Ollama, vLLM, OpenAI), with streamed answers.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use memlayer_domain::{MessageContent, Role, TokenUsage};
use memlayer_ports::{
    AssistantResponder, BoxError, ContextWindow, ReplyPiece, ReplyRequest, ReplyStream,
    ResponderError, TITLE_PROMPT_CHARS,
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
    /// The most characters of a reply read from the model: the reply ends there (what
    /// was read is the answer) and the connection to the model is closed.
    pub max_reply_chars: usize,
    /// The most tokens a reply may take, sent as `max_tokens` (`None`: the model's own
    /// limit); a reply the model ends there (`finish_reason: "length"`) ends as cut.
    pub max_tokens: Option<u32>,
}

/// The most bytes of one server-sent event read from the model (its lines together, up
/// to the blank line that ends it). A chunk of a streamed completion is a few hundred
/// bytes; a larger event is a broken answer, and is not buffered further.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The most bytes of a model server's error body read (for the log).
pub const MAX_ERROR_BODY_BYTES: usize = 4 * 1024;

/// Idle connections to the model server kept for reuse; more are closed once a reply
/// ends, so a burst of replies leaves no crowd of open sockets behind.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// How long an idle connection to the model server is kept for reuse.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

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
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
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
            stream_options: StreamOptions::USAGE,
            max_tokens: self.settings.max_tokens,
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
        self.complete(&self.request_body(&request), self.settings.max_reply_chars)
    }

    fn title(&self, question: &MessageContent) -> ReplyStream {
        let opening: String = question.as_str().chars().take(TITLE_PROMPT_CHARS).collect();
        let body = ChatCompletionRequest {
            model: &self.settings.model,
            messages: vec![
                ChatMessage {
                    role: "system",
                    content: TITLE_INSTRUCTIONS.to_owned(),
                },
                ChatMessage {
                    role: "user",
                    content: opening,
                },
            ],
            stream: true,
            stream_options: StreamOptions::USAGE,
            max_tokens: Some(TITLE_MAX_TOKENS),
        };
        self.complete(&body, TITLE_MAX_CHARS)
    }
}

/// What the model is told when asked for a chat's title.
pub const TITLE_INSTRUCTIONS: &str = "Write a short title, at most six words, for a \
    conversation that starts with the user's message below. Answer with the title only: \
    no quotes, no punctuation at the end.";

/// The most tokens a title request asks for (`max_tokens`).
const TITLE_MAX_TOKENS: u32 = 24;

/// The most characters of a title read from the model.
const TITLE_MAX_CHARS: usize = 200;

impl OpenAiResponder {
    /// Streams the model's answer to `body`, at most `max_chars` characters of it.
    fn complete(&self, body: &ChatCompletionRequest<'_>, max_chars: usize) -> ReplyStream {
        let mut call = self.client.post(self.endpoint.clone()).json(body);
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
                let body = error_body(response).await;
                return Err(ResponderError::Unavailable(
                    format!("the model server answered {status}: {}", excerpt(&body)).into(),
                ));
            }
            Ok(pieces(response, max_chars))
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

/// The start of an error answer's body, at most [`MAX_ERROR_BODY_BYTES`] of it: the rest
/// is never read (the connection is dropped with the response).
async fn error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_ERROR_BODY_BYTES);
    String::from_utf8_lossy(&body).into_owned()
}

/// How many more events are read, once the model stopped at `max_tokens`, for the
/// usage it reports after (a server sends it, then `[DONE]`).
const EVENTS_AFTER_LENGTH: usize = 4;

/// Where reading a chat completion stands.
struct Reading<E> {
    events: E,
    /// Characters the reply may still take.
    left: usize,
    end: End,
    /// A usage read with a piece of text, sent after it.
    pending: Option<TokenUsage>,
}

/// Whether the reply was cut.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Not cut.
    Open,
    /// The model stopped at `max_tokens`: a few more events are read for its usage.
    Length,
    /// Cut: the reply ends here (dropping the response closes the connection).
    Cut,
}

/// The text pieces of a streamed chat completion, and the usage it reports, until
/// `data: [DONE]`, or until `max_chars` characters were read: the last piece is cut
/// there and the stream ends (dropping the response closes the connection, so the
/// model stops writing).
fn pieces(
    response: reqwest::Response,
    max_chars: usize,
) -> BoxStream<'static, Result<ReplyPiece, ResponderError>> {
    let mut bounds = EventBounds::default();
    let events = response
        .bytes_stream()
        .map(move |chunk| match chunk {
            Ok(bytes) if !bounds.admit(&bytes) => Err(ReadError::EventTooLarge),
            Ok(bytes) => Ok(bytes),
            Err(error) => Err(ReadError::Transport(error)),
        })
        .eventsource();
    let start = Reading {
        events,
        left: max_chars,
        end: End::Open,
        pending: None,
    };
    stream::unfold(Some(start), |state| async move {
        let mut state = state?;
        if let Some(usage) = state.pending.take() {
            return Some((Ok(ReplyPiece::Usage(usage)), Some(state)));
        }
        'step: loop {
            match state.end {
                // The reply is as long as it may be: it ends here, cut.
                End::Cut => return Some((Err(ResponderError::LimitReached), None)),
                End::Length => {
                    for _ in 0..EVENTS_AFTER_LENGTH {
                        let Some(Ok(event)) = state.events.next().await else {
                            break;
                        };
                        if event.data.trim() == "[DONE]" {
                            break;
                        }
                        let usage = serde_json::from_str::<ChatCompletionChunk>(&event.data)
                            .ok()
                            .and_then(|chunk| chunk.usage.as_ref().and_then(reported_usage));
                        if let Some(usage) = usage {
                            state.end = End::Cut;
                            return Some((Ok(ReplyPiece::Usage(usage)), Some(state)));
                        }
                    }
                    return Some((Err(ResponderError::LimitReached), None));
                }
                End::Open => {}
            }
            if state.left == 0 {
                // Exactly at the limit: a reply that ends here is whole (its usage is still
                // read); one with more text to come is cut.
                return loop {
                    match state.events.next().await {
                        Some(Ok(event)) if event.data.trim() == "[DONE]" => break None,
                        Some(Ok(event)) => {
                            match serde_json::from_str::<ChatCompletionChunk>(&event.data) {
                                Ok(chunk)
                                    if chunk.error.is_none()
                                        && chunk.choices.iter().all(|choice| {
                                            choice
                                                .delta
                                                .content
                                                .as_deref()
                                                .is_none_or(str::is_empty)
                                        }) =>
                                {
                                    let usage = chunk.usage.as_ref().and_then(reported_usage);
                                    // No more text, but the model stopped at `max_tokens`:
                                    // cut, with the usage it reports (here or after).
                                    if chunk.choices.iter().any(|choice| {
                                        choice.finish_reason.as_deref() == Some("length")
                                    }) {
                                        if usage.is_none() {
                                            state.end = End::Length;
                                            continue 'step;
                                        }
                                        state.end = End::Cut;
                                    }
                                    if let Some(usage) = usage {
                                        break Some((Ok(ReplyPiece::Usage(usage)), Some(state)));
                                    }
                                    continue;
                                }
                                _ => break Some((Err(ResponderError::LimitReached), None)),
                            }
                        }
                        _ => break Some((Err(ResponderError::LimitReached), None)),
                    }
                };
            }
            loop {
                let Some(event) = state.events.next().await else {
                    // The body ended without `[DONE]`: the answer was cut off.
                    let cut: BoxError = "the stream ended before [DONE]".into();
                    return Some((Err(ResponderError::Broken(cut)), None));
                };
                let event = match event {
                    Ok(event) => event,
                    Err(eventsource_stream::EventStreamError::Transport(ReadError::Transport(
                        error,
                    ))) => {
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
                        let usage = chunk.usage.as_ref().and_then(reported_usage);
                        // The model stopped at `max_tokens`: what it wrote is cut there.
                        if chunk
                            .choices
                            .iter()
                            .any(|choice| choice.finish_reason.as_deref() == Some("length"))
                        {
                            state.end = End::Length;
                        }
                        let mut text: String = chunk
                            .choices
                            .into_iter()
                            .filter_map(|choice| choice.delta.content)
                            .collect();
                        if text.is_empty() {
                            // The usage, in a chunk of its own (or with the last, empty one).
                            if let Some(usage) = usage {
                                if state.end == End::Length {
                                    state.end = End::Cut;
                                }
                                return Some((Ok(ReplyPiece::Usage(usage)), Some(state)));
                            }
                            if state.end == End::Length {
                                // Read on for the usage.
                                continue 'step;
                            }
                            continue;
                        }
                        // A usage that came with the text goes after it.
                        state.pending = usage;
                        if state.pending.is_some() && state.end == End::Length {
                            state.end = End::Cut;
                        }
                        match text.char_indices().nth(state.left) {
                            // The limit falls inside this piece: the reply ends with it.
                            Some((end, _)) => {
                                text.truncate(end);
                                state.left = 0;
                                state.end = End::Cut;
                            }
                            None => state.left -= text.chars().count(),
                        }
                        return Some((Ok(ReplyPiece::Text(text)), Some(state)));
                    }
                    Err(error) => return Some((Err(ResponderError::Broken(error.into())), None)),
                }
            }
        }
    })
    .boxed()
}

/// The usage a model server reported: its `prompt_tokens` and `completion_tokens`
/// (whole numbers; anything else is left out); `None` when it gives neither.
fn reported_usage(usage: &serde_json::Value) -> Option<TokenUsage> {
    let field = |name: &str| usage.get(name).and_then(serde_json::Value::as_u64);
    let (prompt, completion) = (field("prompt_tokens"), field("completion_tokens"));
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(TokenUsage::reported(
        prompt.unwrap_or(0),
        completion.unwrap_or(0),
    ))
}

/// Why the model's event stream could not be read further.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The connection failed.
    #[error(transparent)]
    Transport(reqwest::Error),
    /// One event was larger than [`MAX_EVENT_BYTES`].
    #[error("the model server sent an event larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge,
}

/// Counts the bytes of the event being received, so that one event (or one line) that
/// never ends cannot be buffered without limit. An event ends at a blank line; `\r\n`,
/// `\n` and `\r` all end a line.
#[derive(Debug, Default)]
struct EventBounds {
    /// Bytes since the last blank line.
    in_event: usize,
    /// Whether the last byte ended a line.
    at_line_start: bool,
    /// Whether the last byte was `\r` (a `\n` right after it ends no second line).
    after_cr: bool,
}

impl EventBounds {
    /// Takes in `bytes`; `false` once an event grows past [`MAX_EVENT_BYTES`].
    fn admit(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            let crlf = byte == b'\n' && self.after_cr;
            self.after_cr = byte == b'\r';
            if crlf {
                continue;
            }
            if byte == b'\n' || byte == b'\r' {
                if self.at_line_start {
                    self.in_event = 0;
                }
                self.at_line_start = true;
            } else {
                self.at_line_start = false;
                self.in_event += 1;
                if self.in_event > MAX_EVENT_BYTES {
                    return false;
                }
            }
        }
        true
    }
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
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

/// `stream_options`: asks for the usage, in a last chunk of its own.
#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl StreamOptions {
    const USAGE: Self = Self {
        include_usage: true,
    };
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
    /// Read field by field ([`reported_usage`]): a malformed usage is no usage, not a
    /// broken answer.
    #[serde(default)]
    usage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
    #[serde(default)]
    finish_reason: Option<String>,
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
    fn an_event_may_be_as_large_as_the_bound_whatever_its_line_endings() {
        for newline in ["\n", "\r\n", "\r"] {
            let mut bounds = EventBounds::default();
            let line = format!("data: {}{newline}", "x".repeat(1_000));
            for _ in 0..1_000 {
                // Many events, each far below the bound, end to end.
                assert!(
                    bounds.admit(format!("{line}{newline}").as_bytes()),
                    "{newline:?}"
                );
            }
        }
    }

    #[test]
    fn an_event_that_never_ends_is_refused_past_the_bound() {
        let mut bounds = EventBounds::default();
        // Many short lines, never a blank one: one event that keeps growing.
        let refused = (0..MAX_EVENT_BYTES)
            .map(|_| bounds.admit(b"data: x\n"))
            .any(|admitted| !admitted);
        assert!(refused);
        let mut one_line = EventBounds::default();
        assert!(one_line.admit(&vec![b'x'; MAX_EVENT_BYTES]));
        assert!(!one_line.admit(b"x"));
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
