//! The MemLayer service: wires the adapters into the use cases and serves them over HTTP.
//!
//! [`start`] does everything `main` does but block: tests start the real service with it.

pub mod config;
mod dev_secret;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive};
use actix_server::{GracefulShutdownSignal, ServerBuilder};
use actix_service::{Service as _, ServiceFactory, apply_fn_factory, map_config};
use actix_web::App;
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use memlayer_adapters::{
    Backend, BcryptHasher, Database, DatabaseError, FixedReply, JwtTokens, OpenAiResponder,
    OpenAiSetupError, PoolOptions, SystemClock,
};
use memlayer_app::ports::AssistantResponder;
use memlayer_app::{AttemptLimit, MemLayer, Ports};
use memlayer_http::{
    Api, ApiState, AuthRateLimit, BcryptGate, ConnectionsPerClient, Generations, Watch,
    body_deadline, cors, head_as_get, observe, tracing_logger,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

pub use config::{Config, JwtSecret};
use config::{DatabaseConfig, HttpConfig};

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
    /// An address (the API's, or `METRICS_ADDR`) could not be bound.
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
    /// Where it serves `/metrics`, if `METRICS_ADDR` is set (the real port when it
    /// ends in `:0`).
    pub metrics_addr: Option<SocketAddr>,
    /// Which database it uses.
    pub backend: Backend,
    /// The replies generating on it: the server's graceful shutdown drains them
    /// ([`Generations::drain`]); wait until they are [`Generations::settled`] once it
    /// stopped.
    pub generations: Arc<Generations>,
}

/// Prepares the database (waiting for it, then migrating), wires the application, and
/// binds the HTTP server. Call it inside an actix system; it blocks while it prepares.
pub fn start(config: &Config) -> Result<Running, StartupError> {
    let db = open_database(&config.database)?;
    let backend = db.backend();
    let generations = Generations::new(
        config.http.max_generations,
        usize::try_from(config.database.pool_size).unwrap_or(usize::MAX),
    );
    let api = build_api(config, db, generations.clone())?;
    let state = api.state();
    if backend == Backend::Sqlite {
        // One instance per file: whatever is still generating was left by the last run.
        match state.app().fail_orphaned_replies() {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(
                failed,
                "replies left generating by the last run were marked failed"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot mark the replies the last run left generating")
            }
        }
    }
    // On the actix system's arbiter: it runs until the system stops.
    actix_web::rt::spawn(memlayer_http::watch(
        state,
        Watch {
            silence: config.http.reply_silence,
        },
    ));
    let (server, addr) = http_server(&config.http, api, generations.clone())?;
    let (server, metrics_addr) = match config.logging.metrics_addr {
        Some(metrics_addr) => {
            let (server, bound) = metrics_listener(server, metrics_addr)?;
            (server, Some(bound))
        }
        None => (server, None),
    };
    Ok(Running {
        server: server.run(),
        addr,
        metrics_addr,
        backend,
        generations,
    })
}

/// Opens the database's pool, waits until the database answers (or refuses us for
/// good), and applies the pending migrations.
fn open_database(config: &DatabaseConfig) -> Result<Database, StartupError> {
    let options = PoolOptions {
        max_size: config.pool_size,
        checkout_timeout: config.checkout_timeout,
    };
    let db = Database::open(config.url.expose_secret(), &options)?;
    db.wait_until_reachable(config.startup_timeout)?;
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(?applied, "database migrations applied");
    }
    Ok(db)
}

/// The application and its HTTP state over `db`: the use cases with their adapters,
/// the token keys, the rate limit and the bcrypt gate. Built once, outside the
/// per-worker factory, which clones it.
fn build_api(
    config: &Config,
    db: Database,
    generations: Arc<Generations>,
) -> Result<Api, StartupError> {
    let tokens = tokens(config)?;
    let db = Arc::new(db);
    let clock = Arc::new(SystemClock);
    let hashing = &config.password_hashing;
    let app = build_app(config, db.clone(), tokens)?;
    // The budgets live in the database, so every instance on it spends from the same.
    let auth_rate_limit = NonZeroU32::new(config.auth.rate_limit_per_minute).map(|per_minute| {
        AuthRateLimit::new(
            AttemptLimit::per_minute(per_minute, db.clone(), clock),
            config.http.trust_forwarded_for,
        )
    });
    let bcrypt = BcryptGate::new(
        hashing.bcrypt_concurrency,
        hashing.bcrypt_queue_length,
        hashing.bcrypt_queue_timeout,
    );
    Ok(Api::new(
        ApiState::new(app, db, bcrypt, generations),
        auth_rate_limit,
        config.http.max_body_bytes,
        config.http.request_body_timeout,
    ))
}

/// The use cases over `db`, with the adapters and limits `config` gives.
fn build_app(
    config: &Config,
    db: Arc<Database>,
    tokens: Arc<JwtTokens>,
) -> Result<MemLayer, StartupError> {
    let hashing = &config.password_hashing;
    Ok(MemLayer::new(Ports {
        users: db.clone(),
        chats: db.clone(),
        messages: db.clone(),
        hasher: Arc::new(BcryptHasher::new(hashing.bcrypt_cost).map_err(StartupError::Hasher)?),
        token_issuer: tokens.clone(),
        token_verifier: tokens,
        clock: Arc::new(SystemClock),
        responder: responder(config)?,
        folders: db.clone(),
        search: db.clone(),
        replies: db.clone(),
    })
    .with_registration(config.auth.registration)
    .with_user_max_generations(config.http.user_max_generations)
    .with_user_tokens_per_day(config.http.user_tokens_per_day))
}

/// What `memlayer admin` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Makes an existing account an admin.
    Grant(String),
    /// Makes an admin a user again.
    Revoke(String),
    /// Makes a new admin account with this password.
    Create(String, String),
}

/// Why `memlayer admin` failed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The service's database or adapters could not be set up.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The email or the password was refused (as a registration would refuse it).
    #[error("{0}")]
    Invalid(String),
    /// The use case refused.
    #[error("{0}")]
    Refused(String),
}

/// Runs the operator's `memlayer admin` command on the configured database (migrating
/// it first, as the service would). What was done, for the operator.
pub fn admin(config: &Config, command: AdminCommand) -> Result<String, AdminError> {
    use memlayer_app::AdminNewAccount;
    use memlayer_app::domain::{AccountRole, Email, Password};

    let db = open_database(&config.database)?;
    let tokens = tokens(config)?;
    let app = build_app(config, Arc::new(db), tokens)?;
    let email = |text: &str| {
        Email::parse(text).map_err(|error| AdminError::Invalid(format!("invalid email: {error}")))
    };
    let refused = |error: memlayer_app::AppError| {
        AdminError::Refused(match error {
            memlayer_app::AppError::UserNotFound => "no account has this email".to_owned(),
            memlayer_app::AppError::EmailTaken => "an account has this email already".to_owned(),
            memlayer_app::AppError::LastAdmin => {
                "this is the last enabled admin: make another admin first".to_owned()
            }
            other => other.to_string(),
        })
    };
    match command {
        AdminCommand::Grant(address) => {
            let user = app
                .operator_set_role(&email(&address)?, AccountRole::Admin)
                .map_err(refused)?;
            Ok(format!("{} is an admin", user.email.as_str()))
        }
        AdminCommand::Revoke(address) => {
            let user = app
                .operator_set_role(&email(&address)?, AccountRole::User)
                .map_err(refused)?;
            Ok(format!("{} is a user", user.email.as_str()))
        }
        AdminCommand::Create(address, password) => {
            let password = Password::parse(&password)
                .map_err(|error| AdminError::Invalid(format!("invalid password: {error}")))?;
            let user = app
                .operator_create_admin(AdminNewAccount {
                    email: email(&address)?,
                    password,
                })
                .map_err(refused)?;
            Ok(format!("{} is a new admin", user.email.as_str()))
        }
    }
}

/// The access tokens' issuer and verifier, with the configured secret and lifetime.
fn tokens(config: &Config) -> Result<Arc<JwtTokens>, StartupError> {
    let secret = signing_secret(&config.auth.jwt_secret)?;
    Ok(Arc::new(JwtTokens::new(
        secret.expose_secret().as_bytes(),
        chrono_duration(config.auth.token_lifetime),
    )))
}

/// The configured token-signing secret, or the development one (made on first use).
fn signing_secret(jwt_secret: &JwtSecret) -> Result<SecretString, StartupError> {
    match jwt_secret {
        JwtSecret::Configured(secret) => Ok(secret.clone()),
        JwtSecret::Development { beside } => {
            dev_secret::load_or_create(beside).map_err(StartupError::DevSecret)
        }
    }
}

/// Binds the API's address and assembles the HTTP server around `api`: workers,
/// connection cap, deadlines, middleware, and the per-client cap on connections.
/// Returns the server, not running yet, and the address it listens on.
fn http_server(
    config: &HttpConfig,
    api: Api,
    generations: Arc<Generations>,
) -> Result<(ServerBuilder, SocketAddr), StartupError> {
    let bind_error = |source| StartupError::Bind {
        addr: format!("{}:{}", config.host, config.port),
        source,
    };
    let listener = std::net::TcpListener::bind((config.host, config.port)).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let origins = config.cors_origins.clone();
    let deadlines = Deadlines {
        keep_alive: config.keep_alive,
        head: config.request_head_timeout,
    };
    let per_client = (config.max_connections_per_client > 0)
        .then(|| ConnectionsPerClient::new(config.max_connections_per_client));
    // actix-web's `HttpServer`, spelled out: it offers no way to answer
    // `Expect: 100-continue` before the body is invited, which this needs.
    let builder = Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    // From the shutdown's start, replies get its timeout less a second to finish; then
    // they are stopped and stored, so their streams end with `done` before the workers'
    // own timeout closes the connections.
    let signal = shutdown.clone();
    let grace = config
        .shutdown_timeout
        .saturating_sub(Duration::from_secs(1));
    actix_web::rt::spawn(async move {
        signal.notified().await;
        generations.drain(grace).await;
    });
    let server = builder
        .workers(config.workers)
        .worker_max_blocking_threads(config.blocking_threads)
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        // Per worker; beyond it, connections wait in the kernel's listen queue instead
        // of taking file descriptors the process needs (the database, its files).
        .max_concurrent_connections(config.max_connections.div_ceil(config.workers).max(1))
        .listen("memlayer", listener, move || {
            let http = http_service(&api, &origins, deadlines, shutdown.clone(), addr);
            with_per_client_cap(http, per_client.clone())
        })
        .map_err(bind_error)?;
    Ok((server, addr))
}

/// How long a connection may idle between requests, and take to send a request's head.
#[derive(Clone, Copy)]
struct Deadlines {
    keep_alive: std::time::Duration,
    head: std::time::Duration,
}

/// One worker's HTTP/1 service: the API's routes inside their middleware, with the
/// connection deadlines, the early answer to `Expect: 100-continue`, and graceful
/// shutdown.
fn http_service(
    api: &Api,
    origins: &[String],
    deadlines: Deadlines,
    shutdown: GracefulShutdownSignal,
    addr: SocketAddr,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
+ use<> {
    let expect = api.expect_continue(origins);
    let app = App::new()
        .configure(|cfg| api.configure(cfg))
        // Innermost: the body deadline sees every request its handler sees.
        .wrap(from_fn(body_deadline))
        .wrap(from_fn(head_as_get))
        // Errors inside are responses, so CORS adds its headers to every one of them.
        .wrap(cors(origins))
        // Outside CORS, so that preflights, which CORS answers itself, get an id,
        // a log line and their metrics too; inside the span of the request.
        .wrap(from_fn(observe))
        .wrap(tracing_logger());
    HttpService::build()
        .keep_alive(if deadlines.keep_alive.is_zero() {
            KeepAlive::Disabled
        } else {
            KeepAlive::Timeout(deadlines.keep_alive)
        })
        .client_request_timeout(deadlines.head)
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
        .tcp()
}

/// `http`, behind the per-client cap: past its share, a client's connection is closed
/// at once, so the slots it would hold stay free for everyone else. `None`: no cap.
fn with_per_client_cap<S>(
    http: S,
    per_client: Option<ConnectionsPerClient>,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
where
    S: ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>,
{
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
}

/// Binds `addr` and adds to `server` a listener of its own serving the Prometheus
/// metrics (installing the recorder), so that the public port never exposes them.
/// Returns the server and the address bound.
fn metrics_listener(
    server: ServerBuilder,
    addr: SocketAddr,
) -> Result<(ServerBuilder, SocketAddr), StartupError> {
    let bind_error = |source| StartupError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let handle = prometheus();
    let server = server
        .listen("metrics", listener, move || {
            let handle = handle.clone();
            HttpService::build()
                .client_request_timeout(std::time::Duration::from_secs(5))
                .finish(actix_service::fn_service(
                    move |request: actix_http::Request| {
                        let handle = handle.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(metrics_response(&request, &handle))
                        }
                    },
                ))
                .tcp()
        })
        .map_err(|source| StartupError::Bind {
            addr: bound.to_string(),
            source,
        })?;
    Ok((server, bound))
}

/// Latency buckets, in seconds: from a cached read to a slow bcrypt under load.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process's Prometheus recorder, installed on first use (the `metrics` macros
/// record nothing until then, so without `METRICS_ADDR` they cost next to nothing).
fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let recorder = builder
                .set_buckets(&LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed: /metrics stays empty");
            }
            // Histograms keep their samples until drained: drain them even when no one
            // scrapes.
            let upkeep = handle.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// `GET /metrics` in Prometheus' text format; 404 for anything else.
fn metrics_response(
    request: &actix_http::Request,
    handle: &PrometheusHandle,
) -> actix_http::Response<String> {
    use actix_http::{Method, StatusCode, header};
    if request.path() != "/metrics" {
        return actix_http::Response::with_body(StatusCode::NOT_FOUND, "not found\n".to_owned());
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return actix_http::Response::with_body(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".to_owned(),
        );
    }
    let mut response = actix_http::Response::with_body(StatusCode::OK, handle.render());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The configured model, or the fixed reply ("Message received") without one.
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
            Arc::new(FixedReply)
        }
    })
}

fn chrono_duration(duration: std::time::Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}
