//! `/health`: liveness and readiness probes.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::error::wire::ErrorBody;
use crate::state::ApiState;

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` (alive) or `ready` (the database answers).
    pub status: &'static str,
}

/// Liveness
///
/// 200 while the process serves HTTP; it does not touch the database.
#[utoipa::path(
    get, path = "/health", tag = "health", operation_id = "health",
    responses((status = 200, description = "Alive", body = HealthResponse))
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

/// Readiness
///
/// 200 when the database answers, 503 while it does not.
#[utoipa::path(
    get, path = "/health/ready", tag = "health", operation_id = "readiness",
    responses(
        (status = 200, description = "Ready to serve", body = HealthResponse),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn ready(state: Data<ApiState>) -> Result<HttpResponse, ApiError> {
    web::block(move || state.health.check())
        .await?
        .map_err(|error| ApiError::App(error.into()))?;
    Ok(HttpResponse::Ok().json(HealthResponse { status: "ready" }))
}
