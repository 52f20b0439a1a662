//! `/auth`: register, log in, who am I; change the password, log out everywhere,
//! delete the account, export its data.

use actix_web::HttpResponse;
use actix_web::web::Data;
use memlayer_app::{AppError, MemLayer};

use super::export;
use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::body::JsonBody;
use crate::dto::{
    AccountExport, ChangePasswordRequest, Credentials, DeleteAccountRequest, TokenResponse,
    UsageResponse, UserResponse,
};
use crate::error::ApiError;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::state::ApiState;
use crate::throttle::Attempt;

/// Create an account
///
/// Registers a new account and logs it in. The email is trimmed and lower-cased.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth", operation_id = "register",
    request_body = Credentials,
    responses(
        (status = 201, description = "Account created; logged in", body = TokenResponse),
        (status = 403, description = "Registration is closed (`REGISTRATION=closed`): the operator makes accounts", body = ErrorBody),
        (status = 409, description = "The email is already registered", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid email or password", body = ValidationErrorBody),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable, or too many password checks queued; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn register(
    attempt: Attempt,
    state: Data<ApiState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    // Before the attempt is spent and the password hashed.
    state.app.ensure_registration_open()?;
    let (email, password) = body.try_into_registration()?;
    let token =
        with_bcrypt_slot(&state, &attempt, move |app| app.register(email, password)).await?;
    Ok(HttpResponse::Created().json(TokenResponse::from(token)))
}

/// Log in
///
/// Exchanges an email and password for an access token. An unknown email and a wrong
/// password get the same 401.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth", operation_id = "login",
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Incorrect email or password", body = ErrorBody),
        (status = 403, description = "The account is disabled (right password)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Malformed request", body = ValidationErrorBody),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable, or too many password checks queued; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(
    attempt: Attempt,
    state: Data<ApiState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let (email, password) = body.try_into_login()?;
    let token = with_bcrypt_slot(&state, &attempt, move |app| app.login(&email, password)).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(token)))
}

/// Runs a use case that hashes or checks a password: spends one of the client's
/// attempts (429 past its budget), then waits for one of the bcrypt slots without
/// holding a thread. When the queue is already too long, or the wait too, the attempt
/// is given back and the answer is a 503 with `Retry-After`.
async fn with_bcrypt_slot<T, F>(
    state: &Data<ApiState>,
    attempt: &Attempt,
    use_case: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&MemLayer) -> Result<T, AppError> + Send + 'static,
{
    attempt.spend().await?;
    let _slot = match state.bcrypt.admit().await {
        Ok(slot) => slot,
        Err(busy) => {
            attempt.refund().await;
            return Err(busy);
        }
    };
    blocking(state, use_case).await
}

/// The current user
#[utoipa::path(
    get, path = "/auth/me", tag = "auth", operation_id = "getCurrentUser",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The logged-in account", body = UserResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn me(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let user = blocking(&state, move |app| app.current_user(user)).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

/// What I spent today
///
/// The tokens spent today (the UTC day: a reply's tokens count on the day it ended),
/// the daily limit, and the replies being written now against their limit.
#[utoipa::path(
    get, path = "/auth/me/usage", tag = "auth", operation_id = "getUsage",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Today's spending and the limits", body = UsageResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn usage(
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let report = blocking(&state, move |app| app.usage(session)).await?;
    Ok(HttpResponse::Ok().json(UsageResponse::from(report)))
}

/// Change my password
///
/// Sets a new password, given the current one, and revokes every access token issued
/// before, on every device: the fresh token in the answer is the only one that works
/// afterwards. A wrong current password is 403 and counts toward the same per-client
/// budget as logins (429 beyond it).
#[utoipa::path(
    post, path = "/auth/password", tag = "auth", operation_id = "changePassword",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Password changed; every earlier token is revoked; here is a fresh one", body = TokenResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "The current password is wrong", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "The new password breaks the policy, or a field is missing", body = ValidationErrorBody),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable, or too many password checks queued; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn change_password(
    attempt: Attempt,
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
    JsonBody(body): JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let (current, new) = body.try_into_passwords()?;
    let token = with_bcrypt_slot(&state, &attempt, move |app| {
        app.change_password(session, current, new)
    })
    .await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(token)))
}

/// Log out everywhere
///
/// Revokes every access token of the account, this one included.
#[utoipa::path(
    post, path = "/auth/logout-all", tag = "auth", operation_id = "logoutAll",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every token of the account is revoked"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn logout_all(
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
) -> Result<HttpResponse, ApiError> {
    blocking(&state, move |app| app.log_out_everywhere(session)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete my account
///
/// Deletes the account with all its chats and messages, given its password. Its tokens
/// stop working and the email can register again.
#[utoipa::path(
    delete, path = "/auth/me", tag = "auth", operation_id = "deleteAccount",
    security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "The account, its chats and its messages are deleted"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "The password is wrong", body = ErrorBody),
        (status = 409, description = "The account is the last enabled admin: make another admin first", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "The password is missing or malformed", body = ValidationErrorBody),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable, or too many password checks queued; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn delete_me(
    attempt: Attempt,
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
    JsonBody(body): JsonBody<DeleteAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let password = body.try_into_password()?;
    with_bcrypt_slot(&state, &attempt, move |app| {
        app.delete_account(session, password)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Export my data
///
/// Everything held about the account, as one JSON document: the account (never its
/// password hash) and every chat (newest first) with all its messages (oldest first).
/// Streamed page by page, so an account of any size is exported without holding it in
/// memory; a failure mid-way cuts the stream (the JSON is then incomplete).
#[utoipa::path(
    get, path = "/auth/me/export", tag = "auth", operation_id = "exportAccount",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account and all its chats and messages", body = AccountExport),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn export(
    state: Data<ApiState>,
    Authenticated(session): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let account = blocking(&state, move |app| app.export_account(session)).await?;
    let head = export::head(account)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(export::body(state, session, head)))
}
