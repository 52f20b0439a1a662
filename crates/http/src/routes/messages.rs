//! `/chats/{chat_id}/messages`: the conversation. Paths are relative to the
//! `/chats/{chat_id}` scope of the route table.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use memlayer_app::PendingReply;
use memlayer_app::domain::{MessageStatus, Session};

use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::body::JsonBody;
use crate::dto::{MessageResponse, PostMessageRequest, ServerSentEvent};
use crate::error::wire::Source;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::error::{self, ApiError};
use crate::extract::{ChatPath, MessagePath};
use crate::generation::{self, Cause, Ending};
use crate::paging::{MessageListQuery, Paged, TreeQuery, page_response};
use crate::state::ApiState;
use crate::stream;

/// Send a message
///
/// Stores the user's message, has the assistant answer it, stores the answer and
/// returns it (201). The user's message sorts before the answer.
///
/// With `Accept: text/event-stream` the answer is streamed instead (200), as
/// Server-Sent Events whose `data` is one JSON object each: `message` (the stored user
/// message, a MessageResponse) first, then `reply` (`id: 0`: the assistant's message as
/// it starts, `status: "generating"`), then `delta` (`{"content": "<next piece>"}`,
/// `id: 1, 2, …`) as the assistant writes, then `done` (the stored reply, whose content
/// is the deltas joined and whose status is `complete` or `stopped`), or `error`
/// (`{"detail": "..."}`) if the assistant fails (the user's message stays stored).
/// Lines starting with `:` are keep-alive comments. The reply belongs to the service: a
/// client that disconnects does not stop it (resume it with
/// `GET …/messages/{id}/stream`, stop it with `POST …/messages/{id}/stop`). Errors
/// before the stream starts are ordinary JSON errors: 409 while another reply is
/// generating in the chat, 503 with `Retry-After` when this instance runs
/// `MAX_GENERATIONS` replies already.
#[utoipa::path(
    post, path = "/messages", tag = "messages", operation_id = "postMessage",
    security(("bearer" = [])),
    params(("chat_id" = uuid::Uuid, Path, description = "The chat's id")),
    request_body = PostMessageRequest,
    responses(
        (status = 201, description = "The assistant's reply", body = MessageResponse),
        (status = 200, description = "With `Accept: text/event-stream`: the reply as Server-Sent Events (`message`, `reply`, `delta`…, `title` perhaps, then `done` or `error`)",
            content_type = "text/event-stream", body = ServerSentEvent),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Blank or too long content, or a bad chat id", body = ValidationErrorBody),
        (status = 409, description = "A reply is generating in this chat: stop it or wait", body = ErrorBody),
        (status = 429, description = "`USER_MAX_GENERATIONS` of the user's replies are generating already (Retry-After: 5), or the user spent the day's tokens (`USER_TOKENS_PER_DAY` or their own limit; Retry-After: seconds to 00:00 UTC)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "The assistant failed; the user's message was saved", body = ErrorBody),
        (status = 503, description = "Database unavailable, or this instance runs `MAX_GENERATIONS` replies already; retry later (`Retry-After`)", body = ErrorBody),
    )
)]
pub async fn post(
    request: HttpRequest,
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
    JsonBody(body): JsonBody<PostMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let content = body.try_into_content()?;
    let streamed = stream::wants_event_stream(request.headers().get(header::ACCEPT));
    if !streamed && state.app.has_fixed_reply() {
        // No model to wait for: the message and its reply in one step.
        let reply = blocking(&state, move |app| {
            app.post_with_fixed_reply(user, chat, content)
        })
        .await?;
        return Ok(HttpResponse::Created().json(MessageResponse::from(reply)));
    }
    let pending = blocking(&state, move |app| app.ask(user, chat, content)).await?;
    answer(state, user, pending, streamed).await
}

/// Answers `pending`: stores its question (when new) and the reply, `generating`,
/// then starts the reply's generation, which goes on whatever becomes of this request.
/// Streamed, the answer follows the generation; in JSON it waits for its end.
async fn answer(
    state: Data<ApiState>,
    session: Session,
    pending: PendingReply,
    streamed: bool,
) -> Result<HttpResponse, ApiError> {
    // Checked before anything is stored: a refused request leaves no trace.
    let reservation = state
        .generations
        .reserve()
        .ok_or(ApiError::TooManyReplies)?;
    let (started, live) = generation::start(&state, pending, reservation).await?;
    if streamed {
        let mut first = Vec::with_capacity(2);
        if started.new_question {
            first.push(stream::event(
                "message",
                None,
                &MessageResponse::from(started.question),
            ));
        }
        first.push(stream::event(
            "reply",
            Some(0),
            &MessageResponse::from(started.reply),
        ));
        return Ok(stream::reply(
            state,
            session,
            first,
            stream::Source::Live(live),
            0,
        ));
    }
    // No thread and no connection is held while the model writes.
    Ok(ended(live.ended().await, HttpResponse::Created()))
}

/// The answer to a request that waited for a reply's end: the reply with `status`, or
/// the failure as its JSON error.
fn ended(ending: Ending, mut status: actix_web::HttpResponseBuilder) -> HttpResponse {
    match ending {
        Ending::Done(reply) => status.json(MessageResponse::from(reply)),
        Ending::Failed(error) => error::response(&error),
    }
}

/// Ask for another answer
///
/// On an assistant's message, adds a new answer to the same question, a sibling of it;
/// on a user's message, adds an answer to it (a retry after a failure). The assistant
/// sees the question's ancestors. The new answer becomes the chat's active leaf. 201
/// with the answer, or with `Accept: text/event-stream` the answer as Server-Sent
/// Events as posting streams it (no `message` event: the question is stored already).
#[utoipa::path(
    post, path = "/messages/{message_id}/regenerate", tag = "messages", operation_id = "regenerateMessage",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        ("message_id" = uuid::Uuid, Path, description = "The message to answer again (an answer) or to answer (a question)"),
    ),
    responses(
        (status = 201, description = "The new answer", body = MessageResponse),
        (status = 200, description = "With `Accept: text/event-stream`: the answer as Server-Sent Events (`reply`, `delta`…, then `done` or `error`)",
            content_type = "text/event-stream", body = ServerSentEvent),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 422, description = "A chat or message id that is not a UUID", body = ValidationErrorBody),
        (status = 409, description = "A reply is generating in this chat: stop it or wait", body = ErrorBody),
        (status = 429, description = "`USER_MAX_GENERATIONS` of the user's replies are generating already (Retry-After: 5), or the user spent the day's tokens (`USER_TOKENS_PER_DAY` or their own limit; Retry-After: seconds to 00:00 UTC)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "The assistant failed", body = ErrorBody),
        (status = 503, description = "Database unavailable, or this instance runs `MAX_GENERATIONS` replies already; retry later (`Retry-After`)", body = ErrorBody),
    )
)]
pub async fn regenerate(
    request: HttpRequest,
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    MessagePath { chat, message }: MessagePath,
) -> Result<HttpResponse, ApiError> {
    let streamed = stream::wants_event_stream(request.headers().get(header::ACCEPT));
    let pending = blocking(&state, move |app| app.regenerate(user, chat, message)).await?;
    answer(state, user, pending, streamed).await
}

/// Edit a message
///
/// Adds a new user message with `content` next to a user's message (the same parent,
/// a sibling of it) and answers it; the original and its answers stay, on their own
/// branch. The new message's answer becomes the chat's active leaf. 201 with the
/// answer, or with `Accept: text/event-stream` Server-Sent Events as posting streams
/// them (`message` is the new user message).
#[utoipa::path(
    post, path = "/messages/{message_id}/edit", tag = "messages", operation_id = "editMessage",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        ("message_id" = uuid::Uuid, Path, description = "The user's message to edit"),
    ),
    request_body = PostMessageRequest,
    responses(
        (status = 201, description = "The answer to the edited message", body = MessageResponse),
        (status = 200, description = "With `Accept: text/event-stream`: `message` (the new user message), `reply`, `delta`…, then `done` or `error`",
            content_type = "text/event-stream", body = ServerSentEvent),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Blank or too long content, an id that is not a UUID, or the assistant's message", body = ValidationErrorBody),
        (status = 409, description = "A reply is generating in this chat: stop it or wait", body = ErrorBody),
        (status = 429, description = "`USER_MAX_GENERATIONS` of the user's replies are generating already (Retry-After: 5), or the user spent the day's tokens (`USER_TOKENS_PER_DAY` or their own limit; Retry-After: seconds to 00:00 UTC)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "The assistant failed; the edited message was saved", body = ErrorBody),
        (status = 503, description = "Database unavailable, or this instance runs `MAX_GENERATIONS` replies already; retry later (`Retry-After`)", body = ErrorBody),
    )
)]
pub async fn edit(
    request: HttpRequest,
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    MessagePath { chat, message }: MessagePath,
    JsonBody(body): JsonBody<PostMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let content = body.try_into_content()?;
    let streamed = stream::wants_event_stream(request.headers().get(header::ACCEPT));
    let pending = blocking(&state, move |app| app.edit(user, chat, message, content)).await?;
    answer(state, user, pending, streamed).await
}

/// Delete a message
///
/// Deletes the message and everything below it. If the chat's active path ran through
/// it, the active leaf becomes the newest leaf below its parent (for a first message,
/// the newest leaf of the chat; none when the chat is left empty).
#[utoipa::path(
    delete, path = "/messages/{message_id}", tag = "messages", operation_id = "deleteMessage",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        ("message_id" = uuid::Uuid, Path, description = "The message to delete, with everything below it"),
    ),
    responses(
        (status = 204, description = "Deleted, with everything below it"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 422, description = "A chat or message id that is not a UUID", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn delete(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    MessagePath { chat, message }: MessagePath,
) -> Result<HttpResponse, ApiError> {
    blocking(&state, move |app| app.delete_message(user, chat, message)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The whole tree of a chat
///
/// Every message of the chat, all branches, in the order written (oldest first), each
/// with its `parent_id` and `sibling_ids`: at most `limit` (1000 by default). When
/// more follow, the `X-Next-Cursor` header holds the `cursor` that reads them.
#[utoipa::path(
    get, path = "/tree", tag = "messages", operation_id = "getChatTree",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        TreeQuery,
    ),
    responses(
        (status = 200, description = "The messages, oldest first", body = Vec<MessageResponse>,
            headers(("X-Next-Cursor" = String, description = "Present when later messages exist: pass it as `cursor`"))),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 422, description = "The chat id is not a UUID, or an invalid limit or cursor", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn tree(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
    Paged(page, ..): Paged<TreeQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = blocking(&state, move |app| app.list_tree(user, chat, page)).await?;
    Ok(page_response(page, MessageResponse::from))
}

/// List a chat's messages
///
/// The chat's active path (from a first message down to its active leaf): its latest
/// messages (at most `limit`, 1000 by default), oldest first. In a chat that never
/// branched that is every message. When earlier messages exist, the `X-Next-Cursor`
/// header holds the `cursor` that reads the page before: the ancestors of the oldest
/// message of this page, so a page read stays valid when the active path changes.
#[utoipa::path(
    get, path = "/messages", tag = "messages", operation_id = "listMessages",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        MessageListQuery,
    ),
    responses(
        (status = 200, description = "The messages, oldest first", body = Vec<MessageResponse>,
            headers(("X-Next-Cursor" = String, description = "Present when earlier messages exist: pass it as `cursor`"))),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 422, description = "The chat id is not a UUID, or an invalid limit or cursor", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn list(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
    Paged(page, ..): Paged<MessageListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = blocking(&state, move |app| app.list_messages(user, chat, page)).await?;
    Ok(page_response(page, MessageResponse::from))
}

/// Resume a reply's stream
///
/// Server-Sent Events of an assistant's reply, from wherever it is generating: every
/// `delta` numbered after the cursor (`Last-Event-ID: N` or `?after=N`; without one,
/// from the first delta), then the live ones, then the ending event (`done` with the
/// stored reply, or `error`). A reply already ended answers its ending event at once.
#[utoipa::path(
    get, path = "/messages/{message_id}/stream", tag = "messages", operation_id = "resumeReply",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        ("message_id" = uuid::Uuid, Path, description = "The assistant's reply"),
        ("Last-Event-ID" = Option<u32>, Header, nullable = false, description = "The id of the last event seen"),
        ("after" = Option<u32>, Query, nullable = false, description = "The id of the last event seen, when `Last-Event-ID` cannot be sent"),
    ),
    responses(
        (status = 200, description = "The reply's deltas after the cursor, then `done` or `error`",
            content_type = "text/event-stream", body = ServerSentEvent),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 422, description = "An id that is not a UUID, a cursor that is not a whole number, or a user's message", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn resume(
    request: HttpRequest,
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    MessagePath { chat, message }: MessagePath,
) -> Result<HttpResponse, ApiError> {
    let header = request.headers().get("last-event-id");
    let after = request
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("after="));
    // Each is checked when given; the header wins over the query.
    let after = after
        .map(|after| cursor(Some(after), Source::Query, "after"))
        .transpose()?;
    let header = header
        .map(|value| cursor(value.to_str().ok(), Source::Header, "last-event-id"))
        .transpose()?;
    let seen = header.or(after).unwrap_or(0);
    let stored = blocking(&state, move |app| app.reply_of(user, chat, message)).await?;
    let source = match state.generations.get(message) {
        Some(live) => stream::Source::Live(live),
        None => stream::Source::Stored {
            chat: stored.message.chat_id,
            reply: message,
        },
    };
    Ok(stream::reply(state, user, Vec::new(), source, seen))
}

/// A resume cursor: a whole number ≥ 0, or 422 naming where it came from.
fn cursor(value: Option<&str>, source: Source, name: &str) -> Result<usize, ApiError> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()))
        // An event id is at most u32::MAX (a reply of that many pieces is not stored).
        .and_then(|value| value.parse::<u32>().ok())
        .map(|seen| usize::try_from(seen).unwrap_or(usize::MAX))
        .ok_or_else(|| ApiError::Invalid(vec![crate::error::wire::not_a_cursor(source, name)]))
}

/// Stop a reply
///
/// Ends a generating reply within a second, on whichever instance runs it: it keeps the
/// text written so far, `status: "stopped"`, and every open stream of it gets `done`.
/// The answer is the reply as stored (200). Stopping a reply that has ended changes
/// nothing and answers it as it is.
#[utoipa::path(
    post, path = "/messages/{message_id}/stop", tag = "messages", operation_id = "stopReply",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        ("message_id" = uuid::Uuid, Path, description = "The assistant's reply"),
    ),
    responses(
        (status = 200, description = "The reply as stored", body = MessageResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 422, description = "An id that is not a UUID, or a user's message", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn stop(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    MessagePath { chat, message }: MessagePath,
) -> Result<HttpResponse, ApiError> {
    let stored = blocking(&state, move |app| app.request_stop(user, chat, message)).await?;
    if stored.message.status != MessageStatus::Generating {
        return Ok(HttpResponse::Ok().json(MessageResponse::from(stored.message)));
    }
    if let Some(live) = state.generations.get(message) {
        live.stop(Cause::Stop);
        return Ok(ended(live.ended().await, HttpResponse::Ok()));
    }
    // Generating on another instance, which sees the request within a fraction of a
    // second and stores the reply.
    let chat = stored.message.chat_id;
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    loop {
        tokio::time::sleep(STOP_POLL).await;
        let now = blocking(&state, move |app| app.stored_reply(chat, message)).await?;
        if now.message.status != MessageStatus::Generating
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(HttpResponse::Ok().json(MessageResponse::from(now.message)));
        }
    }
}

/// How often the stop route reads a reply generating on another instance again.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// How long the stop route waits for another instance to store a stopped reply (it
/// answers the reply as it is then: an instance that died leaves it to the reaper).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
