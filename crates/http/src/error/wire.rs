//! The FastAPI wire format, in one place: every failure's status, headers and JSON body
//! (`{"detail": "..."}`, or for invalid input (422) `{"detail": [{"loc", "msg", "type"}]}`),
//! and every word of them. The domain and the use cases name what went wrong in their
//! own words; this module alone decides what a client reads, so rewording an internal
//! error never changes the API. The tests below pin the strings.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use memlayer_app::AppError;
use memlayer_app::domain::{Field, MAX_PAGE_SIZE, Problem, ValidationError, ValidationErrors};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// An error: `detail` says what went wrong, for a human.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    #[schema(example = "Chat not found")]
    pub detail: String,
}

/// Invalid input (422): one entry per problem, as FastAPI reports them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    /// The problems.
    pub detail: Vec<ValidationIssue>,
}

/// One problem with the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ValidationIssue {
    /// Where: `["body", "email"]`, `["path", "chat_id"]`, `["body", 17]` (a byte offset).
    pub loc: Vec<LocItem>,
    /// What is wrong, for a human.
    pub msg: String,
    /// The kind of problem, for a program: `missing`, `string_too_short`,
    /// `json_invalid`, `uuid_parsing`, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// A step of a location: a field name or an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    /// A field or section name.
    Name(String),
    /// An array index or a byte offset.
    Index(u64),
}

impl From<&str> for LocItem {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl ValidationIssue {
    fn new(loc: Vec<LocItem>, msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// The part of a request an input came from: the first step of its `loc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The JSON body.
    Body,
    /// The query string.
    Query,
    /// The path.
    Path,
}

impl Source {
    fn loc(self) -> LocItem {
        LocItem::from(match self {
            Self::Body => "body",
            Self::Query => "query",
            Self::Path => "path",
        })
    }
}

/// The name a client knows a domain field by.
fn field_name(field: Field) -> &'static str {
    match field {
        Field::Email => "email",
        Field::Password => "password",
        Field::Title => "title",
        Field::Content => "content",
    }
}

/// A broken domain rule, as pydantic would report it, located at its field's name.
pub fn domain_issue(source: Source, error: &ValidationError) -> ValidationIssue {
    domain_issue_at(source, field_name(error.field), error)
}

/// A broken domain rule, as pydantic would report it, located at the request field
/// `name`.
pub fn domain_issue_at(source: Source, name: &str, error: &ValidationError) -> ValidationIssue {
    let (msg, kind) = match (error.field, error.problem) {
        (Field::Email, Problem::TooManyChars { max }) => (
            format!("value is not a valid email address: it is longer than {max} characters"),
            "string_too_long",
        ),
        (_, Problem::NotAnEmail) => (
            "value is not a valid email address: expected the form name@example.com".to_owned(),
            "value_error",
        ),
        (_, Problem::InvisibleCharacter) => (
            "value is not a valid email address: it contains an invisible or text-direction \
             control character"
                .to_owned(),
            "value_error",
        ),
        (_, Problem::ContainsNul) => (
            "must not contain the NUL character (\\u0000)".to_owned(),
            "value_error",
        ),
        (_, Problem::Blank) => ("String should not be blank".to_owned(), "string_too_short"),
        (_, Problem::TooFewChars { min }) => (
            format!("String should have at least {min} characters"),
            "string_too_short",
        ),
        (_, Problem::TooManyChars { max }) => (
            format!("String should have at most {max} characters"),
            "string_too_long",
        ),
        (Field::Password, Problem::TooManyBytes { max }) => (
            format!("String should have at most {max} bytes (bcrypt's limit)"),
            "string_too_long",
        ),
        (_, Problem::TooManyBytes { max }) => (
            format!("String should have at most {max} bytes"),
            "string_too_long",
        ),
    };
    let loc = vec![source.loc(), LocItem::from(name)];
    ValidationIssue::new(loc, msg, kind)
}

/// Every broken domain rule of one input.
pub fn domain_issues(source: Source, errors: &ValidationErrors) -> Vec<ValidationIssue> {
    errors.0.iter().map(|e| domain_issue(source, e)).collect()
}

/// A `limit` query parameter that is not a whole number from 1 to the page maximum.
pub fn bad_limit() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Query.loc(), LocItem::from("limit")],
        format!("Input should be a whole number from 1 to {MAX_PAGE_SIZE}"),
        "value_error",
    )
}

/// A `cursor` query parameter that no `X-Next-Cursor` could have held.
pub fn bad_cursor() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Query.loc(), LocItem::from("cursor")],
        "Input should be a cursor from X-Next-Cursor",
        "value_error",
    )
}

/// A path parameter that is not a UUID; `reason` is the parser's explanation.
pub fn bad_uuid(name: &str, reason: &str) -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Path.loc(), LocItem::from(name)],
        format!("Input should be a valid UUID, {reason}"),
        "uuid_parsing",
    )
}

/// A body that is JSON but not an object.
pub fn not_an_object() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Body.loc()],
        "Input should be a valid dictionary or object to extract fields from",
        "model_attributes_type",
    )
}

/// A body that is not JSON at all; `column` is where the parser stopped.
pub fn json_invalid(column: usize, reason: &impl std::fmt::Display) -> ValidationIssue {
    let column = u64::try_from(column).unwrap_or(u64::MAX);
    ValidationIssue::new(
        vec![Source::Body.loc(), LocItem::Index(column)],
        format!("JSON decode error: {reason}"),
        "json_invalid",
    )
}

/// What was wrong with a body's well-formed JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem<'a> {
    /// A required field is absent; its name.
    Missing(&'a str),
    /// A field the body type does not have.
    Unknown,
    /// A value that should be a string.
    NotAString,
    /// Anything else, in the deserialiser's words.
    Other(&'a str),
}

/// A problem at `path` (below `body`) of a body's JSON.
pub fn body_issue(mut path: Vec<LocItem>, problem: BodyProblem<'_>) -> ValidationIssue {
    let (msg, kind) = match problem {
        BodyProblem::Missing(field) => {
            path.push(LocItem::from(field));
            ("Field required", "missing")
        }
        BodyProblem::Unknown => ("Extra inputs are not permitted", "extra_forbidden"),
        BodyProblem::NotAString => ("Input should be a valid string", "string_type"),
        BodyProblem::Other(message) => (message, "value_error"),
    };
    let mut loc = vec![Source::Body.loc()];
    loc.extend(path);
    ValidationIssue::new(loc, msg, kind)
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
            AppError::EmailTaken => StatusCode::CONFLICT,
            AppError::InvalidCredentials | AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::ChatNotFound => StatusCode::NOT_FOUND,
            AppError::NotChatOwner | AppError::WrongPassword => StatusCode::FORBIDDEN,
            AppError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
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
        ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The `detail` text of every failure but invalid input.
pub(crate) fn detail(error: &ApiError) -> String {
    let text = match error {
        ApiError::App(error) => match error {
            AppError::EmailTaken => "Email already registered",
            AppError::InvalidCredentials => "Incorrect email or password",
            AppError::WrongPassword => "Incorrect password",
            AppError::Unauthenticated => "Could not validate credentials",
            AppError::ChatNotFound => "Chat not found",
            AppError::NotChatOwner => "Not allowed to access this chat",
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
    };
    text.to_owned()
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
            Self::App(AppError::TooManyAttempts { retry_after }) => {
                response.insert_header((header::RETRY_AFTER, whole_seconds(*retry_after)));
            }
            Self::Busy(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
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

    fn issue_of(field: Field, problem: Problem) -> (String, String) {
        let issue = domain_issue(Source::Body, &ValidationError::new(field, problem));
        (issue.msg, issue.kind)
    }

    fn pair(msg: &str, kind: &str) -> (String, String) {
        (msg.to_owned(), kind.to_owned())
    }

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

    #[test]
    fn broken_domain_rules_read_as_pydantic_reports_them() {
        assert_eq!(
            issue_of(Field::Email, Problem::NotAnEmail),
            pair(
                "value is not a valid email address: expected the form name@example.com",
                "value_error"
            )
        );
        assert_eq!(
            issue_of(Field::Email, Problem::TooManyChars { max: 254 }),
            pair(
                "value is not a valid email address: it is longer than 254 characters",
                "string_too_long"
            )
        );
        assert_eq!(
            issue_of(Field::Password, Problem::TooFewChars { min: 8 }),
            pair(
                "String should have at least 8 characters",
                "string_too_short"
            )
        );
        assert_eq!(
            issue_of(Field::Password, Problem::TooManyBytes { max: 72 }),
            pair(
                "String should have at most 72 bytes (bcrypt's limit)",
                "string_too_long"
            )
        );
        assert_eq!(
            issue_of(Field::Title, Problem::TooManyChars { max: 200 }),
            pair(
                "String should have at most 200 characters",
                "string_too_long"
            )
        );
        assert_eq!(
            issue_of(Field::Content, Problem::Blank),
            pair("String should not be blank", "string_too_short")
        );
        assert_eq!(
            issue_of(Field::Title, Problem::ContainsNul),
            pair(
                "must not contain the NUL character (\\u0000)",
                "value_error"
            )
        );
    }

    #[test]
    fn a_domain_issue_is_located_by_source_and_field_name() {
        let error = ValidationError::new(Field::Content, Problem::Blank);
        assert_eq!(
            domain_issue(Source::Body, &error).loc,
            [LocItem::from("body"), LocItem::from("content")]
        );
        let json = serde_json::to_value(ValidationErrorBody {
            detail: vec![bad_limit(), bad_uuid("chat_id", "invalid length")],
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"detail": [
                {"loc": ["query", "limit"], "msg": "Input should be a whole number from 1 to 1000", "type": "value_error"},
                {"loc": ["path", "chat_id"], "msg": "Input should be a valid UUID, invalid length", "type": "uuid_parsing"},
            ]})
        );
    }

    #[test]
    fn body_problems_read_as_fastapi_reports_them() {
        assert_eq!(
            body_issue(vec![], BodyProblem::Missing("email")),
            ValidationIssue::new(
                vec![LocItem::from("body"), LocItem::from("email")],
                "Field required",
                "missing"
            )
        );
        assert_eq!(
            body_issue(vec![LocItem::from("x")], BodyProblem::Unknown).kind,
            "extra_forbidden"
        );
        assert_eq!(
            body_issue(vec![], BodyProblem::NotAString).msg,
            "Input should be a valid string"
        );
        assert_eq!(
            bad_cursor().msg,
            "Input should be a cursor from X-Next-Cursor"
        );
        assert_eq!(not_an_object().kind, "model_attributes_type");
    }
}
