//! The MemLayer service: wires the adapters into the use cases and serves them over HTTP.
//!
//! [`start`] does everything `main` does but block: tests start the real service with it.

pub mod config;
mod dev_secret;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_http::{HttpService, KeepAlive};
use actix_service::{Service as _, apply_fn_factory, map_config};
use actix_web::App;
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use memlayer_adapters::{
    Backend, BcryptHasher, Database, DatabaseError, JwtTokens, MessageReceived, OpenAiResponder,
    OpenAiSetupError, PoolOptions, SystemClock,
};
use memlayer_app::ports::AssistantResponder;
use memlayer_app::{MemLayer, Ports};
use memlayer_http::{
    Api, ApiState, AuthRateLimit, BcryptGate, ConnectionsPerClient, body_deadline, cors,
    head_as_get, request_log,
};
use secrecy::ExposeSecret;
use thiserror::Error;

pub use config::{Config, JwtSecret};

/// Why the service could not start, or stopped on an error.
#[derive(Debug, Error)]
pub enum StartupError {
    /// The database could not be opened, reached or migrated.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// The development secret could not be read or written.
    #[error("cannot prepare the development JWT secret: {0}")]
    DevSecret(#[source] std::io::Error),
    /// The password hasher could not be set up.
    #[error("cannot set up bcrypt: {0}")]
    Hasher(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The assistant's HTTP client could not be set up.
    #[error(transparent)]
    Assistant(#[from] OpenAiSetupError),
    /// The HTTP server failed while serving.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// A started service.
pub struct Running {
    /// The HTTP server; await it to serve until it stops (SIGTERM, SIGINT, or its handle).
    pub server: Server,
    /// Where it listens (the real port when `PORT=0`).
    pub addr: SocketAddr,
    /// Which database it uses.
    pub backend: Backend,
}

/// Prepares the database (waiting for it, then migrating), wires the application, and
/// binds the HTTP server. Call it inside an actix system; it blocks while it prepares.
pub fn start(config: &Config) -> Result<Running, StartupError> {
    let options = PoolOptions {
        max_size: config.pool_size,
        checkout_timeout: config.db_checkout_timeout,
    };
    let db = Database::open(config.database_url.expose_secret(), &options)?;
    db.wait_until_reachable(config.db_startup_timeout)?;
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(?applied, "database migrations applied");
    }
    let secret = match &config.jwt_secret {
        JwtSecret::Configured(secret) => secret.clone(),
        JwtSecret::Development { beside } => {
            dev_secret::load_or_create(beside).map_err(StartupError::DevSecret)?
        }
    };
    let tokens = Arc::new(JwtTokens::new(
        secret.expose_secret().as_bytes(),
        chrono_duration(config.token_lifetime),
    ));
    let db = Arc::new(db);
    let backend = db.backend();
    let app = MemLayer::new(Ports {
        users: db.clone(),
        chats: db.clone(),
        messages: db.clone(),
        hasher: Arc::new(BcryptHasher::new(config.bcrypt_cost).map_err(StartupError::Hasher)?),
        token_issuer: tokens.clone(),
        token_verifier: tokens,
        clock: Arc::new(SystemClock),
        responder: responder(config)?,
    });
    // Built once, outside the per-worker factory: the pool, the keys, the OpenAPI document.
    let auth_rate_limit = NonZeroU32::new(config.auth_rate_limit_per_minute)
        .map(|per_minute| AuthRateLimit::per_minute(per_minute, config.trust_forwarded_for));
    let bcrypt = BcryptGate::new(
        config.bcrypt_concurrency,
        config.bcrypt_queue_length,
        config.bcrypt_queue_timeout,
    );
    let state = ApiState::new(app, db, bcrypt);
    let api = Api::new(
        state,
        auth_rate_limit,
        config.max_body_bytes,
        config.request_body_timeout,
    );
    let bind_error = |source| StartupError::Bind {
        addr: format!("{}:{}", config.host, config.port),
        source,
    };
    let listener = std::net::TcpListener::bind((config.host, config.port)).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let origins = config.cors_origins.clone();
    let (keep_alive, head_timeout) = (config.keep_alive, config.request_head_timeout);
    let per_client = (config.max_connections_per_client > 0)
        .then(|| ConnectionsPerClient::new(config.max_connections_per_client));
    // actix-web's `HttpServer`, spelled out: it offers no way to answer
    // `Expect: 100-continue` before the body is invited, which this needs.
    let builder = Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
        .workers(config.workers)
        .worker_max_blocking_threads(config.blocking_threads)
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        // Per worker; beyond it, connections wait in the kernel's listen queue instead
        // of taking file descriptors the process needs (the database, its files).
        .max_concurrent_connections(config.max_connections.div_ceil(config.workers).max(1))
        .listen("memlayer", listener, move || {
            let api = api.clone();
            let expect = api.expect_continue(&origins);
            let app = App::new()
                .configure(|cfg| api.configure(cfg))
                // Innermost: the body deadline sees every request its handler sees.
                .wrap(from_fn(body_deadline))
                .wrap(from_fn(head_as_get))
                // Errors inside are responses, so CORS adds its headers to every one of them.
                .wrap(cors(&origins))
                // Outermost, so that preflights, which CORS answers itself, are logged too.
                .wrap(from_fn(request_log));
            let shutdown = shutdown.clone();
            let http = HttpService::build()
                .keep_alive(if keep_alive.is_zero() {
                    KeepAlive::Disabled
                } else {
                    KeepAlive::Timeout(keep_alive)
                })
                .client_request_timeout(head_timeout)
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .local_addr(addr)
                .expect(actix_service::fn_service(move |request| {
                    let expect = expect.clone();
                    async move { expect.check(request).await }
                }))
                .finish(map_config(app, move |()| AppConfig::default()))
                .tcp();
            // Past its share, a client's connection is closed at once: the slots it
            // would hold stay free for everyone else.
            let per_client = per_client.clone();
            apply_fn_factory(http, move |stream: TcpStream, service| {
                let admitted = match &per_client {
                    None => Some(None),
                    Some(gate) => stream
                        .peer_addr()
                        .ok()
                        .and_then(|peer| gate.admit(peer.ip()))
                        .map(Some),
                };
                let served = admitted.is_some().then(|| service.call(stream));
                async move {
                    match served {
                        Some(served) => {
                            let result = served.await;
                            drop(admitted);
                            result
                        }
                        None => Ok(()),
                    }
                }
            })
        })
        .map_err(bind_error)?
        .run();
    Ok(Running {
        server,
        addr,
        backend,
    })
}

/// The configured model, or the "Message received" placeholder without one.
fn responder(config: &Config) -> Result<Arc<dyn AssistantResponder>, StartupError> {
    Ok(match &config.assistant {
        Some(settings) => {
            tracing::info!(
                model = settings.model,
                // Never credentials a URL may carry (user:key@, ?api-key=).
                url = format!(
                    "{}{}",
                    settings.base_url.origin().ascii_serialization(),
                    settings.base_url.path()
                ),
                context_messages = settings.context.messages,
                context_chars = settings.context.chars,
                "the assistant answers with a model"
            );
            Arc::new(OpenAiResponder::new(settings.clone())?)
        }
        None => {
            tracing::info!("no ASSISTANT_URL: the assistant answers \"Message received\"");
            Arc::new(MessageReceived)
        }
    })
}

fn chrono_duration(duration: std::time::Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}
