//! `/chats/{chat_id}/messages`: the conversation.

use actix_web::HttpResponse;
use actix_web::web::Data;

use super::{ChatPath, ListQuery, blocking, page_response};
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::dto::{ErrorBody, MessageResponse, PostMessageRequest, ValidationErrorBody};
use crate::error::ApiError;
use crate::state::ApiState;

/// Send a message
///
/// Stores the user's message, has the assistant answer it, stores the answer and
/// returns it. The user's message sorts before the answer.
#[utoipa::path(
    post, path = "/chats/{chat_id}/messages", tag = "messages", operation_id = "postMessage",
    security(("bearer" = [])),
    params(("chat_id" = uuid::Uuid, Path, description = "The chat's id")),
    request_body = PostMessageRequest,
    responses(
        (status = 201, description = "The assistant's reply", body = MessageResponse),
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
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
    JsonBody(body): JsonBody<PostMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let reply = blocking(&state, move |app| {
        app.post_message(user, chat, body.content)
    })
    .await?;
    Ok(HttpResponse::Created().json(MessageResponse::from(reply)))
}

/// List a chat's messages
///
/// The chat's latest messages (at most `limit`, 1000 by default), oldest first;
/// messages written in the same microsecond keep one order. When earlier messages
/// exist, the `X-Next-Cursor` header holds the `cursor` that reads the page before.
#[utoipa::path(
    get, path = "/chats/{chat_id}/messages", tag = "messages", operation_id = "listMessages",
    security(("bearer" = [])),
    params(
        ("chat_id" = uuid::Uuid, Path, description = "The chat's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most messages to return (default 1000): the latest ones"),
        ("cursor" = Option<String>, Query, pattern = r"^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The X-Next-Cursor of the page after this one: reads the messages before it"),
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
    query: ListQuery,
) -> Result<HttpResponse, ApiError> {
    let page = blocking(&state, move |app| {
        app.list_messages(user, chat, query.limit.as_deref(), query.cursor.as_deref())
    })
    .await?;
    Ok(page_response(page, MessageResponse::from))
}
