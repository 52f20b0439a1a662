//! Every failure becomes a JSON response here, in FastAPI's shapes:
//! `{"detail": "..."}`, or for invalid input (422) `{"detail": [{"loc", "msg", "type"}]}`.

use std::fmt;

use actix_web::error::BlockingError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use memlayer_app::AppError;
use memlayer_app::domain::Location;

use crate::dto::{ErrorBody, LocItem, ValidationErrorBody, ValidationIssue};

/// A failed request.
#[derive(Debug)]
pub enum ApiError {
    /// A use case said no.
    App(AppError),
    /// The request could not be read: malformed JSON, a wrong type, a bad path parameter.
    Invalid(Vec<ValidationIssue>),
    /// No or a malformed `Authorization` header.
    NotAuthenticated,
    /// No route for this path.
    NotFound,
    /// The path exists, the method does not; `Allow` lists the methods that do.
    MethodNotAllowed(&'static str),
    /// The body is larger than the limit, in bytes.
    PayloadTooLarge(usize),
    /// The body is not declared as JSON.
    UnsupportedMediaType,
    /// The body could not be read from the connection.
    BadRequest(String),
    /// The client used up its budget of credential attempts; retry after this many seconds.
    TooManyRequests(u64),
    /// The request body did not arrive within the deadline, in seconds.
    BodyTimeout(u64),
    /// Too many logins are waiting for the password hasher; retry after this many seconds.
    Busy(u64),
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        Self::App(error)
    }
}

/// The blocking pool could not run a use case (it is shutting down): a server failure.
impl From<BlockingError> for ApiError {
    fn from(error: BlockingError) -> Self {
        Self::App(AppError::Internal(error.into()))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App(error) => error.fmt(f),
            Self::Invalid(_) => f.write_str("Invalid request"),
            Self::NotAuthenticated => f.write_str("Not authenticated"),
            Self::NotFound => f.write_str("Not Found"),
            Self::MethodNotAllowed(_) => f.write_str("Method Not Allowed"),
            Self::PayloadTooLarge(limit) => {
                write!(f, "Request body too large: the limit is {limit} bytes")
            }
            Self::UnsupportedMediaType => {
                f.write_str("Unsupported Media Type: send the body as application/json")
            }
            Self::BadRequest(reason) => write!(f, "Bad request: {reason}"),
            Self::TooManyRequests(seconds) => {
                write!(f, "Too many attempts: try again in {seconds} seconds")
            }
            Self::BodyTimeout(seconds) => write!(
                f,
                "Request Timeout: the body did not arrive within {seconds} seconds"
            ),
            Self::Busy(seconds) => {
                write!(f, "Too many logins at once: try again in {seconds} seconds")
            }
        }
    }
}

/// So a streamed body can end on one (the connection is then cut).
impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::App(error) => match error {
                AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                AppError::EmailTaken => StatusCode::CONFLICT,
                AppError::InvalidCredentials | AppError::Unauthenticated => {
                    StatusCode::UNAUTHORIZED
                }
                AppError::ChatNotFound => StatusCode::NOT_FOUND,
                AppError::NotChatOwner | AppError::WrongPassword => StatusCode::FORBIDDEN,
                AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                AppError::AssistantFailed(_) => StatusCode::BAD_GATEWAY,
                AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotAuthenticated => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        match self {
            Self::App(AppError::InvalidCredentials | AppError::Unauthenticated)
            | Self::NotAuthenticated => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Self::App(AppError::Unavailable(_)) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            Self::TooManyRequests(seconds) | Self::Busy(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            Self::BodyTimeout(_) => {
                // The rest of the body may still be on its way: do not wait for it.
                response.force_close();
            }
            Self::MethodNotAllowed(allow) => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        self.log();
        match self {
            Self::App(AppError::Invalid(errors)) => response.json(ValidationErrorBody {
                detail: errors
                    .0
                    .iter()
                    .map(|error| {
                        let source = match error.location {
                            Location::Body => "body",
                            Location::Query => "query",
                        };
                        ValidationIssue::new(
                            vec![LocItem::from(source), LocItem::from(error.field)],
                            error.message.clone(),
                            error.kind.code(),
                        )
                    })
                    .collect(),
            }),
            Self::Invalid(issues) => response.json(ValidationErrorBody {
                detail: issues.clone(),
            }),
            _ => response.json(ErrorBody {
                detail: self.to_string(),
            }),
        }
    }
}

impl ApiError {
    /// Server-side failures are logged with their cause; the client sees only a status
    /// and a generic `detail`.
    pub(crate) fn log(&self) {
        let status = self.status_code();
        if let Self::App(error) = self {
            let error = error as &dyn std::error::Error;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(%status, error, "request failed");
            } else if status.is_server_error() {
                tracing::error!(%status, error, "request failed");
            }
        }
    }
}
