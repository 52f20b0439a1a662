//! `memlayer`: the MemLayer HTTP service. Configuration comes from the environment (and
//! a `.env` file); see the README's configuration table.
//!
//! `memlayer openapi` prints the OpenAPI document and exits (the typed client is
//! generated from it); `memlayer admin …` manages admins on the configured database;
//! `memlayer --help` and `memlayer --version` print and exit.

use std::process::ExitCode;
use std::time::Duration;

use memlayer_server::config::LogFormat;
use memlayer_server::{Config, StartupError, start};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

const HELP: &str = "\
memlayer: the MemLayer HTTP API (accounts, chats, messages).

Usage:
  memlayer            serve (configured by environment variables and a .env file)
  memlayer openapi    print the OpenAPI document and exit
  memlayer admin ...  manage admins on the configured database (memlayer admin --help)
  memlayer --help     print this and exit
  memlayer --version  print the version and exit

With nothing set it serves http://127.0.0.1:8000/ over an embedded SQLite database
in data/. Settings (DATABASE_URL, JWT_SECRET, PORT, HOST, CORS_ORIGINS, RUST_LOG,
LOG_FORMAT, METRICS_ADDR, ...) are listed in the README's configuration table.
";

const ADMIN_HELP: &str = "\
memlayer admin: manage admins, on the database the service is configured with
(DATABASE_URL and the rest, from the environment and a .env file).

Usage:
  memlayer admin grant EMAIL     make the existing account EMAIL an admin
  memlayer admin revoke EMAIL    make the admin EMAIL a user again (refused for the
                                 last enabled admin)
  memlayer admin create EMAIL    make a new admin account; its password is read from
                                 standard input (one line), checked like a registration
  memlayer admin --help          print this and exit

Each prints what it did, or exits 1 with the reason (an unknown or taken email, a bad
password, the last admin).
";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("openapi") => {}
        Some("admin") => return admin(std::env::args().skip(2).collect()),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("memlayer {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("memlayer: unknown argument {other:?}\n\n{HELP}");
            return ExitCode::FAILURE;
        }
    }
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
    // A bad configuration (RUST_LOG and LOG_FORMAT included) is reported in plain text
    // at the default level.
    match &config {
        Ok(config) => init_logging(&config.logging.filter, config.logging.format),
        Err(_) => init_logging("info", LogFormat::Text),
    }
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
            metrics = running.metrics_addr.map(|addr| format!("http://{addr}/metrics")),
            backend = ?running.backend,
            cors_origins = ?config.http.cors_origins,
            "MemLayer is ready: API on http://{}/, Swagger UI on http://{}/docs",
            running.addr,
            running.addr,
        );
        let served = running.server.await.map_err(StartupError::Serve);
        // The HTTP server has stopped. After SIGTERM its graceful shutdown drained the
        // replies already; after SIGINT (a forced stop) they are stopped and stored now.
        running.generations.drain(Duration::ZERO).await;
        served
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

/// `memlayer admin …`: see [`ADMIN_HELP`].
fn admin(args: Vec<String>) -> ExitCode {
    use memlayer_server::AdminCommand;

    let fail = |message: &str| {
        eprintln!("memlayer admin: {message}");
        ExitCode::FAILURE
    };
    let command = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--help" | "-h" | "help"] => {
            print!("{ADMIN_HELP}");
            return ExitCode::SUCCESS;
        }
        ["grant", email] => AdminCommand::Grant(email.to_owned()),
        ["revoke", email] => AdminCommand::Revoke(email.to_owned()),
        ["create", email] => {
            let mut line = String::new();
            if let Err(error) = std::io::stdin().read_line(&mut line) {
                return fail(&format!(
                    "cannot read the password from standard input: {error}"
                ));
            }
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            AdminCommand::Create(email.to_owned(), password.to_owned())
        }
        _ => {
            eprint!(
                "memlayer admin: expected grant, revoke or create and one EMAIL\n\n{ADMIN_HELP}"
            );
            return ExitCode::FAILURE;
        }
    };
    let dotenv = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return fail(&error.to_string()),
    };
    // The admin log line (who, what, to whom) and the database's messages, as the
    // service logs them.
    init_logging(&config.logging.filter, config.logging.format);
    if let Err(error) = dotenv
        && !error.not_found()
    {
        tracing::warn!(%error, "ignoring a malformed .env file");
    }
    match memlayer_server::admin(&config, command) {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error.to_string()),
    }
}

/// Logs to stdout as text or JSON lines, filtered by `filter` (checked by `Config`).
fn init_logging(filter: &str, format: LogFormat) {
    let targets: Targets = filter
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
        .with_target(CONNECTION_ERRORS, LevelFilter::OFF);
    let layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
        // Each line an object: the event's fields, and the request's span with its id.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(targets))
        // Filtered to its one target: a layer without a filter would enable every
        // callsite of every crate, TRACE included, and each would build its event.
        .with(
            DemoteConnectionErrors
                .with_filter(Targets::new().with_target(CONNECTION_ERRORS, LevelFilter::TRACE)),
        )
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
