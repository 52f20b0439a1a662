//! Extractors the routes share (the bearer token's is in [`crate::auth`]).

use actix_web::FromRequest;
use memlayer_app::domain::{ChatId, FolderId, MessageId, UserId};

use crate::error::{ApiError, wire};

/// The path parameter `name` as a UUID, or the 422 issue naming it.
fn path_uuid(
    req: &actix_web::HttpRequest,
    name: &str,
) -> Result<uuid::Uuid, wire::ValidationIssue> {
    uuid::Uuid::parse_str(req.match_info().get(name).unwrap_or_default())
        .map_err(|error| wire::bad_uuid(name, &error.to_string()))
}

/// The `{chat_id}` of the path, which must be a UUID (else 422, as FastAPI answers).
#[derive(Debug, Clone, Copy)]
pub struct ChatPath(pub ChatId);

impl FromRequest for ChatPath {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            path_uuid(req, "chat_id")
                .map(|id| Self(ChatId::from_uuid(id)))
                .map_err(|issue| ApiError::Invalid(vec![issue])),
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
        std::future::ready(
            match (path_uuid(req, "chat_id"), path_uuid(req, "message_id")) {
                (Ok(chat), Ok(message)) => Ok(Self {
                    chat: ChatId::from_uuid(chat),
                    message: MessageId::from_uuid(message),
                }),
                (chat, message) => Err(ApiError::Invalid(
                    [chat.err(), message.err()].into_iter().flatten().collect(),
                )),
            },
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
        std::future::ready(
            path_uuid(req, "folder_id")
                .map(|id| Self(FolderId::from_uuid(id)))
                .map_err(|issue| ApiError::Invalid(vec![issue])),
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
        std::future::ready(
            path_uuid(req, "user_id")
                .map(|id| Self(UserId::from_uuid(id)))
                .map_err(|issue| ApiError::Invalid(vec![issue])),
        )
    }
}
