//! Extractors the routes share (the bearer token's is in [`crate::auth`]).

use actix_web::FromRequest;
use memlayer_app::domain::{ChatId, FolderId};

use crate::error::{ApiError, wire};

/// The `{chat_id}` of the path, which must be a UUID (else 422, as FastAPI answers).
#[derive(Debug, Clone, Copy)]
pub struct ChatPath(pub ChatId);

impl FromRequest for ChatPath {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let raw = req.match_info().get("chat_id").unwrap_or_default();
        std::future::ready(
            uuid::Uuid::parse_str(raw)
                .map(|id| Self(ChatId::from_uuid(id)))
                .map_err(|error| {
                    ApiError::Invalid(vec![wire::bad_uuid("chat_id", &error.to_string())])
                }),
        )
    }
}

/// The `{folder_id}` of the path, which must be a UUID (else 422).
#[derive(Debug, Clone, Copy)]
pub struct FolderPath(pub FolderId);

impl FromRequest for FolderPath {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let raw = req.match_info().get("folder_id").unwrap_or_default();
        std::future::ready(
            uuid::Uuid::parse_str(raw)
                .map(|id| Self(FolderId::from_uuid(id)))
                .map_err(|error| {
                    ApiError::Invalid(vec![wire::bad_uuid("folder_id", &error.to_string())])
                }),
        )
    }
}
