//! `/chats/{chat_id}/messages`: the conversation. Paths are relative to the
//! `/chats/{chat_id}` scope of the route table.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use memlayer_app::MemLayer;

use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::body::JsonBody;
use crate::dto::{MessageResponse, PostMessageRequest};
use crate::error::ApiError;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::extract::ChatPath;
use crate::paging::{MessageListQuery, Paged, page_response};
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
    let answer = EarlyAnswer::start(&state.app, &pending);
    let question = pending.question().clone();
    // If storing fails, dropping `answer` cancels the model's work.
    blocking(&state, move |app| app.store_question(&question)).await?;
    if streamed {
        return Ok(stream::reply(state, pending, answer.into_stream()));
    }
    // No thread and no connection is held while the model writes.
    let text = MemLayer::answer_in_full(answer.into_stream()).await?;
    let reply = blocking(&state, move |app| app.finish_reply(&pending, &text)).await?;
    Ok(HttpResponse::Created().json(MessageResponse::from(reply)))
}

/// List a chat's messages
///
/// The chat's latest messages (at most `limit`, 1000 by default), oldest first;
/// messages written in the same microsecond keep one order. When earlier messages
/// exist, the `X-Next-Cursor` header holds the `cursor` that reads the page before.
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
