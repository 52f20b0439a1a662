//! `/search`: finding the user's messages and chat titles by their words.

use actix_web::HttpResponse;
use actix_web::web::Data;

use crate::auth::Authenticated;
use crate::blocking::blocking;
use crate::dto::SearchHitResponse;
use crate::error::ApiError;
use crate::error::wire::{ErrorBody, ValidationErrorBody};
use crate::paging::{SearchListQuery, SearchParams, page_response};
use crate::state::ApiState;

/// Search my chats
///
/// The user's own messages (in every chat, archived ones too) and chat titles holding
/// every word of `q`, case and accents aside; each word also matches as the start of a
/// longer one. `q` is plain words: punctuation and operators only separate them. Newest
/// first, paged with `cursor` and `X-Next-Cursor` like the lists; or with
/// `sort=relevance` the best matches first, one page (no cursor). Each hit carries a
/// plain-text `snippet` and the `[start, end)` character offsets of the matches in it.
#[utoipa::path(
    get, path = "/search", tag = "search", operation_id = "search",
    security(("bearer" = [])),
    params(SearchListQuery),
    responses(
        (status = 200, description = "The hits, newest (or best) first", body = Vec<SearchHitResponse>,
            headers(("X-Next-Cursor" = String, description = "Present when more hits follow (newest first): pass it as `cursor`"))),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "Missing, blank or too long q; invalid limit, cursor or sort", body = ValidationErrorBody),
        (status = 503, description = "Database unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn search(
    state: Data<ApiState>,
    Authenticated(user): Authenticated,
    params: SearchParams,
) -> Result<HttpResponse, ApiError> {
    let SearchParams { query, order, page } = params;
    let page = blocking(&state, move |app| app.search(user, &query, order, page)).await?;
    Ok(page_response(page, SearchHitResponse::from))
}
