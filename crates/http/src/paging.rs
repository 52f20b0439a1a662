//! Keyset paging on the wire: the `limit` and `cursor` query parameters, the opaque
//! cursor text, and the `X-Next-Cursor` response header.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header::ContentType;
use actix_web::web;
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use chrono::DateTime;
use memlayer_app::AppError;
use memlayer_app::domain::{
    ChatCursor, ChatFilter, Cursor, DEFAULT_CHATS_PAGE, DEFAULT_MESSAGES_PAGE, Email, FolderId,
    Page, PageRequest, SearchOrder, SearchQuery,
};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::error::wire::{self, Source};

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
    reason = "documents the query; `ChatListParams` reads it, to report problems as FastAPI does"
)]
pub struct ChatListQuery {
    /// Most chats to return (default 200)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The previous page's X-Next-Cursor
    #[param(
        pattern = r"^p?[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// `true`: only the archived chats; else (default) only those not archived
    archived: Option<bool>,
    /// Only the chats in this folder of yours
    folder_id: Option<Uuid>,
}

/// What `GET /chats` asks for: which chats, how many, after which.
#[derive(Debug)]
pub struct ChatListParams {
    /// Which chats.
    pub filter: ChatFilter,
    /// Most chats to return.
    pub limit: u32,
    /// Where the previous page ended.
    pub after: Option<ChatCursor>,
}

impl FromRequest for ChatListParams {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mut params = query_params(req);
        ready((|| {
            let limit = page_request(params.remove("limit").as_deref(), None, DEFAULT_CHATS_PAGE)?;
            let after = match params.remove("cursor") {
                None => None,
                Some(text) => Some(
                    decode_chat_cursor(&text)
                        .ok_or_else(|| ApiError::Invalid(vec![wire::bad_cursor()]))?,
                ),
            };
            let archived = match params.remove("archived") {
                None => false,
                Some(text) => parse_bool(&text)
                    .ok_or_else(|| ApiError::Invalid(vec![wire::bad_bool("archived")]))?,
            };
            let folder = match params.remove("folder_id") {
                None => None,
                Some(text) => Some(FolderId::from_uuid(Uuid::parse_str(&text).map_err(
                    |error| {
                        ApiError::Invalid(vec![wire::bad_uuid_in(
                            Source::Query,
                            "folder_id",
                            &error.to_string(),
                        )])
                    },
                )?)),
            };
            Ok(Self {
                filter: ChatFilter { archived, folder },
                limit: limit.limit(),
                after,
            })
        })())
    }
}

/// A boolean query parameter as FastAPI (pydantic) reads one.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// The wire form of a position in the organised chat list: a pinned chat's is `p` and
/// its [`encode_cursor`], another's is its plain [`encode_cursor`] (so a cursor of a
/// user who never pins reads as it always did).
pub fn encode_chat_cursor(cursor: ChatCursor) -> String {
    let plain = encode_cursor(cursor.position);
    if cursor.pinned {
        format!("p{plain}")
    } else {
        plain
    }
}

/// Parses exactly what [`encode_chat_cursor`] writes.
pub fn decode_chat_cursor(text: &str) -> Option<ChatCursor> {
    let (pinned, plain) = match text.strip_prefix('p') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    decode_cursor(plain).map(|position| ChatCursor { pinned, position })
}

/// The query of `GET /search`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; `SearchParams` reads it, to report problems as FastAPI does"
)]
pub struct SearchListQuery {
    /// The words to find (plain text: punctuation and operators only separate words);
    /// not blank, at most 200 characters
    #[param(min_length = 1, max_length = 200, example = "lisbon trip")]
    q: String,
    /// Most hits to return (default 50)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The previous page's X-Next-Cursor (newest first only)
    #[param(
        pattern = r"^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// `newest` (default: newest first, paged) or `relevance` (best first, one page)
    #[param(pattern = "^(newest|relevance)$")]
    sort: Option<String>,
}

/// Hits per page of a search when the client does not say.
pub const DEFAULT_SEARCH_PAGE: u32 = 50;

/// What `GET /search` asks for.
#[derive(Debug)]
pub struct SearchParams {
    /// The words.
    pub query: SearchQuery,
    /// The order.
    pub order: SearchOrder,
    /// How many, after which.
    pub page: PageRequest,
}

impl FromRequest for SearchParams {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mut params = query_params(req);
        ready((|| {
            let query = match params.remove("q") {
                None => return Err(ApiError::Invalid(vec![wire::missing_query("q")])),
                Some(text) => SearchQuery::parse(&text)
                    .map_err(|error| ApiError::rejected(Source::Query, &error.into()))?,
            };
            let order = match params.remove("sort").as_deref() {
                None | Some("newest") => SearchOrder::Newest,
                Some("relevance") => SearchOrder::Relevance,
                Some(_) => return Err(ApiError::Invalid(vec![wire::bad_sort()])),
            };
            let cursor = params.remove("cursor");
            if order == SearchOrder::Relevance && cursor.is_some() {
                return Err(ApiError::Invalid(vec![wire::cursor_with_relevance()]));
            }
            let page = page_request(
                params.remove("limit").as_deref(),
                cursor.as_deref(),
                DEFAULT_SEARCH_PAGE,
            )?;
            Ok(Self { query, order, page })
        })())
    }
}

/// The query of `GET /admin/users`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; `AdminUserListParams` reads it, to report problems as FastAPI does"
)]
pub struct AdminUserListQuery {
    /// Only the accounts whose email holds this text (case aside), at most 254 characters
    #[param(max_length = 254, pattern = r"^[^\u0000]*$", example = "example.com")]
    q: Option<String>,
    /// Most accounts to return (default 50)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The previous page's X-Next-Cursor
    #[param(
        pattern = r"^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

/// Accounts per page of the admins' list when the client does not say.
pub const DEFAULT_ADMIN_USERS_PAGE: u32 = 50;

/// What `GET /admin/users` asks for.
#[derive(Debug)]
pub struct AdminUserListParams {
    /// The text the emails hold (none: every account).
    pub email_contains: Option<String>,
    /// How many, after which.
    pub page: PageRequest,
}

impl FromRequest for AdminUserListParams {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mut params = query_params(req);
        ready((|| {
            let email_contains = match params.remove("q") {
                Some(text) if text.chars().count() > 254 || text.contains('\0') => {
                    return Err(ApiError::Invalid(vec![wire::bad_email_search()]));
                }
                Some(text) => {
                    Some(Email::normalise_fragment(&text)).filter(|text| !text.is_empty())
                }
                None => None,
            };
            let page = page_request(
                params.remove("limit").as_deref(),
                params.remove("cursor").as_deref(),
                DEFAULT_ADMIN_USERS_PAGE,
            )?;
            Ok(Self {
                email_contains,
                page,
            })
        })())
    }
}

/// The query string's parameters; a repeated one keeps its last value. Form decoding
/// of a query string into strings does not fail.
fn query_params(req: &HttpRequest) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default()
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

/// 200 with one page of the organised chat list, and `X-Next-Cursor` when another page
/// follows.
pub(crate) fn chat_page_response<T, R: serde::Serialize>(
    page: Page<T, ChatCursor>,
    to_response: impl Fn(T) -> R,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(next) = page.next {
        response.insert_header((NEXT_CURSOR, encode_chat_cursor(next)));
    }
    json_list(response, page.items.into_iter().map(to_response).collect())
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
    json_list(response, page.items.into_iter().map(to_response).collect())
}

/// `items` as the JSON body of `response`, written once into a buffer sized for a typical
/// item rather than grown from a few bytes by doubling (a page of 1,000 messages is
/// several hundred kilobytes).
fn json_list<R: serde::Serialize>(
    mut response: HttpResponseBuilder,
    items: Vec<R>,
) -> HttpResponse {
    let mut body = Vec::with_capacity(items.len().saturating_mul(ITEM_BYTES) + 2);
    match serde_json::to_writer(&mut body, &items) {
        Ok(()) => response.content_type(ContentType::json()).body(body),
        Err(error) => ApiError::App(AppError::Internal(error.into())).error_response(),
    }
}

/// The room a listed item takes in JSON, about (a message with a short text).
const ITEM_BYTES: usize = 384;

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
    fn a_chat_cursor_says_its_group_and_an_unpinned_one_reads_as_before() {
        let position = Cursor {
            created_at: DateTime::from_timestamp_micros(1_795_685_415_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        for pinned in [true, false] {
            let cursor = ChatCursor { pinned, position };
            assert_eq!(
                decode_chat_cursor(&encode_chat_cursor(cursor)),
                Some(cursor)
            );
        }
        let unpinned = ChatCursor {
            pinned: false,
            position,
        };
        assert_eq!(encode_chat_cursor(unpinned), encode_cursor(position));
        assert_eq!(decode_chat_cursor("pp1_x"), None);
    }

    #[test]
    fn booleans_read_as_fastapi_reads_them() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
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
