//! The FastAPI wire shapes of a failure: `{"detail": "..."}`, or for invalid input (422)
//! `{"detail": [{"loc", "msg", "type"}]}`, and the words of each invalid-input issue.
//! Which failure gets which status, headers and `detail` is the parent module's
//! business. The tests below pin the strings.

use memlayer_app::domain::{Field, MAX_PAGE_SIZE, Problem, ValidationError, ValidationErrors};
use serde::Serialize;
use utoipa::ToSchema;

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
    /// A request header.
    Header,
}

impl Source {
    fn loc(self) -> LocItem {
        LocItem::from(match self {
            Self::Body => "body",
            Self::Query => "query",
            Self::Path => "path",
            Self::Header => "header",
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
        Field::Query => "q",
        Field::FolderName => "name",
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
    bad_uuid_in(Source::Path, name, reason)
}

/// A parameter from `source` that is not a UUID; `reason` is the parser's explanation.
pub fn bad_uuid_in(source: Source, name: &str, reason: &str) -> ValidationIssue {
    ValidationIssue::new(
        vec![source.loc(), LocItem::from(name)],
        format!("Input should be a valid UUID, {reason}"),
        "uuid_parsing",
    )
}

/// A `message_id` that names the assistant's message where a user's is needed.
pub fn not_a_user_message() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Path.loc(), LocItem::from("message_id")],
        "Only a user's message can be edited",
        "value_error",
    )
}

/// A resume cursor (`name`, from `source`) that is not a whole number ≥ 0.
pub fn not_a_cursor(source: Source, name: &str) -> ValidationIssue {
    ValidationIssue::new(
        vec![source.loc(), LocItem::from(name)],
        "Input should be a valid integer, at least 0",
        "int_parsing",
    )
}

/// A reply asked for (to resume or stop) on a user's message.
pub fn not_a_reply() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Path.loc(), LocItem::from("message_id")],
        "Only an assistant's reply can be resumed or stopped",
        "value_error",
    )
}

/// A required query parameter that is absent.
pub fn missing_query(name: &str) -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Query.loc(), LocItem::from(name)],
        "Field required",
        "missing",
    )
}

/// A query parameter that is not a boolean.
pub fn bad_bool(name: &str) -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Query.loc(), LocItem::from(name)],
        "Input should be a valid boolean, unable to interpret input",
        "bool_parsing",
    )
}

/// A `q` of the admins' account list longer than an email may be, or with a NUL.
pub fn bad_email_search() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Query.loc(), LocItem::from("q")],
        "String should have at most 254 characters and no NUL character",
        "value_error",
    )
}

/// A `sort` query parameter other than the orders a search has.
pub fn bad_sort() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Query.loc(), LocItem::from("sort")],
        "Input should be 'newest' or 'relevance'",
        "enum",
    )
}

/// A `cursor` with `sort=relevance`, whose results are one page.
pub fn cursor_with_relevance() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Query.loc(), LocItem::from("cursor")],
        "Results by relevance are one page: there is no cursor",
        "value_error",
    )
}

/// A chat to be filed in a folder that does not exist or is someone else's.
pub fn folder_not_usable() -> ValidationIssue {
    ValidationIssue::new(
        vec![Source::Body.loc(), LocItem::from("folder_id")],
        "Value error, no folder of yours has this id",
        "value_error",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn issue_of(field: Field, problem: Problem) -> (String, String) {
        let issue = domain_issue(Source::Body, &ValidationError::new(field, problem));
        (issue.msg, issue.kind)
    }

    fn pair(msg: &str, kind: &str) -> (String, String) {
        (msg.to_owned(), kind.to_owned())
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
