//! The JSON body extractor: reads the body within the size limit, insists on a JSON
//! content type, and turns every deserialisation failure into a FastAPI-style 422 that
//! says which field is wrong (in [`crate::wire`]'s words).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::error::ApiError;
use crate::error::wire::{self, BodyProblem, LocItem};

/// The largest request body accepted, in bytes (larger is a 413). Registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The default body limit: room for the longest message (32,000 characters) even when
/// a client escapes every one as a UTF-16 surrogate pair (`\ud83d\ude00`, 12 bytes).
pub const DEFAULT_BODY_LIMIT: usize = 512 * 1024;

/// A JSON request body deserialised into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared_json = is_json(req);
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |limit| limit.0);
        let deadline = req
            .app_data::<crate::connection::BodyDeadline>()
            .map_or(0, |deadline| deadline.0.as_secs());
        // Reads within the `PayloadConfig` limit that `Api::configure` sets to `BodyLimit`.
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes
                .await
                .map_err(|error| match error.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
                    Some(PayloadError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
                        ApiError::BodyTimeout(deadline)
                    }
                    _ => ApiError::BadRequest(error.to_string()),
                })?;
            // An empty or `null` body is read as `{}`: optional bodies may be left out,
            // and for required ones every required field is reported missing.
            let json: &[u8] = if bytes.is_empty() || bytes.trim_ascii() == b"null" {
                b"{}"
            } else {
                &bytes
            };
            if !bytes.is_empty() && !declared_json {
                return Err(ApiError::UnsupportedMediaType);
            }
            parse(json).map(JsonBody)
        })
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialises `bytes`, locating any problem the way FastAPI does.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Bodies are objects. serde would also read a struct from an array; FastAPI refuses.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|error| not_json(&error))?;
        return Err(ApiError::Invalid(vec![wire::not_an_object()]));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| issue(&error))?;
    deserializer.end().map_err(|error| not_json(&error))?;
    Ok(value)
}

/// Not JSON at all: a syntax error, truncation, invalid UTF-8, nesting too deep, a
/// number out of range, trailing characters.
fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::Invalid(vec![wire::json_invalid(error.column(), error)])
}

fn issue(error: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = error.inner();
    if !inner.is_data() {
        return not_json(inner);
    }
    let path = error.path().iter().filter_map(|segment| match segment {
        Segment::Map { key } => Some(LocItem::Name(key.clone())),
        Segment::Seq { index } => Some(LocItem::Index(u64::try_from(*index).unwrap_or(u64::MAX))),
        Segment::Enum { variant } => Some(LocItem::Name(variant.clone())),
        Segment::Unknown => None,
    });
    let message = inner.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message);
    let problem = if let Some(field) = between(message, "missing field `", "`") {
        BodyProblem::Missing(field)
    } else if message.starts_with("unknown field `") {
        // The path already ends at the unknown field.
        BodyProblem::Unknown
    } else if message.ends_with("expected a string") {
        BodyProblem::NotAString
    } else {
        BodyProblem::Other(message)
    };
    ApiError::Invalid(vec![wire::body_issue(path.collect(), problem)])
}

/// The text between `start` and the next `end` in `text`, if `text` has `start`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(start)?;
    let (between, _) = rest.split_once(end)?;
    Some(between)
}
