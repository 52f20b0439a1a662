//! MemLayer's HTTP API on actix-web.
//!
//! [`Api::configure`] registers every route, the JSON error handling and Swagger UI on an
//! actix `App`; [`cors`] builds the CORS middleware, to be wrapped outermost;
//! [`tracing_logger`] and [`observe`] give each request a span, an id, a log line
//! and its metrics; [`BcryptGate`] reports its queue.

mod auth;
mod blocking;
mod body;
mod connection;
mod dto;
mod error;
mod extract;
mod generation;
mod observe;
mod openapi;
mod paging;
mod per_client;
mod routes;
mod state;
mod stream;
mod throttle;

use actix_cors::Cors;
use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Data, PayloadConfig};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_swagger_ui::SwaggerUi;

use body::BodyLimit;
use error::ApiError;

pub use body::DEFAULT_BODY_LIMIT;
pub use connection::{BodyDeadline, ExpectContinue, body_deadline, head_as_get};
pub use generation::{Generations, Watch, watch};
pub use observe::{
    MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER, RequestSpan, UNMATCHED_ROUTE, observe, tracing_logger,
};
pub use per_client::{Admitted, ConnectionsPerClient};
pub use state::{ApiState, BcryptGate};
pub use throttle::AuthRateLimit;

/// Everything the routes need, built once and shared by every worker.
#[derive(Clone)]
pub struct Api {
    state: Data<ApiState>,
    auth_rate_limit: Option<Data<AuthRateLimit>>,
    openapi: utoipa::openapi::OpenApi,
    body_limit: usize,
    body_deadline: std::time::Duration,
}

impl Api {
    /// The API over `state`, limiting credential attempts per client with
    /// `auth_rate_limit` (`None`: no limit), accepting request bodies up to `body_limit`
    /// bytes that arrive within `body_deadline` of their request's head.
    pub fn new(
        state: ApiState,
        auth_rate_limit: Option<AuthRateLimit>,
        body_limit: usize,
        body_deadline: std::time::Duration,
    ) -> Self {
        Self {
            state: Data::new(state),
            auth_rate_limit: auth_rate_limit.map(Data::new),
            openapi: openapi::document(),
            body_limit,
            body_deadline,
        }
    }

    /// The answer to `Expect: 100-continue` (refusals before the body; see
    /// [`ExpectContinue`]), for an HTTP service's `expect`.
    pub fn expect_continue(&self, origins: &[String]) -> ExpectContinue {
        ExpectContinue::new(
            self.state.app.clone(),
            self.body_limit,
            origins,
            &self.openapi,
        )
    }

    /// The shared state (to run [`watch`] over it).
    pub fn state(&self) -> Data<ApiState> {
        self.state.clone()
    }

    /// Registers the routes, the JSON 404 for unknown paths and Swagger UI; for
    /// `App::configure`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.state.clone())
            .app_data(PayloadConfig::new(self.body_limit))
            .app_data(BodyLimit(self.body_limit))
            .app_data(BodyDeadline(self.body_deadline));
        if let Some(limit) = &self.auth_rate_limit {
            cfg.app_data(limit.clone());
        }
        // The document was collected from this same table once, in `Api::new`.
        routes::table(&mut ServiceConfig::new(cfg));
        cfg
            // Swagger UI lives under /docs/; /docs itself points there (a page for
            // people, so a redirect is harmless here).
            .service(
                web::resource("/docs")
                    .route(web::get().to(|| async {
                        HttpResponse::PermanentRedirect()
                            .insert_header((header::LOCATION, "/docs/"))
                            .finish()
                    }))
                    .default_service(web::to(|| async {
                        Err::<HttpResponse, _>(ApiError::MethodNotAllowed(
                            HeaderValue::from_static("GET"),
                        ))
                    })),
            )
            // The base layout: no "Explore" bar (this page shows one document).
            .service(
                SwaggerUi::new("/docs/{_:.*}")
                    .url("/openapi.json", self.openapi.clone())
                    .config(utoipa_swagger_ui::Config::default().use_base_layout()),
            )
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NotFound)
            }));
    }
}

/// The OpenAPI document, pretty-printed (what `/openapi.json` serves).
pub fn openapi_json() -> Result<String, serde_json::Error> {
    openapi::document().to_pretty_json()
}

/// CORS for the configured origins (exact `scheme://host:port`), on every response to
/// them, errors included: wrap it outermost (`.wrap()` last).
pub fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allow_any_method()
        .allow_any_header()
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            header::HeaderName::from_static(paging::NEXT_CURSOR),
            REQUEST_ID_HEADER,
        ])
        .supports_credentials()
        .max_age(3600)
}
