//! MemLayer's HTTP API on actix-web.
//!
//! [`configure`] registers every route, the JSON error handling and Swagger UI on an
//! actix `App`; [`cors`] builds the CORS middleware, to be wrapped outermost;
//! [`request_log`] logs one line per request.

mod auth;
mod body;
mod dto;
mod error;
mod logging;
mod openapi;
mod routes;
mod state;
mod stream;
mod throttle;

use actix_cors::Cors;
use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, Data, PayloadConfig};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use body::BodyLimit;
use error::ApiError;
use openapi::ApiDoc;

pub use body::DEFAULT_BODY_LIMIT;
pub use logging::request_log;
pub use state::ApiState;
pub use throttle::AuthRateLimit;
pub use tokio::sync::Semaphore;

use routes::{accounts, chats, health, messages, resource};

/// Everything the routes need, built once and shared by every worker.
#[derive(Clone)]
pub struct Api {
    state: Data<ApiState>,
    openapi: utoipa::openapi::OpenApi,
    body_limit: usize,
}

impl Api {
    /// The API over `state`, accepting request bodies up to `body_limit` bytes.
    pub fn new(state: ApiState, body_limit: usize) -> Self {
        Self {
            state: Data::new(state),
            openapi: ApiDoc::openapi(),
            body_limit,
        }
    }

    /// Registers the routes, the JSON 404 for unknown paths and Swagger UI; for
    /// `App::configure`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.state.clone())
            .app_data(PayloadConfig::new(self.body_limit))
            .app_data(BodyLimit(self.body_limit))
            .service(resource("/auth/register", "POST").route(web::post().to(accounts::register)))
            .service(resource("/auth/login", "POST").route(web::post().to(accounts::login)))
            .service(resource("/auth/me", "GET").route(web::get().to(accounts::me)))
            .service(
                resource("/chats", "GET, POST")
                    .route(web::get().to(chats::list))
                    .route(web::post().to(chats::create)),
            )
            // One scope for everything under a chat: the router tests its dynamic prefix
            // once, then plain strings.
            .service(
                web::scope("/chats/{chat_id}")
                    .service(
                        resource("", "GET, PATCH, DELETE")
                            .route(web::get().to(chats::get))
                            .route(web::patch().to(chats::rename))
                            .route(web::delete().to(chats::delete)),
                    )
                    .service(
                        resource("/messages", "GET, POST")
                            .route(web::get().to(messages::list))
                            .route(web::post().to(messages::post)),
                    ),
            )
            .service(resource("/health", "GET").route(web::get().to(health::live)))
            .service(resource("/health/ready", "GET").route(web::get().to(health::ready)))
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
                        Err::<HttpResponse, _>(ApiError::MethodNotAllowed("GET"))
                    })),
            )
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", self.openapi.clone()))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NotFound)
            }));
    }
}

/// The OpenAPI document, pretty-printed (what `/openapi.json` serves).
pub fn openapi_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json()
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
            header::HeaderName::from_static(routes::NEXT_CURSOR),
        ])
        .supports_credentials()
        .max_age(3600)
}
