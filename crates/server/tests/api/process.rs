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

/// Waits until the service at `base` answers `/health`.
fn wait_until_up(base: &str) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let started = Instant::now();
    while agent.get(format!("{base}/health")).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and waits for the exit.
fn stop(child: &mut Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for_exit(child, Duration::from_secs(30));
}

#[test]
fn health_keeps_answering_while_a_client_holds_more_stalled_connections_than_the_file_limit() {
    use std::io::Write;
    const FILE_LIMIT: usize = 256;
    const STALLED: usize = 3 * 150;
    let db = TestDatabase::sqlite();
    let log_path = db.sqlite_dir().unwrap().join("service.log");
    let port = free_port().to_string();
    let log = std::fs::File::create(&log_path).unwrap();
    let mut service = Command::new("prlimit");
    service
        .arg(format!("--nofile={FILE_LIMIT}:{FILE_LIMIT}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_memlayer"));
    for name in ["DATABASE_URL", "JWT_SECRET", "PORT", "HOST", "RUST_LOG"] {
        service.env_remove(name);
    }
    let mut child = service
        .envs([
            ("DATABASE_URL", db.url()),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
            ("PORT", &port),
            ("WORKERS", "2"),
            ("REQUEST_HEAD_TIMEOUT_SECS", "2"),
            ("REQUEST_BODY_TIMEOUT_SECS", "2"),
            ("KEEP_ALIVE_SECS", "2"),
            ("RUST_LOG", "info"),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base);

    // Three ways to stall: a head never finished, a chunked body cut mid-chunk on a
    // route that reads none (and needs no token), a body shorter than its length.
    let stalls: [&[u8]; 3] = [
        b"GET /health HTTP/1.1\r\nHost: x\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    ];
    // The stalling client is 127.0.0.2; /health is asked from 127.0.0.1. (Past its share,
    // MAX_CONNECTIONS_PER_CLIENT, the stalling client's connections are closed at once;
    // `abuse::a_client_past_its_share_…` shows that; the writes below may then fail.)
    let server: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let held: Vec<std::net::TcpStream> = (0..STALLED)
        .map(|i| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            let from: std::net::SocketAddr = "127.0.0.2:0".parse().unwrap();
            socket.bind(&from.into()).unwrap();
            socket
                .connect(&server.into())
                .expect("the kernel queues the connection");
            let mut stream: std::net::TcpStream = socket.into();
            let _ = stream.write_all(stalls[i % stalls.len()]);
            stream
        })
        .collect();
    let asked = Instant::now();
    let health = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
        .get(format!("{base}/health"))
        .call()
        .map(|response| response.status().as_u16());
    let latency = asked.elapsed();
    eprintln!(
        "{} stalled connections held (open-file limit {FILE_LIMIT}): /health answered {health:?} in {latency:?}",
        held.len()
    );
    stop(&mut child);
    drop(held);

    assert_eq!(health.ok(), Some(200));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("Too many open files"), "{log}");
}

#[test]
fn a_database_password_in_the_url_query_is_never_printed() {
    let output = memlayer(&[
        (
            "DATABASE_URL",
            "postgres://memlayer@127.0.0.1:1/memlayer?sslmode=disable&password=s3cret",
        ),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("DATABASE_STARTUP_TIMEOUT_SECS", "1"),
    ])
    .output()
    .unwrap();

    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success());
    assert!(printed.contains("password=***"), "{printed}");
    assert!(!printed.contains("s3cret"), "{printed}");
}

#[test]
fn a_postgres_without_the_database_stops_start_up_at_once_with_the_cause() {
    let Some(server) = TestDatabase::postgres() else {
        return;
    };
    let base = server.url().rsplit_once('/').unwrap().0.to_owned();
    let mut child = memlayer(&[
        ("DATABASE_URL", &format!("{base}/memlayer_no_such_database")),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("DATABASE_STARTUP_TIMEOUT_SECS", "3600"),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();

    // An hour of retries would be the old behaviour; this guard is only against a hang.
    let status = wait_for_exit(&mut child, Duration::from_secs(60));
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut printed).unwrap();

    assert!(!status.success());
    assert!(printed.contains("does not exist"), "{printed}");
    assert!(printed.matches("WARN").count() <= 1, "{printed}");
}

#[test]
fn malformed_requests_are_not_logged_as_errors() {
    use std::io::{Read, Write};
    let db = TestDatabase::sqlite();
    let log_path = db.sqlite_dir().unwrap().join("service.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port().to_string();
    let mut child = memlayer(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("PORT", &port),
    ])
    .stdout(log)
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base);

    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
    ] {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", port.parse().unwrap())).unwrap();
        stream.write_all(garbage).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    stop(&mut child);

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
}
