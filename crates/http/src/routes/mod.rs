//! The routes, one module per resource, and what they share.

pub mod accounts;
pub mod chats;
mod export;
pub mod health;
pub mod messages;

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderValue;
use actix_web::web::{self, Data};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use memlayer_app::domain::ChatId;
use memlayer_app::{AppError, MemLayer};

use crate::error::ApiError;
use crate::state::ApiState;
use crate::wire;

/// Runs a use case on the blocking pool: Diesel and bcrypt block, so each request makes
/// exactly one hop off the actix worker, and runs its whole use case there.
pub(crate) async fn blocking<T, F>(state: &Data<ApiState>, use_case: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&MemLayer) -> Result<T, AppError> + Send + 'static,
{
    let state = state.clone();
    Ok(web::block(move || use_case(&state.app)).await??)
}

/// The `{chat_id}` of the path, which must be a UUID (else 422, as FastAPI answers).
#[derive(Debug, Clone, Copy)]
pub struct ChatPath(pub ChatId);

impl FromRequest for ChatPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("chat_id").unwrap_or_default();
        ready(
            uuid::Uuid::parse_str(raw)
                .map(|id| Self(ChatId::from_uuid(id)))
                .map_err(|error| {
                    ApiError::Invalid(vec![wire::bad_uuid("chat_id", &error.to_string())])
                }),
        )
    }
}

/// A route for GET and HEAD (RFC 9110: HEAD works wherever GET does; actix sends the
/// same head without the body).
pub(crate) fn get() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

/// Registers `path` (and `path/`: no route depends on a trailing slash, and none
/// redirects) with its methods; any other method is a JSON 405 with `Allow`.
pub(crate) fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    let slashed = format!("{path}/");
    web::resource([path.to_owned(), slashed]).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed(HeaderValue::from_static(allow)))
    }))
}
