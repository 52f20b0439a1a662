//! The `memlayer` binary as an operator runs it: start-up checks, and SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memlayer_testkit::TestDatabase;
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn memlayer(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memlayer"));
    for name in [
        "DATABASE_URL",
        "JWT_SECRET",
        "PORT",
        "HOST",
        "CORS_ORIGINS",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied()).env("RUST_LOG", "info");
    command
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < within, "still running after {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_jwt_secret_shorter_than_32_bytes_is_refused_at_start_up_without_echoing_it() {
    let output = memlayer(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
        ("JWT_SECRET", "tooshort-secret"),
    ])
    .output()
    .unwrap();

    let log = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        log.contains("JWT_SECRET") && log.contains("at least 32"),
        "{log}"
    );
    assert!(!log.contains("tooshort-secret"), "{log}");
}

#[test]
fn postgres_without_a_jwt_secret_is_refused_at_start_up() {
    let output = memlayer(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")])
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("JWT_SECRET"));
}

#[test]
fn an_unreachable_database_stops_start_up_after_the_configured_wait() {
    let started = Instant::now();
    let output = memlayer(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("DATABASE_STARTUP_TIMEOUT_SECS", "1"),
    ])
    .output()
    .unwrap();

    let log = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(log.contains("not reachable within"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_openapi_subcommand_prints_the_document() {
    let output = memlayer(&[]).arg("openapi").output().unwrap();

    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(output.status.success());
    assert_eq!(doc["info"]["title"], "MemLayer API");
}

#[test]
fn sigterm_lets_requests_in_flight_finish_refuses_new_ones_and_exits_0() {
    let db = TestDatabase::sqlite();
    let port = free_port().to_string();
    let mut child = memlayer(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("PORT", &port),
        // Slow registrations, so that some are in flight when SIGTERM comes.
        ("BCRYPT_COST", "12"),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
        ("SHUTDOWN_TIMEOUT_SECS", "20"),
    ])
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let agent = || {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent()
    };
    let started = Instant::now();
    while agent().get(format!("{base}/health")).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (in_flight, refused, exit) = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..4)
            .map(|i| {
                let (base, agent) = (&base, &agent);
                scope.spawn(move || {
                    agent()
                        .post(format!("{base}/auth/register"))
                        .header("content-type", "application/json")
                        .send(json!({ "email": format!("user{i}@example.com"), "password": "password1" }).to_string())
                        .map(|response| response.status().as_u16())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150));
        let sigterm = Instant::now();
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        std::thread::sleep(Duration::from_millis(200));
        let refused = agent()
            .get(format!("{base}/health"))
            .call()
            .map(|r| r.status().as_u16());
        let in_flight: Vec<_> = requests.into_iter().map(|r| r.join().unwrap()).collect();
        let exit = wait_for_exit(&mut child, Duration::from_secs(20));
        eprintln!("shut down {:?} after SIGTERM", sigterm.elapsed());
        (in_flight, refused, exit)
    });

    for status in &in_flight {
        assert_eq!(
            status.as_ref().ok(),
            Some(&201),
            "an in-flight request was cut: {in_flight:?}"
        );
    }
    assert!(
        refused.is_err(),
        "a new request after SIGTERM was served: {refused:?}"
    );
    assert!(exit.success(), "{exit:?}");
}
