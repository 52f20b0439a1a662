//! `/chats`: the user's conversations. The paths of one chat are relative to the
//! `/chats/{chat_id}` scope of the route table.

use actix_web::HttpResponse;
use actix_web::web::Data;
use memlayer_app::domain::MessageId;

use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::body::JsonBody;
use crate::dto::{ChatResponse, CreateChatRequest, SetActiveRequest, UpdateChatRequest};
use crate::error::ApiError;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::extract::ChatPath;
use crate::paging::{ChatListParams, ChatListQuery, chat_page_response};
use crate::state::ApiState;

/// Create a chat
///
/// Without a title (missing, null or blank), the chat is named `Chat YYYY-MM-DD HH:MM`
/// after the current UTC time.
#[utoipa::path(
    post, path = "/chats", tag = "chats", operation_id = "createChat",
    security(("bearer" = [])),
    request_body(content = Option<CreateChatRequest>, description = "Optional: no body is the same as `{}`"),
    responses(
        (status = 201, description = "The new chat", body = ChatResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid title", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn create(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    JsonBody(body): JsonBody<CreateChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let title = body.try_into_title()?;
    let chat = blocking(&state, move |app| app.create_chat(user, title)).await?;
    Ok(HttpResponse::Created().json(ChatResponse::from(chat)))
}

/// List my chats
///
/// The user's own chats: pinned ones first, then the others, each group newest first,
/// at most `limit` (200 by default). Archived chats are left out (`archived=true` lists
/// only them); `folder_id` keeps one folder's. When more follow, the `X-Next-Cursor`
/// header holds the `cursor` that reads the next page.
#[utoipa::path(
    get, path = "/chats", tag = "chats", operation_id = "listChats",
    security(("bearer" = [])),
    params(ChatListQuery),
    responses(
        (status = 200, description = "The chats, pinned first, each group newest first", body = Vec<ChatResponse>,
            headers(("X-Next-Cursor" = String, description = "Present when more chats follow: pass it as `cursor`"))),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "Invalid limit, cursor, archived or folder_id", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn list(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    params: ChatListParams,
) -> Result<HttpResponse, ApiError> {
    let ChatListParams {
        filter,
        limit,
        after,
    } = params;
    let page = blocking(&state, move |app| {
        app.list_organised_chats(user, filter, limit, after)
    })
    .await?;
    Ok(chat_page_response(page, ChatResponse::from))
}

/// Get a chat
#[utoipa::path(
    get, path = "", tag = "chats", operation_id = "getChat",
    security(("bearer" = [])),
    params(("chat_id" = uuid::Uuid, Path, description = "The chat's id")),
    responses(
        (status = 200, description = "The chat", body = ChatResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 422, description = "The chat id is not a UUID", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn get(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
) -> Result<HttpResponse, ApiError> {
    let chat = blocking(&state, move |app| app.get_chat(user, chat)).await?;
    Ok(HttpResponse::Ok().json(ChatResponse::from(chat)))
}

/// Change a chat: rename, pin, archive, file in a folder
///
/// Sets every field given (at least one): `title`, `pinned`, `archived`, `folder_id`
/// (one of your folders, or `null` to take the chat out of its folder).
#[utoipa::path(
    patch, path = "", tag = "chats", operation_id = "updateChat",
    security(("bearer" = [])),
    params(("chat_id" = uuid::Uuid, Path, description = "The chat's id")),
    request_body = UpdateChatRequest,
    responses(
        (status = 200, description = "The changed chat", body = ChatResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid title, no field given, a folder_id that is not one of your folders, or a chat id that is not a UUID", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn update(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
    JsonBody(body): JsonBody<UpdateChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = body.try_into_update()?;
    let chat = blocking(&state, move |app| app.update_chat(user, chat, change)).await?;
    Ok(HttpResponse::Ok().json(ChatResponse::from(chat)))
}

/// Delete a chat
///
/// Deletes the chat and all its messages.
#[utoipa::path(
    delete, path = "", tag = "chats", operation_id = "deleteChat",
    security(("bearer" = [])),
    params(("chat_id" = uuid::Uuid, Path, description = "The chat's id")),
    responses(
        (status = 204, description = "Deleted, with its messages"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 422, description = "The chat id is not a UUID", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn delete(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
) -> Result<HttpResponse, ApiError> {
    blocking(&state, move |app| app.delete_chat(user, chat)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Show a branch
///
/// Makes the path through a message of the chat the active one: the active leaf
/// becomes the newest leaf below that message (the message itself when nothing
/// follows it). `GET /chats/{chat_id}/messages` then lists that path.
#[utoipa::path(
    put, path = "/active", tag = "chats", operation_id = "setActiveBranch",
    security(("bearer" = [])),
    params(("chat_id" = uuid::Uuid, Path, description = "The chat's id")),
    request_body = SetActiveRequest,
    responses(
        (status = 200, description = "The chat, with its new active leaf", body = ChatResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The chat belongs to another user", body = ErrorBody),
        (status = 404, description = "No such chat, or no such message in it", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A chat or message id that is not a UUID", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn set_active(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    ChatPath(chat): ChatPath,
    JsonBody(body): JsonBody<SetActiveRequest>,
) -> Result<HttpResponse, ApiError> {
    let message = MessageId::from_uuid(body.message_id);
    let chat = blocking(&state, move |app| app.switch_branch(user, chat, message)).await?;
    Ok(HttpResponse::Ok().json(ChatResponse::from(chat)))
}
