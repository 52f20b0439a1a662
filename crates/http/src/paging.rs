//! Keyset paging on the wire: the `limit` and `cursor` query parameters, the opaque
//! cursor text, and the `X-Next-Cursor` response header.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::web;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use chrono::DateTime;
use memlayer_app::domain::{Cursor, DEFAULT_CHATS_PAGE, DEFAULT_MESSAGES_PAGE, Page, PageRequest};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::error::wire;

/// The response header that says where the next page starts.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// A list's query parameters: what they mean is documented by the implementing type's
/// [`IntoParams`]; [`Paged`] reads them.
pub trait ListQuery: IntoParams {
    /// Items per page when the client does not say.
    const DEFAULT_LIMIT: u32;
}

/// The query of `GET /chats`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; `Paged` reads it, to report problems as FastAPI does"
)]
pub struct ChatListQuery {
    /// Most chats to return (default 200)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The previous page's X-Next-Cursor
    #[param(
        pattern = r"^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

impl ListQuery for ChatListQuery {
    const DEFAULT_LIMIT: u32 = DEFAULT_CHATS_PAGE;
}

/// The query of `GET /chats/{chat_id}/messages`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; `Paged` reads it, to report problems as FastAPI does"
)]
pub struct MessageListQuery {
    /// Most messages to return (default 1000): the latest ones
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The X-Next-Cursor of the page after this one: reads the messages before it
    #[param(
        pattern = r"^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

impl ListQuery for MessageListQuery {
    const DEFAULT_LIMIT: u32 = DEFAULT_MESSAGES_PAGE;
}

/// The query of `GET /chats/{chat_id}/tree`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; `Paged` reads it, to report problems as FastAPI does"
)]
pub struct TreeQuery {
    /// Most messages to return (default 1000): the oldest ones
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The X-Next-Cursor of the page before this one: reads the messages after it
    #[param(
        pattern = r"^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

impl ListQuery for TreeQuery {
    const DEFAULT_LIMIT: u32 = DEFAULT_MESSAGES_PAGE;
}

/// The page a list request asks for, read from the query parameters of `Q`. Other
/// parameters are ignored, as FastAPI does; a repeated one keeps its last value.
#[derive(Debug)]
pub struct Paged<Q>(pub PageRequest, pub PhantomData<Q>);

impl<Q: ListQuery> FromRequest for Paged<Q> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Form decoding of a query string into strings does not fail.
        let mut params = web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
        let page = page_request(
            params.remove("limit").as_deref(),
            params.remove("cursor").as_deref(),
            Q::DEFAULT_LIMIT,
        );
        ready(page.map(|page| Self(page, PhantomData)))
    }
}

/// Reads the `limit` and `cursor` parameters; a missing limit is `default`.
fn page_request(
    limit: Option<&str>,
    cursor: Option<&str>,
    default: u32,
) -> Result<PageRequest, ApiError> {
    let invalid = |issue| ApiError::Invalid(vec![issue]);
    let limit = match limit {
        None => default,
        // Digits only: `u32::from_str` would also take `+5`.
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text
            .parse()
            .map_err(|_overflow| invalid(wire::bad_limit()))?,
        Some(_) => return Err(invalid(wire::bad_limit())),
    };
    let page = PageRequest::new(limit, None).map_err(|_out_of_range| invalid(wire::bad_limit()))?;
    match cursor {
        None => Ok(page),
        Some(text) => decode_cursor(text)
            .map(|after| page.starting_after(after))
            .ok_or_else(|| invalid(wire::bad_cursor())),
    }
}

/// The wire form of a cursor: `<microseconds since the epoch>_<uuid>`, opaque to clients.
pub fn encode_cursor(cursor: Cursor) -> String {
    format!("{}_{}", cursor.created_at.timestamp_micros(), cursor.id)
}

/// Parses exactly what [`encode_cursor`] writes (digits, `_`, a hyphenated UUID);
/// `None` for anything else.
pub fn decode_cursor(text: &str) -> Option<Cursor> {
    let (micros, id) = text.split_once('_')?;
    let digits_only =
        !micros.is_empty() && micros.len() <= 16 && micros.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || id.len() != 36 {
        return None;
    }
    Some(Cursor {
        created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id: Uuid::try_parse(id).ok()?,
    })
}

/// 200 with one page of a list, and `X-Next-Cursor` when another page follows.
pub(crate) fn page_response<T, R: serde::Serialize>(
    page: Page<T>,
    to_response: impl Fn(T) -> R,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(next) = page.next {
        response.insert_header((NEXT_CURSOR, encode_cursor(next)));
    }
    response.json(page.items.into_iter().map(to_response).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::wire::ValidationIssue;

    fn issues(result: Result<PageRequest, ApiError>) -> Vec<ValidationIssue> {
        match result {
            Err(ApiError::Invalid(issues)) => issues,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cursor_round_trips_through_its_text() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_795_685_415_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode_cursor(&encode_cursor(cursor)), Some(cursor));
    }

    #[test]
    fn text_that_is_not_a_cursor_is_refused() {
        for text in [
            "",
            "abc",
            "12_",
            "_0194f4c2-0000-7000-8000-000000000000",
            "x_0194f4c2-0000-7000-8000-000000000000",
            "99999999999999999999_0194f4c2-0000-7000-8000-000000000000",
        ] {
            assert_eq!(decode_cursor(text), None, "{text:?}");
        }
    }

    #[test]
    fn without_parameters_a_page_is_the_default_size_from_the_start() {
        assert_eq!(
            page_request(None, None, 200).unwrap(),
            PageRequest::new(200, None).unwrap()
        );
    }

    #[test]
    fn a_limit_must_be_a_whole_number_between_one_and_the_maximum() {
        assert_eq!(page_request(Some("1000"), None, 5).unwrap().limit(), 1000);
        for bad in [
            "0",
            "1001",
            "-1",
            "+5",
            " 5",
            "ten",
            "",
            "1.5",
            "99999999999",
        ] {
            assert_eq!(
                issues(page_request(Some(bad), None, 5)),
                [wire::bad_limit()],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_malformed_cursor_is_refused_in_the_query() {
        assert_eq!(
            issues(page_request(None, Some("nope"), 5)),
            [wire::bad_cursor()]
        );
    }

    #[test]
    fn a_bad_limit_is_reported_before_a_bad_cursor() {
        assert_eq!(
            issues(page_request(Some("0"), Some("nope"), 5)),
            [wire::bad_limit()]
        );
    }
}
