//! What a connection may cost the service: a deadline on reading a request's body, and
//! the refusals an `Expect: 100-continue` request gets before it is invited to send its
//! body.
//!
//! actix closes a connection that waits too long for a request head, and one idle
//! between requests; these add the body. A request whose body is late is answered 408
//! and its connection closed; a request answered before its body was read (a route that
//! takes none, a refusal) has its connection closed instead of drained, so a client
//! cannot hold one open by never finishing a body.

use std::cell::RefCell;
use std::future::Future as _;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage as _;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Serves HEAD on Swagger UI's pages and the OpenAPI document as GET (RFC 9110: HEAD
/// works wherever GET does). actix sends the head of the answer without its body, since
/// the connection saw a HEAD; the API's own routes take HEAD themselves. For
/// `middleware::from_fn`.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path();
    if req.method() == actix_web::http::Method::HEAD
        && (path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/"))
    {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// How long a request's body may take to arrive, from its head on. Registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Puts the body deadline on every request that has a body; for `middleware::from_fn`.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let deadline = req.app_data::<BodyDeadline>().copied();
    let (true, Some(BodyDeadline(deadline))) = (has_body, deadline) else {
        return next.call(req).await;
    };
    let received = Rc::new(RefCell::new(req.take_payload()));
    let timed = TimedPayload {
        received: received.clone(),
        sleep: Box::pin(tokio::time::sleep(deadline)),
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(timed),
    });
    let response = next.call(req).await?;
    // Keeps the connection's end of the body alive until the response is sent: actix
    // then closes a connection whose body was not read to the end, instead of draining
    // it for as long as the client cares to trickle.
    Ok(response.map_body(|_, body| {
        BoxBody::new(HoldingPayload {
            body,
            _received: received,
        })
    }))
}

/// The body as it arrives, failing with `TimedOut` once the deadline passes.
struct TimedPayload {
    received: Rc<RefCell<Payload>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for TimedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut *self.received.borrow_mut()).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A response body that keeps the request's payload alive until it is dropped.
struct HoldingPayload {
    body: BoxBody,
    _received: Rc<RefCell<Payload>>,
}

impl MessageBody for HoldingPayload {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// The answer to `Expect: 100-continue`, given before the body is sent: a body larger
/// than the limit is refused (413), and so is a request to a route that needs a token
/// without a valid one (401), so nobody is invited to upload what would be refused.
#[derive(Clone)]
pub struct ExpectContinue {
    app: memlayer_app::MemLayer,
    body_limit: usize,
    origins: Rc<[String]>,
    /// The paths (each also with a trailing slash) that take a body without a token.
    public_with_body: Rc<[String]>,
}

impl ExpectContinue {
    /// Refusals for the routes `document` describes: a route none of whose operations
    /// with a body asks for a token takes its body without one.
    pub(crate) fn new(
        app: memlayer_app::MemLayer,
        body_limit: usize,
        origins: &[String],
        document: &utoipa::openapi::OpenApi,
    ) -> Self {
        Self {
            app,
            body_limit,
            origins: origins.into(),
            public_with_body: public_with_body(document).into(),
        }
    }

    /// `Ok(request)`: send `100 Continue`; `Err`: this JSON error instead (with the
    /// CORS headers an allowed origin needs, since it is answered before the app).
    pub async fn check(
        &self,
        request: actix_http::Request,
    ) -> Result<actix_http::Request, actix_web::Error> {
        match self.refusal(request.head()) {
            None => Ok(request),
            Some(refusal) => {
                let mut response = actix_web::ResponseError::error_response(&refusal);
                // Answered before the app (and its request span) sees the request: give it
                // its id and its log line here.
                let id = crate::observe::request_id(request.head().headers());
                tracing::info!(
                    request_id = id,
                    method = %request.head().method,
                    path = request.path(),
                    status = response.status().as_u16(),
                    "answered before the body (Expect: 100-continue)"
                );
                if let Ok(id) = header::HeaderValue::from_str(&id) {
                    response
                        .headers_mut()
                        .insert(crate::observe::REQUEST_ID_HEADER, id);
                }
                let origin = request
                    .head()
                    .headers()
                    .get(header::ORIGIN)
                    .filter(|origin| {
                        self.origins
                            .iter()
                            .any(|o| o.as_bytes() == origin.as_bytes())
                    })
                    .cloned();
                if let Some(origin) = origin {
                    let headers = response.headers_mut();
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                    headers.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        header::HeaderValue::from_static("true"),
                    );
                    headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
                }
                // The body was never invited: do not wait for it on this connection.
                response
                    .head_mut()
                    .set_connection_type(actix_http::ConnectionType::Close);
                Err(actix_web::error::InternalError::from_response(refusal, response).into())
            }
        }
    }

    fn refusal(&self, head: &actix_web::dev::RequestHead) -> Option<crate::error::ApiError> {
        use crate::error::ApiError;
        let declared = head
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .and_then(|length| length.trim().parse::<u64>().ok());
        if declared
            .is_some_and(|length| length > u64::try_from(self.body_limit).unwrap_or(u64::MAX))
        {
            return Some(ApiError::PayloadTooLarge(self.body_limit));
        }
        if self
            .public_with_body
            .iter()
            .any(|path| path == head.uri.path())
        {
            return None;
        }
        match crate::auth::bearer_token_of(head.headers()) {
            None => Some(ApiError::NotAuthenticated),
            Some(token) => self.app.authenticate(token).err().map(ApiError::App),
        }
    }
}

/// The paths of `document` with an operation that takes a body and asks for no token,
/// each as written and with a trailing slash (the route table serves both).
fn public_with_body(document: &utoipa::openapi::OpenApi) -> Vec<String> {
    document
        .paths
        .paths
        .iter()
        .filter(|(_, item)| {
            [&item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
                .any(|operation| {
                    operation.request_body.is_some()
                        && operation
                            .security
                            .as_ref()
                            .is_none_or(|requirements| requirements.is_empty())
                })
        })
        .flat_map(|(path, _)| [path.clone(), format!("{path}/")])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routes_that_take_a_body_without_a_token_come_from_the_route_table() {
        let mut public = public_with_body(&crate::openapi::document());
        public.sort();

        assert_eq!(
            public,
            [
                "/auth/login",
                "/auth/login/",
                "/auth/register",
                "/auth/register/"
            ]
        );
    }
}
