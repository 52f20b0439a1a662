//! A reply streamed as Server-Sent Events (`Accept: text/event-stream`).
//!
//! A stream follows a reply; the reply's generation ([`crate::generation`]) goes on
//! whether or not anyone follows it. Deltas are numbered from 1 (`id:`), so a client
//! that reconnects names the last one it saw and gets every piece after it, from
//! memory on the generating instance or from the database on any other.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header::{self, CacheDirective};
use actix_web::web::{Bytes, Data};
use futures_util::{StreamExt, stream};
use memlayer_app::AppError;
use memlayer_app::domain::{ChatId, MessageId, MessageStatus, Session};
use memlayer_app::ports::ResponderError;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::blocking::blocking;
use crate::dto::{ChatResponse, DeltaEvent, MessageResponse};
use crate::error::ApiError;
use crate::error::wire::ErrorBody;
use crate::generation::{Ending, Live, Update};
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

/// Where a stream's pieces come from.
pub(crate) enum Source {
    /// A reply generating on this instance: its pieces in memory.
    Live(Arc<Live>),
    /// A reply generating on another instance, or ended: read from the database every
    /// [`POLL_EVERY`].
    Stored {
        /// The chat.
        chat: ChatId,
        /// The reply.
        reply: MessageId,
    },
}

/// How often a stream of a reply generating elsewhere reads it again. With the
/// generating instance's batches ([`crate::generation::FLUSH_EVERY`]), a piece reaches
/// such a stream at most about 200 ms after the model wrote it.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// `200 text/event-stream`: `first` (the events of the start: `message`, `reply`), then
/// the reply's deltas after the first `seen`, numbered from `seen + 1`, then its ending.
/// The stream follows the reply; it does not drive it: a client that goes away ends
/// its stream, not the reply.
pub(crate) fn reply(
    state: Data<ApiState>,
    session: Session,
    first: Vec<Bytes>,
    source: Source,
    seen: usize,
) -> HttpResponse {
    // A few events in flight: a slow client holds the listener, not the generation.
    let (events, outbox) = mpsc::channel(8);
    let revoked = state.generations.follow(session);
    let starts_the_reply = !first.is_empty();
    // In the request's span, so the stream's log lines carry the request id.
    let follow = async move {
        let followed = async {
            match source {
                // A resumed stream (one with a cursor or none, not the post's own) does
                // not get the title again: `title` is never replayed.
                Source::Live(live) => follow_live(&live, seen, !starts_the_reply, &events).await,
                Source::Stored { chat, reply } => {
                    follow_stored(&state, chat, reply, seen, &events).await;
                }
            }
        };
        tokio::select! {
            () = followed => {}
            () = revoked.notified() => {
                // The session ended (its tokens revoked, its account deleted): so does
                // its stream, not the reply. No id: the reply's numbering goes on.
                let ended = ApiError::App(AppError::Unauthenticated);
                let body = ErrorBody { detail: crate::error::detail(&ended) };
                let _ = events.send(event("error", None, &body)).await;
            }
        }
    };
    actix_web::rt::spawn(follow.in_current_span());
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

/// Sends the pieces of a reply generating here, after the first `seen`, then its
/// ending; a comment when it is quiet for [`HEARTBEAT`]. Returns when the client left.
async fn follow_live(
    live: &Live,
    mut seen: usize,
    mut title_seen: bool,
    events: &mpsc::Sender<Bytes>,
) {
    loop {
        let Ok(update) = tokio::time::timeout(HEARTBEAT, live.after(seen, title_seen)).await else {
            if events.send(Bytes::from_static(b":\n\n")).await.is_err() {
                return;
            }
            continue;
        };
        let Update {
            pieces,
            title,
            ending,
        } = update;
        if let Some(chat) = title {
            title_seen = true;
            if events
                .send(event("title", None, &ChatResponse::from(chat)))
                .await
                .is_err()
            {
                return;
            }
        }
        for content in pieces {
            seen = seen.saturating_add(1);
            if events.send(delta(seen, content)).await.is_err() {
                return;
            }
        }
        if let Some(ending) = ending {
            let _ = events
                .send(ending_event(seen.saturating_add(1), &ending))
                .await;
            return;
        }
    }
}

/// Sends the pieces of a reply as the database has them, after the first `seen`, then
/// its ending, reading it again every [`POLL_EVERY`] while it generates.
async fn follow_stored(
    state: &Data<ApiState>,
    chat: ChatId,
    reply: MessageId,
    mut seen: usize,
    events: &mpsc::Sender<Bytes>,
) {
    let mut quiet_since = Instant::now();
    let mut first = true;
    loop {
        let stored = match blocking(state, move |app| app.stored_reply(chat, reply)).await {
            Ok(stored) => stored,
            Err(error) => {
                let _ = events
                    .send(ending_event(
                        seen.saturating_add(1),
                        &Ending::Failed(Arc::new(error)),
                    ))
                    .await;
                return;
            }
        };
        // A reply that had ended when the stream began answers its ending at once; one
        // that ends while it is followed gets its last pieces first.
        let ended_before = first && stored.message.status != MessageStatus::Generating;
        first = false;
        let pieces = if ended_before {
            seen = seen.max(stored.piece_ends.len());
            Vec::new()
        } else {
            pieces_after(stored.message.content.as_str(), &stored.piece_ends, seen)
        };
        for content in pieces {
            seen = seen.saturating_add(1);
            quiet_since = Instant::now();
            if events.send(delta(seen, content)).await.is_err() {
                return;
            }
        }
        let ending = match stored.message.status {
            MessageStatus::Generating => None,
            MessageStatus::Failed => Some(Ending::Failed(Arc::new(ApiError::App(
                AppError::AssistantFailed(ResponderError::Broken(
                    "the reply failed while it was generated".into(),
                )),
            )))),
            MessageStatus::Complete | MessageStatus::Stopped => Some(Ending::Done(stored.message)),
        };
        if let Some(ending) = ending {
            let _ = events
                .send(ending_event(seen.saturating_add(1), &ending))
                .await;
            return;
        }
        if quiet_since.elapsed() >= HEARTBEAT {
            quiet_since = Instant::now();
            if events.send(Bytes::from_static(b":\n\n")).await.is_err() {
                return;
            }
        }
        tokio::select! {
            () = events.closed() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// The pieces of `text` after the first `seen`, cut where `ends` (in characters) say.
fn pieces_after(text: &str, ends: &[usize], seen: usize) -> Vec<String> {
    let Some(wanted) = ends.get(seen..).filter(|wanted| !wanted.is_empty()) else {
        return Vec::new();
    };
    let start = seen
        .checked_sub(1)
        .and_then(|last| ends.get(last))
        .copied()
        .unwrap_or(0);
    // Byte offsets of the character offsets asked for, in one pass over the text.
    let mut bounds = Vec::with_capacity(wanted.len() + 1);
    let mut targets = std::iter::once(start)
        .chain(wanted.iter().copied())
        .peekable();
    for (chars, (byte, _)) in text.char_indices().enumerate() {
        while targets.next_if(|&target| target <= chars).is_some() {
            bounds.push(byte);
        }
    }
    bounds.extend(targets.map(|_| text.len()));
    bounds
        .windows(2)
        .map(|pair| text.get(pair[0]..pair[1]).unwrap_or_default().to_owned())
        .collect()
}

/// `delta` number `id`.
fn delta(id: usize, content: String) -> Bytes {
    event("delta", Some(id), &DeltaEvent { content })
}

/// The ending event, number `id`: `done` with the stored reply, or `error`.
fn ending_event(id: usize, ending: &Ending) -> Bytes {
    match ending {
        Ending::Done(reply) => event("done", Some(id), &MessageResponse::from(reply.clone())),
        Ending::Failed(error) => error_event(id, error),
    }
}

/// `event: error`, number `id`, with the `detail` the same failure has as a JSON
/// response.
fn error_event(id: usize, error: &ApiError) -> Bytes {
    event(
        "error",
        Some(id),
        &ErrorBody {
            detail: crate::error::detail(error),
        },
    )
}

/// One event: its name, its number if it has one, and its data as one line of JSON.
pub(crate) fn event(name: &str, id: Option<usize>, data: &impl Serialize) -> Bytes {
    // Serialising these DTOs cannot fail (no maps with non-string keys); if it ever
    // did, the client would still get a well-formed event.
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(match id {
        Some(id) => format!("id: {id}\nevent: {name}\ndata: {json}\n\n"),
        None => format!("event: {name}\ndata: {json}\n\n"),
    })
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
    fn stored_pieces_are_cut_where_their_ends_say_in_characters() {
        let text = "Hé, là!";
        let ends = [2, 4, 7];
        assert_eq!(pieces_after(text, &ends, 0), ["Hé", ", ", "là!"]);
        assert_eq!(pieces_after(text, &ends, 1), [", ", "là!"]);
        assert_eq!(pieces_after(text, &ends, 3), Vec::<String>::new());
        assert_eq!(pieces_after(text, &ends, 9), Vec::<String>::new());
        // Ends past the text (never written) are cut at its end.
        assert_eq!(pieces_after("ab", &[1, 5], 0), ["a", "b"]);
    }

    #[test]
    fn a_numbered_event_starts_with_its_id() {
        let bytes = event(
            "delta",
            Some(3),
            &DeltaEvent {
                content: "x".into(),
            },
        );
        assert_eq!(
            &bytes[..],
            b"id: 3\nevent: delta\ndata: {\"content\":\"x\"}\n\n"
        );
    }

    #[test]
    fn an_event_is_its_name_then_one_line_of_json() {
        let bytes = event(
            "delta",
            None,
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
