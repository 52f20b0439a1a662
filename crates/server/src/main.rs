//! `memlayer`: the MemLayer HTTP service. Configuration comes from the environment (and
//! a `.env` file); see the README's configuration table.
//!
//! `memlayer openapi` prints the OpenAPI document and exits (the typed client is
//! generated from it).

use std::process::ExitCode;

use memlayer_server::{Config, start};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        return match memlayer_http::openapi_json() {
            Ok(document) => {
                println!("{document}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot write the OpenAPI document: {error}");
                ExitCode::FAILURE
            }
        };
    }
    // A missing .env is normal; a malformed one is reported once logging is up.
    let dotenv = dotenvy::dotenv();
    let config = Config::from_env();
    init_logging(
        config
            .as_ref()
            .map_or("info", |config| config.log_filter.as_str()),
    );
    if let Err(error) = dotenv
        && !error.not_found()
    {
        tracing::warn!(%error, "ignoring a malformed .env file");
    }
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };

    let served = actix_web::rt::System::new().block_on(async {
        let running = start(&config)?;
        tracing::info!(
            address = %running.addr,
            backend = ?running.backend,
            cors_origins = ?config.cors_origins,
            "MemLayer is ready: API on http://{}/ , Swagger UI on http://{}/docs",
            running.addr,
            running.addr,
        );
        running
            .server
            .await
            .map_err(|source| memlayer_server::StartupError::Bind {
                addr: running.addr.to_string(),
                source,
            })
    });
    match served {
        Ok(()) => {
            tracing::info!("MemLayer stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let error: &dyn std::error::Error = &error;
            tracing::error!(error, "MemLayer stopped on an error");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let targets: Targets = filter
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_filter(targets.with_target(CONNECTION_ERRORS, LevelFilter::OFF)),
        )
        .with(DemoteConnectionErrors)
        .init();
}

/// Where actix-http reports a connection's protocol errors: a malformed request line or
/// header, a connection reset. It reports them at ERROR, so any client could fill the
/// log at the level that pages people; they are the client's problem, not ours.
const CONNECTION_ERRORS: &str = "actix_http::h1::dispatcher";

/// Logs actix-http's connection errors again at DEBUG (under `memlayer::connection`),
/// while the formatting layer drops the ERROR originals.
struct DemoteConnectionErrors;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DemoteConnectionErrors {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == CONNECTION_ERRORS {
            let mut message = Message(String::new());
            event.record(&mut message);
            tracing::debug!(target: "memlayer::connection", "{}", message.0);
        }
    }
}

/// The `message` field of an event.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
