//! What an operator sees of each request: a `tracing` span with a request id (the
//! client's `X-Request-Id` if it is sane, a fresh UUID otherwise), one log line per
//! answer inside that span, the id echoed on every response, and the request metrics.
//!
//! Never headers or bodies in the log, so no token or password reaches it.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Span;
use tracing_actix_web::{RootSpanBuilder, TracingLogger};

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-chosen request id kept; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The route label of a request that matched no route (never the raw path: that would
/// let clients create a metric series per URL).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// This request's id, in its extensions.
#[derive(Clone, Debug)]
struct RequestId(String);

impl RequestId {
    fn of(request: &ServiceRequest) -> Self {
        Self(request_id(request.headers()))
    }
}

/// The request id for a request with these headers: the client's `X-Request-Id` if it
/// is 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters, otherwise a fresh UUID (v7:
/// ordered by time).
pub(crate) fn request_id(headers: &actix_web::http::header::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .map(HeaderValue::as_bytes)
        .filter(|id| {
            (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
                && id.iter().all(|byte| byte.is_ascii_graphic())
        })
        .and_then(|id| std::str::from_utf8(id).ok())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// The span of each request (for [`TracingLogger`]): `request{request_id method route}`.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = RequestId::of(request);
        let span = tracing::info_span!(
            "request",
            request_id = %id.0,
            method = %request.method(),
            route = %route(request),
        );
        request.extensions_mut().insert(id);
        span
    }

    fn on_request_end<B: MessageBody>(_: Span, _: &Result<ServiceResponse<B>, actix_web::Error>) {
        // `observe`, inside the span, logs the answer.
    }
}

/// The tracing middleware: wrap it outermost, with [`observe`] just inside it.
pub fn tracing_logger() -> TracingLogger<RequestSpan> {
    TracingLogger::new()
}

/// Logs each request as it comes (DEBUG) and as it is answered (INFO), echoes its id in
/// `X-Request-Id`, and counts and times it; for `middleware::from_fn`, just inside
/// [`tracing_logger`], outside CORS (so preflights and every error are seen too).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId::of(&req));
    let method = method_label(req.method());
    let path = req.path().to_owned();
    tracing::debug!(path, "request received");
    // The middlewares inside answer their errors as responses (CORS's included), so an
    // `Err` here would be actix's own; it is logged by the span's end.
    let mut response = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    // Read after routing: the template of the route that answered.
    let route = route_of(response.request());
    let elapsed = started.elapsed();
    tracing::info!(path, status, micros = elapsed.as_micros(), "answered");
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("memlayer_http_requests_total", &labels).increment(1);
    metrics::histogram!("memlayer_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    Ok(response)
}

/// The route template the request matches (`/chats/{chat_id}`), or [`UNMATCHED_ROUTE`].
fn route(request: &ServiceRequest) -> String {
    route_of(request.request())
}

fn route_of(request: &actix_web::HttpRequest) -> String {
    request
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned())
}

/// The method, or `OTHER` for one this API does not know (a bounded label).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
