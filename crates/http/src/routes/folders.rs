//! `/folders`: the user's own groups of chats. A chat is filed in one with
//! `PATCH /chats/{chat_id}` and `folder_id`.

use actix_web::HttpResponse;
use actix_web::web::Data;

use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::body::JsonBody;
use crate::dto::{FolderRequest, FolderResponse};
use crate::error::ApiError;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::extract::FolderPath;
use crate::state::ApiState;

/// List my folders
///
/// Every folder of the user's, oldest first.
#[utoipa::path(
    get, path = "/folders", tag = "folders", operation_id = "listFolders",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The folders, oldest first", body = Vec<FolderResponse>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn list(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let folders = blocking(&state, move |app| app.list_folders(user)).await?;
    Ok(HttpResponse::Ok().json(
        folders
            .into_iter()
            .map(FolderResponse::from)
            .collect::<Vec<_>>(),
    ))
}

/// Create a folder
#[utoipa::path(
    post, path = "/folders", tag = "folders", operation_id = "createFolder",
    security(("bearer" = [])),
    request_body = FolderRequest,
    responses(
        (status = 201, description = "The new folder", body = FolderResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn create(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    JsonBody(body): JsonBody<FolderRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = body.try_into_name()?;
    let folder = blocking(&state, move |app| app.create_folder(user, name)).await?;
    Ok(HttpResponse::Created().json(FolderResponse::from(folder)))
}

/// Rename a folder
#[utoipa::path(
    patch, path = "/folders/{folder_id}", tag = "folders", operation_id = "renameFolder",
    security(("bearer" = [])),
    params(("folder_id" = uuid::Uuid, Path, description = "The folder's id")),
    request_body = FolderRequest,
    responses(
        (status = 200, description = "The renamed folder", body = FolderResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The folder belongs to another user", body = ErrorBody),
        (status = 404, description = "No such folder", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid name or folder id", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn rename(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    FolderPath(folder): FolderPath,
    JsonBody(body): JsonBody<FolderRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = body.try_into_name()?;
    let folder = blocking(&state, move |app| app.rename_folder(user, folder, name)).await?;
    Ok(HttpResponse::Ok().json(FolderResponse::from(folder)))
}

/// Delete a folder
///
/// Its chats stay, in no folder.
#[utoipa::path(
    delete, path = "/folders/{folder_id}", tag = "folders", operation_id = "deleteFolder",
    security(("bearer" = [])),
    params(("folder_id" = uuid::Uuid, Path, description = "The folder's id")),
    responses(
        (status = 204, description = "Deleted; its chats are in no folder now"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The folder belongs to another user", body = ErrorBody),
        (status = 404, description = "No such folder", body = ErrorBody),
        (status = 422, description = "The folder id is not a UUID", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn delete(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    FolderPath(folder): FolderPath,
) -> Result<HttpResponse, ApiError> {
    blocking(&state, move |app| app.delete_folder(user, folder)).await?;
    Ok(HttpResponse::NoContent().finish())
}
