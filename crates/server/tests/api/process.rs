//! The `memlayer` binary as an operator runs it: start-up checks, and SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use memlayer_testkit::TestDatabase;

use crate::support::credentials;

/// The `memlayer` binary with `vars` set, and none of the variables a developer's shell
/// may have set for it.
pub(crate) fn memlayer(vars: &[(&str, &str)]) -> Command {
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
    command.env("RUST_LOG", "info").envs(vars.iter().copied());
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

/// A started `memlayer` process whose log (stdout and stderr) is read as it comes, so a
/// test can wait for a line instead of sleeping.
pub(crate) struct Service {
    child: Child,
    log: Arc<(Mutex<String>, Condvar)>,
    /// `http://127.0.0.1:<the port the service bound>` (it binds port 0).
    pub(crate) base: String,
    addr: std::net::SocketAddr,
}

impl Service {
    /// Spawns `command` (which must not set `PORT`: the service binds port 0) and
    /// waits for its ready line, which names the bound address.
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in streams {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (text, changed) = &*log;
                    let mut text = text.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                    changed.notify_all();
                }
            });
        }
        let mut service = Self {
            child,
            log,
            base: String::new(),
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let ready = service.wait_for_line("MemLayer is ready", Duration::from_secs(60));
        // `address=…` in text, `"address":"…"` in JSON.
        let addr = ready
            .split([' ', ','])
            .find_map(|field| {
                field
                    .strip_prefix("address=")
                    .or_else(|| field.strip_prefix(r#""address":""#)?.strip_suffix('"'))
            })
            .unwrap_or_else(|| panic!("no address in the ready line: {ready}"));
        service.addr = addr.parse().unwrap();
        service.base = format!("http://{addr}");
        service
    }

    /// The first log line containing `needle`, waiting for it (at most `within`).
    pub(crate) fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        self.wait_for_lines(needle, 1, within).remove(0)
    }

    /// The first `count` log lines containing `needle`, waiting for them (at most `within`).
    fn wait_for_lines(&self, needle: &str, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let (text, changed) = &*self.log;
        let mut text = text.lock().unwrap();
        loop {
            let found: Vec<String> = text
                .lines()
                .filter(|line| line.contains(needle))
                .take(count)
                .map(str::to_owned)
                .collect();
            if found.len() == count {
                return found;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {count} lines with {needle:?} within {within:?}:\n{text}"
            );
            text = changed.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Everything logged so far.
    fn log(&self) -> String {
        self.log.0.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// Kills it (SIGKILL) and waits for the exit.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit.
    pub(crate) fn stop(self) -> (std::process::ExitStatus, String) {
        self.terminate();
        self.finish()
    }

    /// Waits for the exit (after a SIGTERM), and its last line.
    pub(crate) fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = wait_for_exit(&mut self.child, Duration::from_secs(30));
        self.wait_for_line("MemLayer stopped", Duration::from_secs(5));
        (status, self.log())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// Runs `memlayer` with `vars` (on any free port, should it start after all) and
/// expects it to stop at start-up: exit code 1, `message` in what it printed, and no
/// ready line. Returns everything it printed, stdout then stderr.
fn refused_at_start_up(vars: &[(&str, &str)], message: &str) -> String {
    let child = memlayer(&[[("PORT", "0")].as_slice(), vars].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait_with_output()));
    // Only a guard against a service that starts instead: start-up gives up sooner.
    let Ok(output) = exit.recv_timeout(Duration::from_secs(60)) else {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("still running after 60 s with {vars:?}");
    };
    let output = output.unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{vars:?}: {printed}");
    assert!(
        printed.contains(message),
        "{vars:?}: no {message:?} in {printed}"
    );
    assert!(
        !printed.contains("MemLayer is ready"),
        "{vars:?}: {printed}"
    );
    printed
}

#[test]
fn a_jwt_secret_shorter_than_32_bytes_is_refused_at_start_up_without_echoing_it() {
    let log = refused_at_start_up(
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("JWT_SECRET", "tooshort-secret"),
        ],
        "JWT_SECRET",
    );

    assert!(log.contains("at least 32"), "{log}");
    assert!(!log.contains("tooshort-secret"), "{log}");
}

#[test]
fn postgres_without_a_jwt_secret_is_refused_at_start_up() {
    refused_at_start_up(
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")],
        "JWT_SECRET",
    );
}

#[test]
fn an_unreachable_database_stops_start_up_after_the_configured_wait() {
    refused_at_start_up(
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
            ("DATABASE_STARTUP_TIMEOUT_SECS", "1"),
        ],
        // The configured wait, not the default one.
        "retrying for up to 1s",
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
    let service = Service::spawn(memlayer(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        // Slow registrations, so that they are still in flight when SIGTERM comes.
        ("BCRYPT_COST", "12"),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
        ("SHUTDOWN_TIMEOUT_SECS", "60"),
        // The service logs each request as it comes in at DEBUG.
        ("RUST_LOG", "info,memlayer_http=debug"),
    ]));
    let base = service.base.clone();

    let (in_flight, refused) = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..4)
            .map(|i| {
                let base = &base;
                scope.spawn(move || {
                    agent()
                        .post(format!("{base}/auth/register"))
                        .header("content-type", "application/json")
                        .send(credentials(&format!("user{i}@example.com"), "password1").to_string())
                        .map(|response| response.status().as_u16())
                })
            })
            .collect();
        // In flight: the service has read all four (the event, not a guess).
        service.wait_for_lines("request received", 4, Duration::from_secs(30));
        service.terminate();
        service.wait_for_line("starting graceful shutdown", Duration::from_secs(30));
        // The listener closes soon after: poll for the refusal, with a deadline.
        let deadline = Instant::now() + Duration::from_secs(30);
        let refused = loop {
            match std::net::TcpStream::connect(service.addr) {
                Err(error) => break Ok(error),
                Ok(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(stream) => break Err(stream),
            }
        };
        let in_flight: Vec<_> = requests.into_iter().map(|r| r.join().unwrap()).collect();
        (in_flight, refused)
    });
    let (exit, _) = service.finish();

    for status in &in_flight {
        assert_eq!(
            status.as_ref().ok(),
            Some(&201),
            "an in-flight request was cut: {in_flight:?}"
        );
    }
    assert!(
        refused.is_ok(),
        "new connections were still accepted after SIGTERM"
    );
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn health_keeps_answering_while_a_client_holds_more_stalled_connections_than_the_file_limit() {
    use std::io::Write;
    const FILE_LIMIT: usize = 256;
    const STALLED: usize = 3 * 150;
    let db = TestDatabase::sqlite();
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={FILE_LIMIT}:{FILE_LIMIT}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_memlayer"));
    for name in ["DATABASE_URL", "JWT_SECRET", "PORT", "HOST", "RUST_LOG"] {
        command.env_remove(name);
    }
    command.envs([
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("WORKERS", "2"),
        ("REQUEST_HEAD_TIMEOUT_SECS", "2"),
        ("REQUEST_BODY_TIMEOUT_SECS", "2"),
        ("KEEP_ALIVE_SECS", "2"),
        ("RUST_LOG", "info"),
    ]);
    let service = Service::spawn(command);
    let (base, addr) = (service.base.clone(), service.addr);

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
    let server = addr;
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
    let (_, log) = service.stop();
    drop(held);

    assert_eq!(health.ok(), Some(200));
    assert!(!log.contains("Too many open files"), "{log}");
}

#[test]
fn a_database_password_in_the_url_query_is_never_printed() {
    let printed = refused_at_start_up(
        &[
            (
                "DATABASE_URL",
                "postgres://memlayer@127.0.0.1:1/memlayer?sslmode=disable&password=s3cret",
            ),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
            ("DATABASE_STARTUP_TIMEOUT_SECS", "1"),
        ],
        "password=***",
    );

    assert!(!printed.contains("s3cret"), "{printed}");
}

#[test]
fn a_postgres_without_the_database_stops_start_up_at_once_with_the_cause() {
    let Some(server) = TestDatabase::postgres() else {
        return;
    };
    let base = server.url().rsplit_once('/').unwrap().0.to_owned();

    // An hour of retries would be the old behaviour; the helper's guard is only against
    // a hang.
    let printed = refused_at_start_up(
        &[
            ("DATABASE_URL", &format!("{base}/memlayer_no_such_database")),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
            ("DATABASE_STARTUP_TIMEOUT_SECS", "3600"),
        ],
        "does not exist",
    );

    assert!(printed.matches("WARN").count() <= 1, "{printed}");
}

/// Runs `memlayer` with `vars` `runs` times, several at once, and returns each run's
/// exit code (`None`: killed by a signal), what it logged and what it wrote on stderr.
fn run_many_times(vars: &[(&str, &str)], runs: usize) -> Vec<(Option<i32>, String, String)> {
    const AT_ONCE: usize = 8;
    let mut results = Vec::with_capacity(runs);
    while results.len() < runs {
        let batch: Vec<Child> = (0..AT_ONCE.min(runs - results.len()))
            .map(|_| {
                memlayer(vars)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        results.extend(batch.into_iter().map(|child| {
            let output = child.wait_with_output().unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }));
    }
    results
}

/// Asserts that every run exited 1, wrote nothing on stderr (a crash's assertion
/// message) and logged one line: the error, which contains `cause`.
fn assert_each_run_failed_cleanly(runs: &[(Option<i32>, String, String)], cause: &str) {
    let crashed: Vec<_> = runs
        .iter()
        .filter(|(code, _, stderr)| *code != Some(1) || !stderr.is_empty())
        .collect();
    assert!(
        crashed.is_empty(),
        "{} of {} runs did not exit 1 cleanly, e.g. {:?}",
        crashed.len(),
        runs.len(),
        crashed[0]
    );
    for (_, log, _) in runs {
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].contains("ERROR") && lines[0].contains(cause),
            "{log}"
        );
    }
}

/// The URL of the test server's database `db`, as the role `role` (no password).
fn as_role(db: &TestDatabase, role: &str) -> String {
    let (scheme, rest) = db.url().split_once("://").unwrap();
    let host_and_database = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    format!("{scheme}://{role}@{host_and_database}")
}

#[test]
fn a_database_role_that_does_not_exist_stops_start_up_with_exit_1_every_time() {
    // libpq may be used by the pool's threads while the process exits: it crashed one
    // run in ten (SIGSEGV, or krb5's `k5_mutex_lock` assertion) before the pool waited
    // for the start-up check.
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let url = as_role(&db, "memlayer_no_such_role");

    let runs = run_many_times(
        &[
            ("DATABASE_URL", &url),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ],
        100,
    );

    assert_each_run_failed_cleanly(&runs, r#"role "memlayer_no_such_role" does not exist"#);
}

#[test]
fn a_migration_that_fails_stops_start_up_with_exit_1_every_time() {
    // The pool is filling when the migration fails: dropping it must wait for its
    // threads' connection attempts, which crashed one run in fifteen at exit before.
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    db.execute("CREATE TABLE users (in_the_way integer)");

    let runs = run_many_times(
        &[
            ("DATABASE_URL", db.url()),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ],
        100,
    );

    assert_each_run_failed_cleanly(&runs, r#"relation "users" already exists"#);
}

#[test]
fn malformed_requests_are_not_logged_as_errors() {
    use std::io::{Read, Write};
    let db = TestDatabase::sqlite();
    let service = Service::spawn(memlayer(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
    ]));

    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
    ] {
        let mut stream = std::net::TcpStream::connect(service.addr).unwrap();
        stream.write_all(garbage).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let (_, log) = service.stop();

    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn bad_logging_and_metrics_settings_stop_start_up_with_a_message_naming_them() {
    for (name, value) in [
        ("RUST_LOG", "info,memlayer_http=loud"),
        ("RUST_LOG", "[[["),
        ("LOG_FORMAT", "xml"),
        ("METRICS_ADDR", "localhost"),
    ] {
        // Over an unused SQLite file.
        let db = TestDatabase::sqlite();
        refused_at_start_up(
            &[("DATABASE_URL", db.url()), (name, value)],
            &format!("invalid {name}="),
        );
    }
}

#[test]
fn a_database_url_of_an_unsupported_kind_is_reported_as_a_database_url_problem() {
    let printed = refused_at_start_up(
        &[("DATABASE_URL", "mysql://root:hunter2@db/x")],
        "invalid DATABASE_URL",
    );

    assert!(!printed.contains("JWT_SECRET"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn a_sqlite_url_without_its_slashes_is_answered_with_the_url_to_write() {
    refused_at_start_up(
        &[("DATABASE_URL", "sqlite:nc.db")],
        r#"invalid DATABASE_URL="sqlite:nc.db": write sqlite://nc.db "#,
    );
}

#[test]
fn help_and_version_print_and_exit_without_serving() {
    for flag in ["--help", "--version"] {
        let output = memlayer(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")])
            .arg(flag)
            .output()
            .unwrap();

        // Postgres without JWT_SECRET would refuse to start: these never get that far.
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{flag}: {printed}");
        assert!(printed.starts_with("memlayer"), "{flag}: {printed}");
        assert!(!printed.contains("invalid"), "{flag}: {printed}");
    }
    let help = memlayer(&[]).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("METRICS_ADDR"));
    let version = memlayer(&[]).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("memlayer {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn each_answer_is_logged_in_its_request_span_with_the_request_id() {
    let db = TestDatabase::sqlite();
    let service = Service::spawn(memlayer(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
    ]));

    let reply = agent()
        .get(format!("{}/chats", service.base))
        .header("x-request-id", "find-me-in-the-log")
        .call()
        .unwrap();
    let line = service.wait_for_line("find-me-in-the-log", Duration::from_secs(30));
    let (_, log) = service.stop();

    assert_eq!(reply.status().as_u16(), 401);
    assert!(
        line.contains("route=/chats") && line.contains("status=401"),
        "{log}"
    );
}

#[test]
fn log_format_json_writes_one_object_a_line_with_the_request_id() {
    let db = TestDatabase::sqlite();
    let service = Service::spawn(memlayer(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("LOG_FORMAT", "json"),
    ]));

    agent()
        .get(format!("{}/health", service.base))
        .header("x-request-id", "json-42")
        .call()
        .unwrap();
    let line = service.wait_for_line("json-42", Duration::from_secs(30));
    let (_, log) = service.stop();

    let answered: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answered["fields"]["message"], "answered", "{line}");
    assert_eq!(answered["fields"]["status"], 200, "{line}");
    assert_eq!(answered["span"]["request_id"], "json-42", "{line}");
    assert_eq!(answered["span"]["route"], "/health", "{line}");
    for line in log.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}
