//! A reply streamed as Server-Sent Events (`Accept: text/event-stream`).
//!
//! The user's message is already stored when the stream starts. A task relays the
//! assistant's pieces to the client as `delta` events, then stores the reply and sends
//! it as `done`. When the client goes away, the task stops the assistant (dropping its
//! stream closes the connection to the model) and keeps what was already sent.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header::{self, CacheDirective};
use actix_web::web::{Bytes, Data};
use futures_util::{StreamExt, stream};
use memlayer_app::domain::Message;
use memlayer_app::{AnswerStream, AppError, Draft, MemLayer, PendingReply};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tracing::Instrument as _;

use crate::blocking::blocking;
use crate::dto::{DeltaEvent, MessageResponse};
use crate::error::ApiError;
use crate::error::wire::ErrorBody;
use crate::state::ApiState;

/// The media type of a streamed reply.
pub const EVENT_STREAM: &str = "text/event-stream";

/// How long the stream may stay silent. A comment line is sent then: actix notices that
/// a client has gone only when a write to it fails, and an idle proxy may cut a silent
/// connection.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// Whether the client asked for the reply as an event stream: `Accept` names
/// `text/event-stream` with a weight above zero (`q=0` means "not acceptable", RFC 9110).
pub fn wants_event_stream(accept: Option<&header::HeaderValue>) -> bool {
    accept
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';');
                parts
                    .next()
                    .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(EVENT_STREAM))
                    && parts.all(|parameter| !is_zero_weight(parameter))
            })
        })
}

/// Whether a media range's parameter is `q=0` (`q=0.0`, `q=0.000`, any case).
fn is_zero_weight(parameter: &str) -> bool {
    parameter.split_once('=').is_some_and(|(name, value)| {
        name.trim().eq_ignore_ascii_case("q")
            && value
                .trim()
                .parse::<f32>()
                .is_ok_and(|weight| weight <= 0.0)
    })
}

/// The assistant's answer, asked for at once: the model reads the question while the
/// database commits it, so storing it first costs the client no time. Dropping it
/// cancels the request to the model.
pub(crate) struct EarlyAnswer(JoinHandle<(AnswerStream, Option<Result<String, AppError>>)>);

impl EarlyAnswer {
    /// Asks for the answer to `pending`, on this worker, now.
    pub(crate) fn start(app: &MemLayer, pending: &PendingReply) -> Self {
        let mut answer = app.answer(pending);
        // In the request's span, so its log lines carry the request id.
        Self(actix_web::rt::spawn(
            async move {
                let first = answer.next().await;
                (answer, first)
            }
            .in_current_span(),
        ))
    }

    /// The whole answer: its first piece, then the rest.
    pub(crate) fn into_stream(self) -> AnswerStream {
        stream::once(self)
            .flat_map(|joined| match joined {
                Ok((rest, first)) => stream::iter(first).chain(rest).boxed(),
                Err(error) => stream::iter([Err(AppError::Internal(error.into()))]).boxed(),
            })
            .boxed()
    }
}

impl Future for EarlyAnswer {
    type Output = Result<(AnswerStream, Option<Result<String, AppError>>), JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Drop for EarlyAnswer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `200 text/event-stream`: the stored question as `message` (when the request stored
/// one: not when an answer is asked for again), then `answer`.
pub(crate) fn reply(
    state: Data<ApiState>,
    pending: PendingReply,
    question: Option<Message>,
    answer: AnswerStream,
) -> HttpResponse {
    let first = question.map(|question| event("message", &MessageResponse::from(question)));
    // One event in flight: what the client has been sent is, give or take one piece,
    // what the relay has seen go out.
    let (events, outbox) = mpsc::channel(1);
    // In the request's span, so the reply's log lines carry the request id.
    actix_web::rt::spawn(relay(state, pending, answer, events).in_current_span());
    let rest = stream::unfold(outbox, |mut outbox| async move {
        outbox.recv().await.map(|event| (event, outbox))
    });
    HttpResponse::Ok()
        .content_type(EVENT_STREAM)
        .insert_header(header::CacheControl(vec![CacheDirective::NoCache]))
        // Tells nginx-style proxies not to buffer the stream.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream::iter(first).chain(rest).map(Ok::<_, Infallible>))
}

/// How the assistant's answer ended.
enum Ending {
    /// Complete.
    Finished,
    /// The assistant failed.
    Failed(AppError),
    /// The client went away.
    Abandoned,
}

async fn relay(
    state: Data<ApiState>,
    pending: PendingReply,
    mut answer: AnswerStream,
    events: mpsc::Sender<Bytes>,
) {
    let mut unsettled = Unsettled {
        state: state.clone(),
        reply: Some((pending, Draft::default())),
    };
    let mut quiet = interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    quiet.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ending = loop {
        tokio::select! {
            () = events.closed() => break Ending::Abandoned,
            piece = answer.next() => match piece {
                Some(Ok(content)) => {
                    let delta = DeltaEvent { content };
                    if events.send(event("delta", &delta)).await.is_err() {
                        break Ending::Abandoned;
                    }
                    if let Some((_, draft)) = &mut unsettled.reply {
                        state.app.delivered(draft, &delta.content);
                    }
                    quiet.reset();
                }
                Some(Err(error)) => break Ending::Failed(error),
                None => break Ending::Finished,
            },
            _ = quiet.tick() => {
                if events.send(Bytes::from_static(b":\n\n")).await.is_err() {
                    break Ending::Abandoned;
                }
            }
        }
    };
    // Stops the generation: the connection to the model closes with the stream.
    drop(answer);
    let Some((pending, draft)) = unsettled.reply.take() else {
        return;
    };
    match ending {
        Ending::Finished => {
            let stored =
                blocking(&state, move |app| app.finish_reply(&pending, draft.text())).await;
            let last = match stored {
                Ok(reply) => event("done", &MessageResponse::from(reply)),
                Err(error) => error_event(&error),
            };
            // The client may have gone meanwhile; the reply is stored either way.
            let _ = events.send(last).await;
        }
        Ending::Failed(error) => {
            let _ = events.send(error_event(&ApiError::App(error))).await;
        }
        Ending::Abandoned => {
            let kept = blocking(&state, move |app| app.keep_partial_reply(&pending, &draft)).await;
            match kept {
                Ok(reply) => tracing::info!(
                    kept_chars = reply.map_or(0, |reply| reply.content.as_str().chars().count()),
                    "the client left during a streamed reply; the assistant was stopped"
                ),
                Err(error) => {
                    error.log();
                }
            }
        }
    }
}

/// A reply the relay has not settled yet. Should the relay be dropped before it does (a
/// shutdown whose timeout ran out stops the worker mid-stream), what the client was
/// delivered is kept all the same, there and then: the worker is ending anyway.
struct Unsettled {
    state: Data<ApiState>,
    reply: Option<(PendingReply, Draft)>,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if let Some((pending, draft)) = self.reply.take()
            && let Err(error) = self.state.app.keep_partial_reply(&pending, &draft)
        {
            ApiError::App(error).log();
        }
    }
}

/// `event: error` with the `detail` the same failure has as a JSON response; logged
/// like one.
fn error_event(error: &ApiError) -> Bytes {
    error.log();
    event(
        "error",
        &ErrorBody {
            detail: crate::error::detail(error),
        },
    )
}

/// One event: its name, and its data as one line of JSON.
fn event(name: &str, data: &impl Serialize) -> Bytes {
    // Serialising these DTOs cannot fail (no maps with non-string keys); if it ever
    // did, the client would still get a well-formed event.
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    #[test]
    fn the_event_stream_is_chosen_only_when_the_client_accepts_it() {
        let accepts =
            |value: &'static str| wants_event_stream(Some(&HeaderValue::from_static(value)));
        assert!(accepts("text/event-stream"));
        assert!(accepts("application/json, Text/Event-Stream;q=0.9"));
        assert!(accepts("text/event-stream;charset=utf-8"));
        assert!(!accepts("application/json"));
        assert!(!accepts("text/event-stream;q=0"));
        assert!(!accepts("text/event-stream; Q=0.000, application/json"));
        assert!(!accepts("*/*"));
        assert!(!wants_event_stream(None));
    }

    #[test]
    fn an_event_is_its_name_then_one_line_of_json() {
        let bytes = event(
            "delta",
            &DeltaEvent {
                content: "a\nb".into(),
            },
        );
        assert_eq!(
            &bytes[..],
            b"event: delta\ndata: {\"content\":\"a\\nb\"}\n\n"
        );
    }
}
