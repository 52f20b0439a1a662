//! `/auth`: register, log in, who am I.

use actix_web::HttpResponse;
use actix_web::web::Data;
use memlayer_app::{AppError, MemLayer};

use super::blocking;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::dto::{Credentials, ErrorBody, TokenResponse, UserResponse, ValidationErrorBody};
use crate::error::ApiError;
use crate::state::ApiState;
use crate::throttle::AuthThrottle;

/// Create an account
///
/// Registers a new account and logs it in. The email is trimmed and lower-cased.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth", operation_id = "register",
    request_body = Credentials,
    responses(
        (status = 201, description = "Account created; logged in", body = TokenResponse),
        (status = 409, description = "The email is already registered", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid email or password", body = ValidationErrorBody),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn register(
    _: AuthThrottle,
    state: Data<ApiState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let token =
        with_bcrypt_slot(&state, move |app| app.register(&body.email, &body.password)).await?;
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
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Malformed request", body = ValidationErrorBody),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn login(
    _: AuthThrottle,
    state: Data<ApiState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let token = with_bcrypt_slot(&state, move |app| app.login(&body.email, &body.password)).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(token)))
}

/// Runs a use case that hashes or checks a password once one of the bcrypt slots is
/// free, waiting for it without holding a thread.
async fn with_bcrypt_slot<T, F>(state: &Data<ApiState>, use_case: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&MemLayer) -> Result<T, AppError> + Send + 'static,
{
    let _slot = state
        .bcrypt_slots
        .acquire()
        .await
        .map_err(|closed| ApiError::App(AppError::Internal(closed.into())))?;
    blocking(state, use_case).await
}

/// The current user
#[utoipa::path(
    get, path = "/auth/me", tag = "auth", operation_id = "getCurrentUser",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The logged-in account", body = UserResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
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
