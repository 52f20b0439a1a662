//! Behind a real reverse proxy, as operators run it: Debian's nginx (started by the test
//! with its own configuration, never the system's service) in front of two `memlayer`
//! processes on one PostgreSQL database, with the configuration of docs/deploy.md.
//! Without nginx or PostgreSQL these say `SKIPPED`; under CI (`CI=true`) they fail.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memlayer_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::process::{Service, memlayer};
use crate::support::{SECRET, credentials};
use crate::upstream::{Script, Upstream};

const NGINX: &str = "/usr/sbin/nginx";

/// nginx on a port of its own, in front of `upstreams`, until dropped.
struct Nginx {
    child: Child,
    port: u16,
    /// The configuration, logs and temporary files; removed on drop.
    dir: PathBuf,
}

impl Nginx {
    /// Started, or `None` (and `SKIPPED`) where nginx is not installed and not required.
    fn start(upstreams: &[&str]) -> Option<Self> {
        if !std::path::Path::new(NGINX).exists() {
            assert!(
                !memlayer_testkit::postgres_required(),
                "{NGINX} is missing: CI installs Debian's nginx (.ci/run)"
            );
            memlayer_testkit::skipped("the reverse-proxy tests: nginx is not installed");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("memlayer-nginx-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The documented snippet itself, with this test's ports, inside a main
        // configuration of the test's own.
        let servers: String = upstreams
            .iter()
            .map(|addr| format!("server {addr};\n    "))
            .collect();
        let snippet = include_str!("../../../../deploy/nginx-memlayer.conf")
            .replace(
                "server 127.0.0.1:8000;\n    server 127.0.0.1:8001;\n    ",
                &servers,
            )
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        assert!(
            snippet.contains(&servers),
            "the snippet's upstream servers moved"
        );
        let prefix = dir.display();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {prefix}/body;\n    proxy_temp_path {prefix}/proxy;\n\
             fastcgi_temp_path {prefix}/fastcgi;\n    uwsgi_temp_path {prefix}/uwsgi;\n    scgi_temp_path {prefix}/scgi;\n\
             {snippet}\n}}\n"
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, config).unwrap();
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, port, dir })
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    /// SIGTERM (nginx's fast shutdown): the master stops its worker and exits. A
    /// SIGKILL would leave the worker running, orphaned, after every test run. Then its
    /// directory goes (it was left in the temporary folder by every run).
    fn drop(&mut self) {
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !terminated {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two instances over one PostgreSQL database behind nginx, with a scripted model.
struct Deployment {
    nginx: Nginx,
    instances: [Service; 2],
    upstream: Upstream,
    _db: TestDatabase,
}

impl Deployment {
    fn start() -> Option<Self> {
        let db = TestDatabase::postgres()?;
        let upstream = Upstream::scripted(vec![]);
        let start = || {
            Service::spawn(memlayer(&[
                ("DATABASE_URL", db.url()),
                ("JWT_SECRET", SECRET),
                ("BCRYPT_COST", "4"),
                ("WORKERS", "1"),
                ("ASSISTANT_URL", upstream.url.as_str()),
                ("ASSISTANT_MODEL", "test-model"),
                ("TRUST_FORWARDED_FOR", "true"),
                ("AUTH_RATE_LIMIT_PER_MINUTE", "3"),
            ]))
        };
        let instances = std::thread::scope(|scope| {
            let first = scope.spawn(start);
            let second = scope.spawn(start);
            [first.join().unwrap(), second.join().unwrap()]
        });
        let addrs: Vec<String> = instances
            .iter()
            .map(|service| service.base.trim_start_matches("http://").to_owned())
            .collect();
        let nginx = Nginx::start(&[&addrs[0], &addrs[1]])?;
        Some(Self {
            nginx,
            instances,
            upstream,
            _db: db,
        })
    }

    /// `method path` through nginx with curl from the loopback address `from` (each
    /// address is another client to the proxy): the status and the JSON answer.
    fn curl(
        &self,
        from: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut command = Command::new("curl");
        command
            .args([
                "-s",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "--interface",
                from,
                "-X",
                method,
            ])
            .arg(format!("{}{path}", self.nginx.base()))
            .args(["-H", "content-type: application/json"]);
        if let Some(token) = token {
            command.args(["-H", &format!("authorization: Bearer {token}")]);
        }
        if let Some(body) = body {
            command.args(["--data", &body.to_string()]);
        }
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }
}

/// A streamed request through nginx on a raw connection: each event's name, data and
/// the moment it arrived, until `until` events or the end.
fn stream(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    until: usize,
) -> Vec<(String, Value, Instant)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut connection = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    write!(
        connection,
        // HTTP/1.0: nginx answers without chunked framing, so every line is the stream's.
        "{method} {path} HTTP/1.0\r\nhost: test\r\nauthorization: Bearer {token}\r\naccept: text/event-stream\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(connection);
    let (mut events, mut name) = (Vec::new(), String::new());
    while events.len() < until {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(event) = line.strip_prefix("event: ") {
            name = event.trim().to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((
                name.clone(),
                serde_json::from_str(data.trim()).unwrap(),
                Instant::now(),
            ));
        }
    }
    events
}

#[test]
fn behind_nginx_a_reply_streams_piece_by_piece_resumes_on_either_instance_and_clients_are_told_apart()
 {
    let Some(t) = Deployment::start() else {
        return;
    };
    let base = t.nginx.base();
    let (status, registered) = t.curl(
        "127.0.0.1",
        "POST",
        "/auth/register",
        None,
        Some(&credentials("proxied@example.com", "password1")),
    );
    assert_eq!(status, 201, "{registered}");
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let chat = t.curl(
        "127.0.0.1",
        "POST",
        "/chats",
        Some(&token),
        Some(&json!({ "title": "Proxied" })),
    );
    let path = format!("/chats/{}/messages", chat.1["id"].as_str().unwrap());

    // Piece by piece: ten pieces 150 ms apart arrive spread out, not all at the end.
    t.upstream.script(vec![Script::Paced(
        vec!["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"],
        150,
    )]);
    let events = stream(
        &base,
        "POST",
        &path,
        &token,
        Some(&json!({ "content": "Go" })),
        100,
    );
    let deltas: Vec<&Instant> = events
        .iter()
        .filter(|(name, ..)| name == "delta")
        .map(|(.., at)| at)
        .collect();
    assert_eq!(deltas.len(), 10, "{events:?}");
    assert!(
        deltas[9].duration_since(*deltas[0]) >= Duration::from_millis(900),
        "the proxy buffered the stream: the deltas arrived within {:?}",
        deltas[9].duration_since(*deltas[0])
    );
    assert_eq!(events.last().unwrap().0, "done");

    // A reply generating on one instance, resumed through the proxy four times: the
    // resumes land on both instances, and each gets every piece.
    t.upstream
        .script(vec![Script::StallAfter(vec!["Once", " upon"])]);
    let started = stream(
        &base,
        "POST",
        &path,
        &token,
        Some(&json!({ "content": "A story" })),
        4,
    );
    let reply = started.iter().find(|(name, ..)| name == "reply").unwrap().1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..4 {
        let resumed = stream(
            &base,
            "GET",
            &format!("{path}/{reply}/stream?after=0"),
            &token,
            None,
            2,
        );
        let text: String = resumed
            .iter()
            .map(|(_, data, _)| data["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Once upon");
    }
    for service in &t.instances {
        service.wait_for_line(&format!("/messages/{reply}/stream"), Duration::from_secs(5));
    }
    let (status, stopped) = t.curl(
        "127.0.0.1",
        "POST",
        &format!("{path}/{reply}/stop"),
        Some(&token),
        None,
    );
    assert_eq!((status, stopped["status"].as_str()), (200, Some("stopped")));

    // The client's address reaches the rate limit through X-Forwarded-For: three
    // attempts from one client, whichever instance takes them, then 429; another client
    // is not concerned.
    let wrong = credentials("proxied@example.com", "wrong password");
    for _ in 0..3 {
        assert_eq!(
            t.curl("127.0.0.2", "POST", "/auth/login", None, Some(&wrong))
                .0,
            401
        );
    }
    let (status, refused) = t.curl("127.0.0.2", "POST", "/auth/login", None, Some(&wrong));
    assert_eq!(status, 429, "{refused}");
    assert_eq!(
        t.curl("127.0.0.3", "POST", "/auth/login", None, Some(&wrong))
            .0,
        401
    );
}
