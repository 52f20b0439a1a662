//! Extractors the routes share (the bearer token's is in [`crate::auth`]).

use actix_web::FromRequest;
use memlayer_app::domain::{ChatId, FolderId, MessageId, UserId};

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

/// The `{chat_id}` and `{message_id}` of the path, both UUIDs (else 422, each where it
/// is wrong).
#[derive(Debug, Clone, Copy)]
pub struct MessagePath {
    /// The chat.
    pub chat: ChatId,
    /// The message.
    pub message: MessageId,
}

impl FromRequest for MessagePath {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let uuid = |name: &str| {
            uuid::Uuid::parse_str(req.match_info().get(name).unwrap_or_default())
                .map_err(|error| wire::bad_uuid(name, &error.to_string()))
        };
        std::future::ready(match (uuid("chat_id"), uuid("message_id")) {
            (Ok(chat), Ok(message)) => Ok(Self {
                chat: ChatId::from_uuid(chat),
                message: MessageId::from_uuid(message),
            }),
            (chat, message) => Err(ApiError::Invalid(
                [chat.err(), message.err()].into_iter().flatten().collect(),
            )),
        })
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

/// The `{user_id}` of the path, which must be a UUID (else 422).
#[derive(Debug, Clone, Copy)]
pub struct UserPath(pub UserId);

impl FromRequest for UserPath {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let raw = req.match_info().get("user_id").unwrap_or_default();
        std::future::ready(
            uuid::Uuid::parse_str(raw)
                .map(|id| Self(UserId::from_uuid(id)))
                .map_err(|error| {
                    ApiError::Invalid(vec![wire::bad_uuid("user_id", &error.to_string())])
                }),
        )
    }
}
