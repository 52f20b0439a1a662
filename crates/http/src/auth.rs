//! The bearer-token extractor. Authentication is an extractor, not a middleware, so its
//! 401 is an ordinary response that still passes through CORS.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use memlayer_app::AppError;
use memlayer_app::domain::Session;

use crate::error::ApiError;
use crate::state::ApiState;

/// The session a request's `Authorization: Bearer <token>` was issued for.
///
/// The token's signature and expiry are checked here (no I/O); the use cases check that
/// the session is still current (the account exists, its tokens were not revoked).
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Session);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

pub(crate) fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let token = bearer_token(req).ok_or(ApiError::NotAuthenticated)?;
    let state = req.app_data::<Data<ApiState>>().ok_or_else(|| {
        ApiError::App(AppError::Internal("the API state is not registered".into()))
    })?;
    Ok(Authenticated(state.app.authenticate(token)?))
}

/// The token of an `Authorization: Bearer <token>` header: the scheme is
/// case-insensitive (RFC 9110), and the header must be exactly a scheme and a token.
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_token_of(req.headers())
}

/// The token of the `Authorization: Bearer <token>` header among `headers`.
pub(crate) fn bearer_token_of(headers: &header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let mut parts = value.split_ascii_whitespace();
    let (scheme, token) = (parts.next()?, parts.next()?);
    (scheme.eq_ignore_ascii_case("bearer") && parts.next().is_none()).then_some(token)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn token_of(header: &str) -> Option<String> {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, header))
            .to_http_request();
        bearer_token(&req).map(str::to_owned)
    }

    #[test]
    fn the_token_follows_the_bearer_scheme_in_any_case() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer   abc  "] {
            assert_eq!(token_of(header).as_deref(), Some("abc"), "{header:?}");
        }
    }

    #[test]
    fn other_schemes_missing_tokens_and_extra_parts_have_no_token() {
        for header in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "abc",
            "Bearer a b",
            "",
            "Token abc",
        ] {
            assert_eq!(token_of(header), None, "{header:?}");
        }
    }

    #[test]
    fn a_request_without_the_header_has_no_token() {
        assert_eq!(
            bearer_token(&TestRequest::default().to_http_request()),
            None
        );
    }
}
