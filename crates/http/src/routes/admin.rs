//! `/admin/users`: accounts, for admins (403 for anyone else). Every change is logged
//! as one structured line.

use actix_web::HttpResponse;
use actix_web::web::Data;

use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::body::JsonBody;
use crate::dto::{AdminUserChange, AdminUserResponse, Credentials};
use crate::error::ApiError;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::extract::UserPath;
use crate::paging::{AdminUserListParams, AdminUserListQuery, page_response};
use crate::state::ApiState;
use memlayer_app::AdminNewAccount;

/// List accounts
///
/// Accounts newest first, each with its number of chats and the tokens it spent today
/// (UTC); `q` keeps those whose email holds it. When more follow, the `X-Next-Cursor`
/// header holds the `cursor` that reads the next page.
#[utoipa::path(
    get, path = "/admin/users", tag = "admin", operation_id = "adminListUsers",
    security(("bearer" = [])),
    params(AdminUserListQuery),
    responses(
        (status = 200, description = "A page of accounts, newest first", body = Vec<AdminUserResponse>,
            headers(("X-Next-Cursor" = String, description = "Present when more accounts follow: pass it as `cursor`"))),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Invalid limit, cursor or q", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn list(
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
    params: AdminUserListParams,
) -> Result<HttpResponse, ApiError> {
    let AdminUserListParams {
        email_contains,
        page,
    } = params;
    let found = blocking(&state, move |app| {
        app.admin_list_users(session, email_contains.as_deref(), page)
    })
    .await?;
    Ok(page_response(found, AdminUserResponse::from))
}

/// Create an account
///
/// Makes an account (a `user`) with this email and password, whether or not
/// registration is open.
#[utoipa::path(
    post, path = "/admin/users", tag = "admin", operation_id = "adminCreateUser",
    security(("bearer" = [])),
    request_body = Credentials,
    responses(
        (status = 201, description = "The new account", body = AdminUserResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "The email is already registered", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid email or password", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable, or too many password checks queued; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn create(
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let (email, password) = body.try_into_registration()?;
    // Hashing takes a bcrypt slot, as a registration does.
    let _slot = state.bcrypt.admit().await?;
    let created = blocking(&state, move |app| {
        app.admin_create_user(session, AdminNewAccount { email, password })
    })
    .await?;
    Ok(HttpResponse::Created().json(AdminUserResponse::from(created)))
}

/// Change an account
///
/// Sets its role, disables or enables it, or sets its own daily token limit (`null`:
/// the operator's default again). Disabling revokes its tokens at once, stops its
/// replies and refuses its logins. A change that would leave no enabled admin is 409.
#[utoipa::path(
    patch, path = "/admin/users/{user_id}", tag = "admin", operation_id = "adminUpdateUser",
    security(("bearer" = [])),
    params(("user_id" = uuid::Uuid, Path, description = "The account's id")),
    request_body = AdminUserChange,
    responses(
        (status = 200, description = "The account as changed", body = AdminUserResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "It would leave no enabled admin", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid id, role, disabled or token_limit, or no field at all", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn change(
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
    UserPath(user): UserPath,
    JsonBody(body): JsonBody<AdminUserChange>,
) -> Result<HttpResponse, ApiError> {
    let change = body.try_into_change()?;
    let changed = blocking(&state, move |app| {
        app.admin_change_user(session, user, change)
    })
    .await?;
    Ok(HttpResponse::Ok().json(AdminUserResponse::from(changed)))
}

/// Delete an account
///
/// Deletes the account with its chats and messages (its replies stop). Deleting the
/// last enabled admin is 409.
#[utoipa::path(
    delete, path = "/admin/users/{user_id}", tag = "admin", operation_id = "adminDeleteUser",
    security(("bearer" = [])),
    params(("user_id" = uuid::Uuid, Path, description = "The account's id")),
    responses(
        (status = 204, description = "Deleted, with its chats and messages"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "It is the last enabled admin", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn delete(
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
    UserPath(user): UserPath,
) -> Result<HttpResponse, ApiError> {
    blocking(&state, move |app| app.admin_delete_user(session, user)).await?;
    Ok(HttpResponse::NoContent().finish())
}
