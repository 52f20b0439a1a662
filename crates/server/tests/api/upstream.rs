//! Model servers for the assistant's tests.
//!
//! [`Upstream::scripted`] is a small OpenAI-compatible chat-completions server that
//! answers each request as the test scripts it, for the wire faults a real model server
//! cannot be made to produce (an error status, silence, a stream cut off, a stall while
//! the client leaves). [`Upstream::recording`] stands in front of a real model server
//! and passes everything through. Both record every request body they receive.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// The service over a database with a scripted model behind it.
pub struct WithScriptedModel {
    /// The model server.
    pub upstream: Upstream,
    /// The service.
    pub api: crate::support::TestApp,
}

impl WithScriptedModel {
    /// The service over `db`, asking a scripted model (no scripts yet), with `vars` on
    /// top of the test settings.
    pub fn start(db: memlayer_testkit::TestDatabase, vars: &[(&str, &str)]) -> Self {
        let upstream = Upstream::scripted(vec![]);
        let mut all = vec![
            ("ASSISTANT_URL", upstream.url.as_str()),
            ("ASSISTANT_MODEL", "test-model"),
        ];
        all.extend_from_slice(vars);
        let api = crate::support::TestApp::start_with(db, &all);
        Self { upstream, api }
    }

    /// A new user with a new chat: the token and the messages path.
    pub fn chat(&self) -> (String, String) {
        let token = self.api.new_user();
        let chat = self.api.new_chat(&token);
        (token, crate::support::messages_path(&chat))
    }
}

/// How the scripted server answers one request.
#[derive(Debug, Clone)]
pub enum Script {
    /// Streams these pieces, then `data: [DONE]`.
    Answer(Vec<&'static str>),
    /// Streams these pieces, then a usage chunk of its own (no choices) reporting these
    /// prompt and completion tokens, as `stream_options.include_usage` asks, then
    /// `data: [DONE]`.
    Reported(Vec<&'static str>, u64, u64),
    /// The same, the usage in the last piece's chunk (as some servers send it).
    ReportedWithText(Vec<&'static str>, u64, u64),
    /// Streams these pieces, then an empty chunk with `finish_reason: "length"`, then a
    /// usage chunk of its own (OpenAI's shape), then `data: [DONE]`.
    LengthReported(Vec<&'static str>, u64, u64),
    /// Streams these pieces, then a usage chunk whose figures are not whole numbers,
    /// then `data: [DONE]`.
    MalformedUsage(Vec<&'static str>),
    /// Answers this status with a JSON error body.
    Status(u16),
    /// Streams these pieces, then closes the connection without `[DONE]`.
    CutAfter(Vec<&'static str>),
    /// Streams these pieces, the last with `finish_reason: "length"` (the model stopped
    /// at `max_tokens`), then `data: [DONE]`.
    Length(Vec<&'static str>),
    /// Streams these pieces one every this many milliseconds, then `data: [DONE]`;
    /// reports on [`Upstream::closed`] if the client closes the connection first.
    Paced(Vec<&'static str>, u64),
    /// Streams these pieces, then stays silent until the client closes the connection,
    /// and reports that on [`Upstream::closed`].
    StallAfter(Vec<&'static str>),
    /// Reads the request and never answers it (until the client gives up).
    Silent,
    /// Streams this piece again and again, never `[DONE]`, until the client closes the
    /// connection, and reports that on [`Upstream::closed`].
    Endless(&'static str),
    /// Streams one well-formed delta of this many characters, then `[DONE]`; reports on
    /// [`Upstream::closed`] if the client closes the connection before all was sent.
    HugeDelta(usize),
    /// Answers 500 with an error body that never ends, until the client closes the
    /// connection, and reports that on [`Upstream::closed`].
    EndlessErrorBody,
}

/// The most bytes a scripted answer that "never ends" writes before giving up on a
/// client that reads it all (so a failing test ends, instead of writing forever).
const ENDLESS: usize = 1 << 30;

/// A model server for one test.
pub struct Upstream {
    /// The base URL to configure as `ASSISTANT_URL`.
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    scripts: Arc<Mutex<VecDeque<Script>>>,
    titles: Arc<Mutex<VecDeque<Script>>>,
    closed: Receiver<()>,
}

/// A request the upstream received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
}

enum Mode {
    /// Replies from the first queue, titles (a request whose system message asks for a
    /// title) from the second.
    Scripted(Arc<Mutex<VecDeque<Script>>>, Arc<Mutex<VecDeque<Script>>>),
    Recording(String),
}

impl Upstream {
    /// A scripted server; requests beyond the scripts get `Answer(["Hi"])`.
    pub fn scripted(scripts: Vec<Script>) -> Self {
        let scripts = Arc::new(Mutex::new(VecDeque::from(scripts)));
        let titles = Arc::default();
        Self::serve(
            Mode::Scripted(scripts.clone(), Arc::clone(&titles)),
            scripts,
            titles,
        )
    }

    /// A pass-through to the real model server at `target` (`host:port`).
    pub fn recording(target: &str) -> Self {
        Self::serve(
            Mode::Recording(target.to_owned()),
            Arc::default(),
            Arc::default(),
        )
    }

    fn serve(
        mode: Mode,
        scripts: Arc<Mutex<VecDeque<Script>>>,
        titles: Arc<Mutex<VecDeque<Script>>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (closed_tx, closed) = mpsc::channel();
        let mode = Arc::new(mode);
        let log = requests.clone();
        std::thread::spawn(move || {
            for connection in listener.incoming() {
                let Ok(connection) = connection else { return };
                let (mode, log, closed_tx) = (mode.clone(), log.clone(), closed_tx.clone());
                std::thread::spawn(move || handle(connection, &mode, &log, &closed_tx));
            }
        });
        Self {
            url,
            requests,
            scripts,
            titles,
            closed,
        }
    }

    /// Adds scripts for the next title requests (without one, a title request is
    /// answered 500).
    pub fn script_titles(&self, scripts: Vec<Script>) {
        self.titles.lock().unwrap().extend(scripts);
    }

    /// Adds scripts for the next requests.
    pub fn script(&self, scripts: Vec<Script>) {
        self.scripts.lock().unwrap().extend(scripts);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (at most `within`) for a client to close a stalled connection.
    pub fn closed(&self, within: Duration) -> bool {
        self.closed.recv_timeout(within).is_ok()
    }
}

fn handle(mut connection: TcpStream, mode: &Mode, log: &Mutex<Vec<Request>>, closed: &Sender<()>) {
    let mut reader = BufReader::new(connection.try_clone().unwrap());
    // One request per connection: every answer closes it.
    let Some((head, body)) = read_request(&mut reader) else {
        return;
    };
    let authorization = head
        .lines()
        .find_map(|line| {
            line.strip_prefix("authorization: ")
                .or_else(|| line.strip_prefix("Authorization: "))
        })
        .map(str::to_owned);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let asks_for_a_title = parsed["messages"][0]["content"]
        .as_str()
        .is_some_and(|system| system.starts_with("Write a short title"));
    log.lock().unwrap().push(Request {
        authorization,
        body: parsed,
    });
    match mode {
        Mode::Recording(target) => pass_through(&mut connection, target, &head, &body),
        Mode::Scripted(_, titles) if asks_for_a_title => {
            let script = titles
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Script::Status(500));
            answer(&mut connection, &mut reader, &script, closed);
        }
        Mode::Scripted(scripts, _) => {
            let script = scripts
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Script::Answer(vec!["Hi"]));
            answer(&mut connection, &mut reader, &script, closed);
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn answer(
    connection: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    script: &Script,
    closed: &Sender<()>,
) {
    let pieces = match script {
        Script::Status(status) => {
            let body = json!({ "error": { "message": "scripted failure" } }).to_string();
            let _ = write!(
                connection,
                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
        Script::Silent => {
            // Until the client hangs up.
            let _ = reader.read(&mut [0; 1]);
            return;
        }
        Script::Endless(piece) => {
            let _ = connection.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            let event = chunk(json!({ "content": piece }));
            report_when_closed(connection, closed, std::iter::repeat(event.as_slice()));
            return;
        }
        Script::HugeDelta(chars) => {
            let _ = connection.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            let mut event = chunk(json!({ "content": "x".repeat(*chars) }));
            event.extend_from_slice(b"data: [DONE]\n\n");
            report_when_closed(connection, closed, std::iter::once(event.as_slice()));
            return;
        }
        Script::EndlessErrorBody => {
            let _ = connection.write_all(
                b"HTTP/1.1 500 Scripted\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n",
            );
            let block = [b'e'; 64 * 1024];
            report_when_closed(connection, closed, std::iter::repeat(&block[..]));
            return;
        }
        Script::Paced(pieces, every) => {
            let _ = connection.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            for piece in pieces {
                std::thread::sleep(Duration::from_millis(*every));
                if connection
                    .write_all(&chunk(json!({ "content": piece })))
                    .is_err()
                {
                    let _ = closed.send(());
                    return;
                }
            }
            let _ = connection.write_all(b"data: [DONE]\n\n");
            let _ = connection.shutdown(Shutdown::Both);
            return;
        }
        Script::Reported(pieces, prompt, completion)
        | Script::ReportedWithText(pieces, prompt, completion)
        | Script::LengthReported(pieces, prompt, completion) => {
            let _ = connection.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            let usage = json!({
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            });
            for (index, piece) in pieces.iter().enumerate() {
                let mut event = json!({
                    "choices": [{ "index": 0, "delta": { "content": piece }, "finish_reason": null }],
                });
                if index + 1 == pieces.len() && matches!(script, Script::ReportedWithText(..)) {
                    event["usage"] = usage.clone();
                }
                let _ = connection.write_all(format!("data: {event}\n\n").as_bytes());
            }
            if matches!(script, Script::LengthReported(..)) {
                let length =
                    json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "length" }] });
                let _ = connection.write_all(format!("data: {length}\n\n").as_bytes());
            }
            if !matches!(script, Script::ReportedWithText(..)) {
                let usage = json!({ "choices": [], "usage": usage });
                let _ = connection.write_all(format!("data: {usage}\n\n").as_bytes());
            }
            let _ = connection.write_all(b"data: [DONE]\n\n");
            let _ = connection.shutdown(Shutdown::Both);
            return;
        }
        Script::MalformedUsage(pieces) => {
            let _ = connection.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            for piece in pieces {
                let _ = connection.write_all(&chunk(json!({ "content": piece })));
            }
            let usage = json!({ "choices": [], "usage": { "prompt_tokens": -3, "completion_tokens": 1.5 } });
            let _ = connection.write_all(format!("data: {usage}\n\n").as_bytes());
            let _ = connection.write_all(b"data: [DONE]\n\n");
            let _ = connection.shutdown(Shutdown::Both);
            return;
        }
        Script::Length(pieces) => {
            let _ = connection.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            for (index, piece) in pieces.iter().enumerate() {
                let mut event = json!({
                    "choices": [{ "index": 0, "delta": { "content": piece }, "finish_reason": null }],
                });
                if index + 1 == pieces.len() {
                    event["choices"][0]["finish_reason"] = json!("length");
                }
                let _ = connection.write_all(format!("data: {event}\n\n").as_bytes());
            }
            let _ = connection.write_all(b"data: [DONE]\n\n");
            let _ = connection.shutdown(Shutdown::Both);
            return;
        }
        Script::Answer(pieces) | Script::CutAfter(pieces) | Script::StallAfter(pieces) => pieces,
    };
    let _ = connection.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
    );
    let _ = connection.write_all(&chunk(json!({ "role": "assistant", "content": "" })));
    for piece in pieces {
        let _ = connection.write_all(&chunk(json!({ "content": piece })));
    }
    let _ = connection.flush();
    match script {
        Script::Answer(_) => {
            let _ = connection.write_all(b"data: [DONE]\n\n");
        }
        Script::StallAfter(_) => {
            // A read returns when the client closes its end (or resets it).
            let _ = reader.read(&mut [0; 1]);
            let _ = closed.send(());
        }
        _ => {}
    }
    let _ = connection.shutdown(Shutdown::Both);
}

/// Writes `blocks` (at most [`ENDLESS`] bytes) until the client closes the connection,
/// and reports it if it did.
fn report_when_closed<'a>(
    connection: &mut TcpStream,
    closed: &Sender<()>,
    blocks: impl Iterator<Item = &'a [u8]>,
) {
    let mut written = 0;
    for block in blocks {
        if connection.write_all(block).is_err() {
            let _ = closed.send(());
            return;
        }
        written += block.len();
        if written > ENDLESS {
            break;
        }
    }
    let _ = connection.shutdown(Shutdown::Both);
}

fn chunk(delta: Value) -> Vec<u8> {
    let data = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "scripted",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": null }],
    });
    format!("data: {data}\n\n").into_bytes()
}

/// Forwards one request to `target` with `connection: close`, and its answer back as it
/// comes.
fn pass_through(client: &mut TcpStream, target: &str, head: &str, body: &[u8]) {
    let Ok(mut server) = TcpStream::connect(target) else {
        return;
    };
    let head: String = head
        .lines()
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .map(|line| format!("{line}\r\n"))
        .collect();
    let _ = server.write_all(format!("{head}connection: close\r\n\r\n").as_bytes());
    let _ = server.write_all(body);
    let _ = std::io::copy(&mut server, client);
    let _ = client.shutdown(Shutdown::Both);
}
