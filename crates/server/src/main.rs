//! `memlayer`: the MemLayer HTTP service. Configuration comes from the environment (and
//! a `.env` file); see the README's configuration table.
//!
//! `memlayer openapi` prints the OpenAPI document and exits (the typed client is
//! generated from it).

use std::process::ExitCode;

use memlayer_server::{Config, start};
use tracing_subscriber::filter::Targets;
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
            let error = &error as &dyn std::error::Error;
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
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        )
        .with(targets)
        .init();
}
