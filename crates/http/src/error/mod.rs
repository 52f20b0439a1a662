//! What can go wrong with a request, and how each failure looks on the wire: its
//! status, headers and `detail`, in FastAPI's shapes ([`wire`]). The domain and the use
//! cases name what went wrong in their own words; this module alone decides what a
//! client reads, so rewording an internal error never changes the API, and a new kind
//! of failure is one place to edit. The tests below pin the strings.

pub mod wire;

use std::fmt;

use actix_web::error::BlockingError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use memlayer_app::AppError;
use memlayer_app::domain::{ValidationError, ValidationErrors};

use self::wire::{ErrorBody, Source, ValidationErrorBody, ValidationIssue};

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
    /// This instance runs as many replies as it may (`MAX_GENERATIONS`).
    TooManyReplies,
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
        match error {
            // A request that names the wrong kind of message: invalid input, as FastAPI
            // reports it.
            AppError::NotAUserMessage => Self::Invalid(vec![wire::not_a_user_message()]),
            // A body naming a folder the user cannot use is invalid input (422).
            AppError::FolderNotUsable => Self::Invalid(vec![wire::folder_not_usable()]),
            AppError::NotAReply => Self::Invalid(vec![wire::not_a_reply()]),
            error => Self::App(error),
        }
    }
}

/// The blocking pool could not run a use case (it is shutting down): a server failure.
impl From<BlockingError> for ApiError {
    fn from(error: BlockingError) -> Self {
        Self::App(AppError::Internal(error.into()))
    }
}

/// For logs; what a client reads is [`detail`].
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
            Self::TooManyReplies => f.write_str("MAX_GENERATIONS replies generating already"),
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

/// A wait in whole seconds, rounded up, and at least one (what `Retry-After` says: a
/// client told 0 would try again at once, and be refused again).
fn whole_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The status a client sees for each failure.
fn status(error: &ApiError) -> StatusCode {
    match error {
        ApiError::App(error) => match error {
            AppError::EmailTaken | AppError::ReplyInProgress | AppError::LastAdmin => {
                StatusCode::CONFLICT
            }
            AppError::InvalidCredentials | AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::ChatNotFound
            | AppError::MessageNotFound
            | AppError::FolderNotFound
            | AppError::UserNotFound => StatusCode::NOT_FOUND,
            AppError::NotChatOwner
            | AppError::NotFolderOwner
            | AppError::WrongPassword
            | AppError::RegistrationClosed
            | AppError::AccountDisabled
            | AppError::AdminsOnly => StatusCode::FORBIDDEN,
            AppError::NotAUserMessage | AppError::FolderNotUsable | AppError::NotAReply => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::TooManyAttempts { .. }
            | AppError::TooManyRepliesAtOnce
            | AppError::DailyTokensSpent { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::AssistantFailed(_) => StatusCode::BAD_GATEWAY,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ApiError::NotAuthenticated => StatusCode::UNAUTHORIZED,
        ApiError::NotFound => StatusCode::NOT_FOUND,
        ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        ApiError::Busy(_) | ApiError::TooManyReplies => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The `detail` text of every failure but invalid input.
pub(crate) fn detail(error: &ApiError) -> String {
    let text = match error {
        ApiError::App(error) => match error {
            AppError::EmailTaken => "Email already registered",
            AppError::RegistrationClosed => "Registration is closed",
            AppError::AccountDisabled => "This account is disabled",
            AppError::AdminsOnly => "Only an admin may do this",
            AppError::LastAdmin => {
                "There must be at least one enabled admin: make another admin first"
            }
            AppError::UserNotFound => "User not found",
            AppError::DailyTokensSpent { retry_after } => {
                return format!(
                    "You have used today's tokens: try again in {} seconds (at 00:00 UTC)",
                    whole_seconds(*retry_after)
                );
            }
            AppError::InvalidCredentials => "Incorrect email or password",
            AppError::WrongPassword => "Incorrect password",
            AppError::Unauthenticated => "Could not validate credentials",
            AppError::ChatNotFound => "Chat not found",
            AppError::NotChatOwner => "Not allowed to access this chat",
            AppError::MessageNotFound => "Message not found",
            AppError::NotAUserMessage => "Only a user's message can be edited",
            AppError::ReplyInProgress => {
                "A reply is being written in this chat: stop it or wait for it to end"
            }
            AppError::NotAReply => "Only an assistant's reply can be resumed or stopped",
            AppError::TooManyRepliesAtOnce => {
                "Too many of your replies are being written at once: wait for one to end"
            }
            AppError::FolderNotFound => "Folder not found",
            AppError::NotFolderOwner => "Not allowed to access this folder",
            AppError::FolderNotUsable => "No folder of yours has this id",
            AppError::TooManyAttempts { retry_after } => {
                return format!(
                    "Too many attempts: try again in {} seconds",
                    whole_seconds(*retry_after)
                );
            }
            AppError::Unavailable(_) => "Service temporarily unavailable",
            AppError::AssistantFailed(_) => {
                "The assistant could not answer; your message was saved"
            }
            AppError::Internal(_) => "Internal Server Error",
        },
        ApiError::Invalid(_) => "Invalid request",
        ApiError::NotAuthenticated => "Not authenticated",
        ApiError::NotFound => "Not Found",
        ApiError::MethodNotAllowed(_) => "Method Not Allowed",
        ApiError::PayloadTooLarge(limit) => {
            return format!("Request body too large: the limit is {limit} bytes");
        }
        ApiError::UnsupportedMediaType => {
            "Unsupported Media Type: send the body as application/json"
        }
        ApiError::BadRequest(reason) => return format!("Bad request: {reason}"),
        ApiError::BodyTimeout(seconds) => {
            return format!("Request Timeout: the body did not arrive within {seconds} seconds");
        }
        ApiError::Busy(seconds) => {
            return format!("Too many logins at once: try again in {seconds} seconds");
        }
        ApiError::TooManyReplies => "Too many replies are being written: try again shortly",
    };
    text.to_owned()
}

/// The JSON error of a failure that was logged already (a reply's, by its generation).
pub(crate) fn response(error: &ApiError) -> HttpResponse {
    HttpResponse::build(status(error)).json(ErrorBody {
        detail: detail(error),
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status(self)
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
            Self::App(
                AppError::TooManyAttempts { retry_after }
                | AppError::DailyTokensSpent { retry_after },
            ) => {
                response.insert_header((header::RETRY_AFTER, whole_seconds(*retry_after)));
            }
            Self::Busy(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            Self::TooManyReplies => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            Self::App(AppError::TooManyRepliesAtOnce) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            Self::BodyTimeout(_) => {
                // The rest of the body may still be on its way: do not wait for it.
                response.force_close();
            }
            Self::MethodNotAllowed(allow) => {
                response.insert_header((header::ALLOW, allow.clone()));
            }
            _ => {}
        }
        self.log();
        match self {
            Self::Invalid(issues) => response.json(ValidationErrorBody {
                detail: issues.clone(),
            }),
            _ => response.json(ErrorBody {
                detail: detail(self),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use memlayer_app::ports::ResponderError;

    use super::*;

    #[test]
    fn each_use_case_failure_has_its_status_and_detail() {
        let cases = [
            (AppError::EmailTaken, 409, "Email already registered"),
            (
                AppError::InvalidCredentials,
                401,
                "Incorrect email or password",
            ),
            (
                AppError::Unauthenticated,
                401,
                "Could not validate credentials",
            ),
            (AppError::ChatNotFound, 404, "Chat not found"),
            (
                AppError::NotChatOwner,
                403,
                "Not allowed to access this chat",
            ),
            (AppError::WrongPassword, 403, "Incorrect password"),
            (AppError::FolderNotFound, 404, "Folder not found"),
            (
                AppError::NotFolderOwner,
                403,
                "Not allowed to access this folder",
            ),
            (
                AppError::Unavailable("down".into()),
                503,
                "Service temporarily unavailable",
            ),
            (
                AppError::AssistantFailed(ResponderError::Broken("boom".into())),
                502,
                "The assistant could not answer; your message was saved",
            ),
            (
                AppError::Internal("bug".into()),
                500,
                "Internal Server Error",
            ),
        ];
        for (error, code, text) in cases {
            let error = ApiError::App(error);
            assert_eq!(
                (status(&error).as_u16(), detail(&error).as_str()),
                (code, text)
            );
        }
    }

    #[test]
    fn filing_a_chat_in_a_folder_one_cannot_use_is_invalid_at_the_folder_id() {
        match ApiError::from(AppError::FolderNotUsable) {
            ApiError::Invalid(issues) => assert_eq!(issues, [wire::folder_not_usable()]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_request_failure_has_its_status_and_detail() {
        let cases = [
            (ApiError::NotAuthenticated, 401, "Not authenticated"),
            (ApiError::NotFound, 404, "Not Found"),
            (
                ApiError::MethodNotAllowed(HeaderValue::from_static("GET")),
                405,
                "Method Not Allowed",
            ),
            (
                ApiError::PayloadTooLarge(1024),
                413,
                "Request body too large: the limit is 1024 bytes",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "Unsupported Media Type: send the body as application/json",
            ),
            (ApiError::BadRequest("eof".into()), 400, "Bad request: eof"),
            (
                ApiError::App(AppError::TooManyAttempts {
                    retry_after: std::time::Duration::from_millis(6_001),
                }),
                429,
                "Too many attempts: try again in 7 seconds",
            ),
            (
                ApiError::App(AppError::TooManyAttempts {
                    retry_after: std::time::Duration::ZERO,
                }),
                429,
                "Too many attempts: try again in 1 seconds",
            ),
            (
                ApiError::BodyTimeout(10),
                408,
                "Request Timeout: the body did not arrive within 10 seconds",
            ),
            (
                ApiError::Busy(2),
                503,
                "Too many logins at once: try again in 2 seconds",
            ),
        ];
        for (error, code, text) in cases {
            assert_eq!(
                (status(&error).as_u16(), detail(&error).as_str()),
                (code, text)
            );
        }
    }
}
