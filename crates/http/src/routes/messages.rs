//! `/chats/{chat_id}/messages`: the conversation. Paths are relative to the
//! `/chats/{chat_id}` scope of the route table.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use memlayer_app::{MemLayer, PendingReply};

use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::body::JsonBody;
use crate::dto::{MessageResponse, PostMessageRequest};
use crate::error::ApiError;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::extract::{ChatPath, MessagePath};
use crate::paging::{MessageListQuery, Paged, TreeQuery, page_response};
use crate::state::ApiState;
use crate::stream::{self, EarlyAnswer};

/// Send a message
///
/// Stores the user's message, has the assistant answer it, stores the answer and
/// returns it (201). The user's message sorts before the answer.
///
/// With `Accept: text/event-stream` the answer is streamed instead (200), as
/// Server-Sent Events whose `data` is one JSON object each: `message` (the stored user
/// message, a MessageResponse) first, then `delta` (`{"content": "<next piece>"}`) as the
/// assistant writes, then `done` (the stored reply, a MessageResponse, whose content is
/// the deltas joined), or `error` (`{"detail": "..."}`) if the assistant fails mid-way
/// (the user's message stays stored). Lines starting with `:` are keep-alive comments.
/// A client that disconnects stops the assistant; what it was sent is stored as the
/// reply (nothing, when it was sent nothing). Errors before the stream starts are
/// ordinary JSON errors.
#[utoipa::path(
    post, path = "/messages", tag = "messages", operation_id = "postMessage",
    security(("bearer" = [])),
    params(("chat_id" = uuid::Uuid, Path, description = "The chat's id")),
    request_body = PostMessageRequest,
    responses(
        (status = 201, description = "The assistant's reply", body = MessageResponse),
        (status = 200, description = "With `Accept: text/event-stream`: the reply as Server-Sent Events (`message`, `delta`…, then `done` or `error`)",
            content_type = "text/event-stream", body = String,
            example = json!("event: message\ndata: {\"id\":\"…\",\"role\":\"user\",…}\n\nevent: delta\ndata: {\"content\":\"Message received\"}\n\nevent: done\ndata: {\"id\":\"…\",\"role\":\"assistant\",…}\n\n")),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Blank or too long content, or a bad chat id", body = ValidationErrorBody),
        (status = 502, description = "The assistant failed; the user's message was saved", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
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
    answer(state, pending, streamed).await
}

/// Answers `pending`: stores its question (and makes it the active leaf) while the
/// model already reads it, then streams the answer or waits for it whole, and stores it.
async fn answer(
    state: Data<ApiState>,
    pending: PendingReply,
    streamed: bool,
) -> Result<HttpResponse, ApiError> {
    let early = EarlyAnswer::start(&state.app, &pending);
    let to_store = pending.clone();
    // If storing fails, dropping `early` cancels the model's work.
    let question = blocking(&state, move |app| app.store_question(&to_store)).await?;
    if streamed {
        let stored = pending.has_new_question().then_some(question);
        return Ok(stream::reply(state, pending, stored, early.into_stream()));
    }
    // No thread and no connection is held while the model writes.
    let text = MemLayer::answer_in_full(early.into_stream()).await?;
    let reply = blocking(&state, move |app| app.finish_reply(&pending, &text)).await?;
    Ok(HttpResponse::Created().json(MessageResponse::from(reply)))
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
        (status = 200, description = "With `Accept: text/event-stream`: the answer as Server-Sent Events (`delta`…, then `done` or `error`)",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 422, description = "A chat or message id that is not a UUID", body = ValidationErrorBody),
        (status = 502, description = "The assistant failed", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
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
    answer(state, pending, streamed).await
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
        (status = 200, description = "With `Accept: text/event-stream`: `message` (the new user message), `delta`…, then `done` or `error`",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Blank or too long content, an id that is not a UUID, or the assistant's message", body = ValidationErrorBody),
        (status = 502, description = "The assistant failed; the edited message was saved", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
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
    answer(state, pending, streamed).await
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
