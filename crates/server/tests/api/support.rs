//! The real service on a random port over a fresh database, and a small HTTP client.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use memlayer_server::{Config, start};
use memlayer_testkit::TestDatabase;
use serde_json::Value;

/// The secret the test services sign tokens with.
pub const SECRET: &str = "a-test-secret-of-at-least-32-bytes!";
/// The SPA's origin.
pub const SPA_ORIGIN: &str = "http://localhost:5173";

/// Runs each API test once per backend (see `memlayer_testkit::on_both_backends`).
#[macro_export]
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        memlayer_testkit::on_both_backends!($crate::support::TestApp::start; $($name),*);
    };
}

/// The service, started on its own thread; stopped and its database dropped at the end.
pub struct TestApp {
    pub base: String,
    /// `http://<METRICS_ADDR>` when the test set one.
    pub metrics_base: Option<String>,
    db: Option<TestDatabase>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    agent: ureq::Agent,
}

impl TestApp {
    /// The service over `db` with the test settings.
    pub fn start(db: TestDatabase) -> Self {
        Self::start_with(db, &[])
    }

    /// The service over `db`, with some settings overridden (`("BCRYPT_COST", "5")`; an
    /// empty value unsets one).
    pub fn start_with(db: TestDatabase, overrides: &[(&str, &str)]) -> Self {
        let mut app = Self::start_on(db.url(), overrides);
        app.db = Some(db);
        app
    }

    /// The service over the database at `url`, which the caller manages.
    pub fn start_on(url: &str, overrides: &[(&str, &str)]) -> Self {
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", url),
            ("JWT_SECRET", SECRET),
            ("PORT", "0"),
            ("BCRYPT_COST", "4"),
            ("WORKERS", "2"),
            ("DATABASE_POOL_SIZE", "4"),
            ("CORS_ORIGINS", SPA_ORIGIN),
            ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
            // Tests that race many logins want them queued, not refused.
            ("BCRYPT_QUEUE_LENGTH", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = Config::from_vars(&vars).expect("test configuration");
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let running = start(&config).expect("the service starts");
                sender
                    .send((running.addr, running.metrics_addr, running.server.handle()))
                    .expect("report the address");
                running.server.await.expect("the service runs");
            });
        });
        let (addr, metrics_addr, handle) = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("the service started");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Self {
            base: format!("http://{addr}"),
            metrics_base: metrics_addr.map(|addr| format!("http://{addr}")),
            db: None,
            handle,
            thread: Some(thread),
            agent,
        }
    }

    /// Stops the service and hands back its database, for a restart.
    pub fn stop(mut self) -> TestDatabase {
        self.shut_down();
        self.db.take().expect("the database")
    }

    /// The database under the service, for checks behind its back.
    pub fn db(&self) -> &TestDatabase {
        self.db.as_ref().expect("the database")
    }

    fn shut_down(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// A request to `path`.
    pub fn request(&self, method: &str, path: &str) -> Request<'_> {
        Request {
            app: self,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![],
            body: None,
        }
    }

    /// `GET path` as `token`'s user.
    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.request("GET", path).token(token).send()
    }

    /// `POST path` with a JSON body as `token`'s user.
    pub fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request("POST", path).token(token).json(&body).send()
    }

    /// `POST path` with a JSON body as `token`'s user, asking for the reply as events.
    pub fn post_streamed(&self, path: &str, token: &str, body: Value) -> Events {
        self.request("POST", path).token(token).json(&body).stream()
    }

    /// The messages at `path` (a chat's), as `(role, content)` pairs, oldest first.
    pub fn conversation(&self, path: &str, token: &str) -> Vec<(String, String)> {
        let reply = self.get(path, token);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply
            .json()
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().expect("a role").to_owned(),
                    m["content"].as_str().expect("a content").to_owned(),
                )
            })
            .collect()
    }

    /// Sends raw bytes on a new connection and reads the response head and body (up to
    /// 64 KiB, or until the server closes or pauses for 5 s).
    pub fn raw(&self, request: &[u8]) -> String {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(self.base.trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut response = vec![0; 65_536];
        let mut read = 0;
        while let Ok(n) = stream.read(&mut response[read..]) {
            if n == 0 {
                break;
            }
            read += n;
            let text = String::from_utf8_lossy(&response[..read]);
            if text.contains("\r\n\r\n{") && text.trim_end().ends_with('}') {
                break;
            }
        }
        String::from_utf8_lossy(&response[..read]).into_owned()
    }

    /// `method path` as `token`'s user, with a JSON body if one is given.
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Reply {
        let request = self.request(method, path).token(token);
        match body {
            Some(body) => request.json(body).send(),
            None => request.send(),
        }
    }

    /// Registers an account and returns its access token.
    pub fn register(&self, email: &str, password: &str) -> String {
        let reply = self
            .request("POST", "/auth/register")
            .json(&credentials(email, password))
            .send();
        assert_eq!(reply.status, 201, "register {email}: {}", reply.text);
        reply.json()["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// Registers a fresh account (a unique email) and returns its access token.
    pub fn new_user(&self) -> String {
        self.register(
            &format!("user-{}@example.com", uuid::Uuid::now_v7()),
            "password1",
        )
    }

    /// Creates a chat as `token`'s user and returns its id.
    pub fn new_chat(&self, token: &str) -> String {
        let reply = self.post("/chats", token, serde_json::json!({ "title": "A chat" }));
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json()["id"].as_str().expect("an id").to_owned()
    }

    /// `POST /chats/{chat}/messages` with `content`, as `token`'s user.
    pub fn post_message(&self, token: &str, chat: &str, content: &str) -> Reply {
        self.post(
            &messages_path(chat),
            token,
            serde_json::json!({ "content": content }),
        )
    }

    /// `GET /chats/{chat}/messages` (the latest page) as `token`'s user.
    pub fn list_messages(&self, token: &str, chat: &str) -> Reply {
        self.get(&messages_path(chat), token)
    }

    /// The messages `GET /chats/{chat}/messages` lists (the active path's latest page),
    /// which must answer 200.
    pub fn listed_messages(&self, token: &str, chat: &str) -> Vec<Value> {
        let reply = self.list_messages(token, chat);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json().as_array().expect("a list").clone()
    }

    /// Counts rows with raw SQL, behind the service's back.
    pub fn count(&self, table: &str, filter: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}");
        let url = self.db().url();
        let rows: Vec<Count> = match url.strip_prefix("sqlite://") {
            Some(path) => diesel::sql_query(&sql)
                .load(&mut diesel::SqliteConnection::establish(path).unwrap()),
            None => {
                diesel::sql_query(&sql).load(&mut diesel::PgConnection::establish(url).unwrap())
            }
        }
        .unwrap();
        rows[0].n
    }
}

/// The path of `chat`'s messages, `/chats/{chat}/messages`.
pub fn messages_path(chat: &str) -> String {
    format!("/chats/{chat}/messages")
}

/// `POST {base}{path}` with a JSON `body` (and `token`, if any) through `agent`: the
/// status and the JSON answer. For services a test runs as processes.
fn post_at(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = agent.post(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut response = request
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_json().unwrap_or(Value::Null),
    )
}

/// Registers `email` at the service at `base`: its access token.
pub fn register_at(agent: &ureq::Agent, base: &str, email: &str) -> String {
    let (status, body) = post_at(
        agent,
        base,
        "/auth/register",
        None,
        &credentials(email, "correct horse battery"),
    );
    assert_eq!(status, 201, "{body}");
    body["access_token"].as_str().expect("a token").to_owned()
}

/// A new chat of `token`'s user at the service at `base`: its id.
pub fn chat_at(agent: &ureq::Agent, base: &str, token: &str) -> String {
    let (status, body) = post_at(
        agent,
        base,
        "/chats",
        Some(token),
        &serde_json::json!({ "title": "A chat" }),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("an id").to_owned()
}

/// The body of a registration or a login.
pub fn credentials(email: &str, password: &str) -> Value {
    serde_json::json!({ "email": email, "password": password })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A request being built.
pub struct Request<'a> {
    app: &'a TestApp,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Request<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Authorises as the token's user.
    pub fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sends `body` as JSON, as the SPA does.
    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .raw(body.to_string().into_bytes())
    }

    /// Sends these bytes as the body, with whatever headers were set.
    pub fn raw(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// Sends it with `Accept: text/event-stream` and reads the reply as events, as they
    /// come.
    pub fn stream(self) -> Events {
        let response = self.header("accept", "text/event-stream").run();
        let status = response.status().as_u16();
        let headers = header_pairs(&response);
        let reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        Events {
            status,
            headers,
            reader: BufReader::new(reader),
        }
    }

    /// Sends it and reads the whole reply.
    pub fn send(self) -> Reply {
        let mut response = self.run();
        Reply {
            status: response.status().as_u16(),
            headers: header_pairs(&response),
            text: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn run(self) -> ureq::http::Response<ureq::Body> {
        let url = format!("{}{}", self.app.base, self.path);
        let mut builder = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(&url);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(self.body.unwrap_or_default())
            .expect("a valid request");
        self.app
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{} {url}: {e}", self.method))
    }
}

fn header_pairs(response: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A reply read as Server-Sent Events.
pub struct Events {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<Box<dyn Read + Send>>,
}

impl Events {
    /// A header's value (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next event's name and JSON data (comments skipped); `None` at the end.
    pub fn next_event(&mut self) -> Option<(String, Value)> {
        self.next_numbered().map(|(name, _, data)| (name, data))
    }

    /// The next event's name, `id` (if it has one) and JSON data; `None` at the end.
    pub fn next_numbered(&mut self) -> Option<(String, Option<u64>, Value)> {
        let (mut name, mut id, mut data) = (String::new(), None, String::new());
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if !data.is_empty() {
                    let data = serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data:?}"));
                    return Some((name, id, data));
                }
            } else if let Some(value) = line.strip_prefix("id: ") {
                id = Some(
                    value
                        .parse()
                        .unwrap_or_else(|e| panic!("event id {value:?}: {e}")),
                );
            } else if let Some(value) = line.strip_prefix("event: ") {
                value.clone_into(&mut name);
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            } else {
                assert!(line.starts_with(':'), "not an event line: {line:?}");
            }
        }
    }

    /// Every remaining event.
    pub fn all(mut self) -> Vec<(String, Value)> {
        std::iter::from_fn(|| self.next_event()).collect()
    }
}

/// The names of `events`, in order.
pub fn event_names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// A whole reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Reply {
    /// The body as JSON (fails the test if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// A header's value (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the FastAPI error shape `{"detail": "<text>"}` with a JSON content type.
    pub fn assert_detail(&self, status: u16, detail: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.text
        );
        assert_eq!(self.json(), serde_json::json!({ "detail": detail }));
    }

    /// Asserts a 422 whose single problem is at `loc` with pydantic type `kind` (an
    /// extra, unexpected issue fails it too).
    pub fn assert_invalid(&self, loc: Value, kind: &str) {
        assert_eq!(self.status, 422, "{}", self.text);
        let body = self.json();
        let issues = body["detail"]
            .as_array()
            .unwrap_or_else(|| panic!("a list: {body}"));
        assert_eq!(issues.len(), 1, "not a single issue: {body}");
        assert!(
            issues[0]["loc"] == loc && issues[0]["type"] == kind && issues[0]["msg"].is_string(),
            "no {kind} at {loc} in {body}"
        );
    }
}

/// Polls `done` every few milliseconds until it holds; fails after `within`.
pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
