//! What can go wrong with a request. How each failure looks on the wire (status,
//! headers, body, words) is [`crate::wire`]'s business.

use std::fmt;

use actix_web::error::BlockingError;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use memlayer_app::AppError;
use memlayer_app::domain::{ValidationError, ValidationErrors};

use crate::wire::{self, Source, ValidationIssue};

/// A failed request.
#[derive(Debug)]
pub enum ApiError {
    /// A use case said no.
    App(AppError),
    /// The request could not be read: malformed JSON, a wrong type, a bad path or query
    /// parameter, a value that breaks a domain rule.
    Invalid(Vec<ValidationIssue>),
    /// No or a malformed `Authorization` header.
    NotAuthenticated,
    /// No route for this path.
    NotFound,
    /// The path exists, the method does not; `Allow` lists the methods that do.
    MethodNotAllowed(HeaderValue),
    /// The body is larger than the limit, in bytes.
    PayloadTooLarge(usize),
    /// The body is not declared as JSON.
    UnsupportedMediaType,
    /// The body could not be read from the connection.
    BadRequest(String),
    /// The request body did not arrive within the deadline, in seconds.
    BodyTimeout(u64),
    /// Too many logins are waiting for the password hasher; retry after this many seconds.
    Busy(u64),
}

impl ApiError {
    /// Input from `source` that broke the domain's rules.
    pub fn rejected(source: Source, errors: &ValidationErrors) -> Self {
        Self::Invalid(wire::domain_issues(source, errors))
    }

    /// Input from `source` that broke a domain rule, in the request field `name` (a
    /// password to confirm is a `current_password`, not a `password`).
    pub fn rejected_as(source: Source, name: &str, error: &ValidationError) -> Self {
        Self::Invalid(vec![wire::domain_issue_at(source, name, error)])
    }
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

/// For logs; what a client reads is in [`crate::wire`].
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App(error) => error.fmt(f),
            Self::Invalid(issues) => write!(f, "{} invalid input(s)", issues.len()),
            Self::NotAuthenticated => f.write_str("no bearer token"),
            Self::NotFound => f.write_str("no such route"),
            Self::MethodNotAllowed(allow) => write!(f, "method not allowed (allowed: {allow:?})"),
            Self::PayloadTooLarge(limit) => write!(f, "body larger than {limit} bytes"),
            Self::UnsupportedMediaType => f.write_str("body not declared as JSON"),
            Self::BadRequest(reason) => write!(f, "body unreadable: {reason}"),
            Self::BodyTimeout(seconds) => write!(f, "body not received within {seconds} s"),
            Self::Busy(seconds) => write!(f, "password hasher busy, retry in {seconds} s"),
        }
    }
}

/// So a streamed body can end on one (the connection is then cut).
impl std::error::Error for ApiError {}

impl ApiError {
    /// Server-side failures are logged with their cause; the client sees only a status
    /// and a generic `detail`.
    pub(crate) fn log(&self) {
        let status = actix_web::ResponseError::status_code(self);
        if let Self::App(error) = self {
            let error: &dyn std::error::Error = error;
            // Outages and a failing model server are the operator's to watch, not bugs:
            // and a model's refusal can be provoked by any user (a long history).
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::BAD_GATEWAY {
                tracing::warn!(%status, error, "request failed");
            } else if status.is_server_error() {
                tracing::error!(%status, error, "request failed");
            }
        }
    }
}
