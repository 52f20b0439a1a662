//! What an anonymous or hostile client tries, over real TCP: `Expect: 100-continue`,
//! rate limits dodged with IPv6 or mapped addresses, login storms, look-alike emails,
//! NUL in passwords, tokens we never issue, HEAD, and a world-readable database.

use chrono::Utc;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::api_tests;
use crate::support::{SECRET, TestApp, credentials, messages_path};

api_tests!(
    expect_100_continue_is_refused_before_the_body_when_it_would_be_refused_after,
    a_nul_in_a_password_is_422_at_registration_and_at_login,
    nfc_and_nfd_spellings_of_an_email_are_one_account,
    invisible_and_bidi_control_characters_in_an_email_are_422,
    tokens_we_never_issue_are_401,
    head_answers_wherever_get_does,
);

fn expect_100_continue_is_refused_before_the_body_when_it_would_be_refused_after(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");

    let too_large = api.raw(
        b"POST /chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 10485760\r\nExpect: 100-continue\r\n\r\n",
    );
    let anonymous = api.raw(
        b"POST /chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 2\r\nExpect: 100-continue\r\nOrigin: http://localhost:5173\r\n\r\n",
    );
    let forged = api.raw(
        b"PATCH /chats/0190b6b2-0000-7000-8000-000000000000 HTTP/1.1\r\nHost: x\r\n\
          Authorization: Bearer not.a.token\r\nContent-Type: application/json\r\n\
          Content-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    );
    let welcome = api.raw(
        format!(
            "POST /chats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n{{}}"
        )
        .as_bytes(),
    );
    let login = api.raw(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 2\r\nExpect: 100-continue\r\n\r\n{}",
    );

    assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
    assert!(
        too_large.contains(r#"{"detail":"Request body too large"#),
        "{too_large}"
    );
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    assert!(
        anonymous.contains(r#"{"detail":"Not authenticated"}"#),
        "{anonymous}"
    );
    assert!(
        anonymous
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: http://localhost:5173"),
        "{anonymous}"
    );
    assert!(forged.starts_with("HTTP/1.1 401"), "{forged}");
    for refused in [&too_large, &anonymous, &forged] {
        assert!(!refused.contains("100 Continue"), "{refused}");
    }
    assert!(welcome.starts_with("HTTP/1.1 100 Continue"), "{welcome}");
    assert!(welcome.contains("HTTP/1.1 201"), "{welcome}");
    assert!(login.starts_with("HTTP/1.1 100 Continue"), "{login}");
}

fn a_nul_in_a_password_is_422_at_registration_and_at_login(api: &TestApp) {
    api.register("ada@example.com", "password1");

    let register = api
        .request("POST", "/auth/register")
        .json(&credentials("bob@example.com", "password1\u{0}"))
        .send();
    let login = api
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", "password1\u{0}"))
        .send();

    register.assert_invalid(json!(["body", "password"]), "value_error");
    login.assert_invalid(json!(["body", "password"]), "value_error");
    assert_eq!(api.count("users", "email = 'bob@example.com'"), 0);
}

fn nfc_and_nfd_spellings_of_an_email_are_one_account(api: &TestApp) {
    let token = api.register("jos\u{e9}@example.com", "password1");

    let twin = api
        .request("POST", "/auth/register")
        .json(&credentials("jose\u{301}@example.com", "password2"))
        .send();
    let login = api
        .request("POST", "/auth/login")
        .json(&credentials("JOSE\u{301}@example.com", "password1"))
        .send();

    twin.assert_detail(409, "Email already registered");
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(
        api.get("/auth/me", &token).json()["email"],
        "jos\u{e9}@example.com"
    );
}

fn invisible_and_bidi_control_characters_in_an_email_are_422(api: &TestApp) {
    for email in [
        "ada\u{200b}@example.com",
        "ada@exa\u{200d}mple.com",
        "\u{feff}ada@example.com",
        "ada\u{202e}@example.com",
        "ad\u{2067}a@example.com",
    ] {
        let reply = api
            .request("POST", "/auth/register")
            .json(&credentials(email, "password1"))
            .send();
        reply.assert_invalid(json!(["body", "email"]), "value_error");
    }
    assert_eq!(api.count("users", "1 = 1"), 0);
}

fn tokens_we_never_issue_are_401(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    let id = api.get("/auth/me", &token).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let now = Utc::now().timestamp();
    let sign = |claims: Value| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let good = sign(json!({ "sub": id, "iat": now, "exp": now + 600 }));
    assert_eq!(api.get("/auth/me", &good).status, 200, "the control");

    for (why, claims) in [
        (
            "not valid before a future time",
            json!({ "sub": id, "iat": now, "exp": now + 600, "nbf": now + 300 }),
        ),
        (
            "expiring now (expired on or after exp)",
            json!({ "sub": id, "iat": now - 60, "exp": now }),
        ),
        (
            "sub in upper case",
            json!({ "sub": id.to_uppercase(), "iat": now, "exp": now + 600 }),
        ),
        (
            "sub in braces",
            json!({ "sub": uuid.braced().to_string(), "iat": now, "exp": now + 600 }),
        ),
        (
            "sub as a URN",
            json!({ "sub": uuid.urn().to_string(), "iat": now, "exp": now + 600 }),
        ),
        (
            "sub without hyphens",
            json!({ "sub": uuid.simple().to_string(), "iat": now, "exp": now + 600 }),
        ),
    ] {
        let reply = api.get("/auth/me", &sign(claims));
        assert_eq!(reply.status, 401, "{why}: {}", reply.text);
    }
}

fn head_answers_wherever_get_does(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    let chat = api.new_chat(&token);

    for path in [
        "/health".to_owned(),
        "/health/ready".to_owned(),
        "/docs/".to_owned(),
        "/openapi.json".to_owned(),
        "/auth/me".to_owned(),
        "/chats".to_owned(),
        format!("/chats/{chat}"),
        messages_path(&chat),
    ] {
        let get = api.request("GET", &path).token(&token).send();
        let head = api.request("HEAD", &path).token(&token).send();
        assert_eq!((head.status, get.status), (200, 200), "HEAD {path}");
        assert_eq!(head.text, "", "HEAD {path} has no body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
    let anonymous = api.request("HEAD", "/auth/me").send();
    assert_eq!(anonymous.status, 401);
    // /docs points to /docs/ (the agent follows no redirect): HEAD the same as GET.
    let (get, head) = (
        api.request("GET", "/docs").send(),
        api.request("HEAD", "/docs").send(),
    );
    assert_eq!(
        (head.status, head.header("location")),
        (get.status, get.header("location"))
    );
}

/// The rate limit keeps its budgets in the database: these run on both backends.
mod rate_limited {
    use super::{TestApp, credentials};

    memlayer_testkit::on_both_backends!(
        |db| crate::support::TestApp::start_with(
            db,
            &[
                ("AUTH_RATE_LIMIT_PER_MINUTE", "3"),
                ("TRUST_FORWARDED_FOR", "true"),
            ],
        );
        the_rate_limit_counts_an_ipv6_64_as_one_client_and_a_mapped_ipv4_as_itself,
        a_refused_attempt_spends_nothing_and_says_how_long_to_wait,
        a_credential_request_without_a_token_is_401_and_spends_no_attempt,
    );

    fn a_credential_request_without_a_token_is_401_and_spends_no_attempt(api: &TestApp) {
        let from = "203.0.113.8";
        let unauthenticated: Vec<u16> = (0..3)
            .flat_map(|_| {
                [
                    api.request("POST", "/auth/password")
                        .header("x-forwarded-for", from)
                        .json(&serde_json::json!({
                            "current_password": "password1",
                            "new_password": "password2",
                        }))
                        .send()
                        .status,
                    api.request("DELETE", "/auth/me")
                        .header("x-forwarded-for", from)
                        .json(&serde_json::json!({ "password": "password1" }))
                        .send()
                        .status,
                ]
            })
            .collect();
        let logins: Vec<u16> = (0..4)
            .map(|_| {
                api.request("POST", "/auth/login")
                    .header("x-forwarded-for", from)
                    .json(&credentials("nobody@example.com", "password1"))
                    .send()
                    .status
            })
            .collect();

        assert_eq!(unauthenticated, [401; 6]);
        assert_eq!(logins, [401, 401, 401, 429], "the whole budget was left");
    }

    fn the_rate_limit_counts_an_ipv6_64_as_one_client_and_a_mapped_ipv4_as_itself(api: &TestApp) {
        let login_from = |address: &str| {
            api.request("POST", "/auth/login")
                .header("x-forwarded-for", address)
                .json(&credentials("nobody@example.com", "password1"))
                .send()
                .status
        };

        let one_64: Vec<u16> = [
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
            "[2001:db8:1:2::99]:443",
        ]
        .iter()
        .map(|address| login_from(address))
        .collect();
        let next_64 = login_from("2001:db8:1:3::1");
        let mapped: Vec<u16> = [
            "::ffff:198.51.100.9",
            "198.51.100.9",
            "::ffff:c633:6409",
            "198.51.100.9",
        ]
        .iter()
        .map(|address| login_from(address))
        .collect();

        assert_eq!(one_64, [401, 401, 401, 429]);
        assert_eq!(next_64, 401, "another /64 is another client");
        assert_eq!(mapped, [401, 401, 401, 429]);
    }

    fn a_refused_attempt_spends_nothing_and_says_how_long_to_wait(api: &TestApp) {
        let login = || {
            api.request("POST", "/auth/login")
                .header("x-forwarded-for", "203.0.113.7")
                .json(&credentials("nobody@example.com", "password1"))
                .send()
        };
        let admitted: Vec<u16> = (0..3).map(|_| login().status).collect();

        let refused: Vec<_> = (0..5).map(|_| login()).collect();

        assert_eq!(admitted, [401; 3], "three a minute, all at once");
        // One attempt comes back every 20 s, however many were refused meanwhile.
        for reply in &refused {
            assert_eq!(reply.status, 429, "{}", reply.text);
            let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=20).contains(&wait), "{wait}");
            reply.assert_detail(
                429,
                &format!("Too many attempts: try again in {wait} seconds"),
            );
        }
        assert_eq!(api.db().count("SELECT COUNT(*) FROM attempt_budgets"), 1);
    }
}

#[test]
fn logins_past_the_queue_bound_get_503_with_retry_after_at_once() {
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[
            ("BCRYPT_CONCURRENCY", "1"),
            ("BCRYPT_QUEUE_LENGTH", "0"),
            ("BCRYPT_COST", "11"),
        ],
    );
    api.register("ada@example.com", "password1");

    let replies = std::sync::Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let reply = api
                    .request("POST", "/auth/login")
                    .json(&credentials("ada@example.com", "password1"))
                    .send();
                replies.lock().unwrap().push(reply);
            });
        }
    });

    let replies = replies.into_inner().unwrap();
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        replies.iter().any(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(!busy.is_empty(), "eight logins at once, one slot, no queue");
    for reply in busy {
        reply.assert_detail(503, "Too many logins at once: try again in 2 seconds");
        assert_eq!(reply.header("retry-after"), Some("2"));
    }
}

#[test]
fn a_login_the_password_queue_refuses_gives_its_attempt_back() {
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[
            ("BCRYPT_CONCURRENCY", "1"),
            ("BCRYPT_QUEUE_LENGTH", "0"),
            ("BCRYPT_COST", "11"),
            ("AUTH_RATE_LIMIT_PER_MINUTE", "8"),
        ],
    );
    let ada = credentials("ada@example.com", "password1");
    let login = || api.request("POST", "/auth/login").json(&ada).send().status;
    let registered = api.request("POST", "/auth/register").json(&ada).send();
    assert_eq!(registered.status, 201, "{}", registered.text);

    let statuses = std::sync::Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for _ in 0..7 {
            scope.spawn(|| {
                let status = login();
                statuses.lock().unwrap().push(status);
            });
        }
    });
    let statuses = statuses.into_inner().unwrap();
    let busy = statuses.iter().filter(|&&status| status == 503).count();
    let after: Vec<u16> = (0..busy).map(|_| login()).collect();

    assert!(
        busy > 0,
        "seven logins at once, one slot, no queue: {statuses:?}"
    );
    // Eight a minute: one for the registration, the rest for the logins that got a turn,
    // and as many again as were refused for want of one.
    assert_eq!(after, vec![200; busy], "{statuses:?}");
}

#[cfg(unix)]
#[test]
fn the_embedded_database_folder_and_files_are_private_to_the_service() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = memlayer_testkit::TestDatabase::sqlite();
    let folder = scratch.sqlite_dir().unwrap().join("data");
    let url = format!("sqlite://{}", folder.join("memlayer.db").display());
    let api = TestApp::start_on(&url, &[]);
    let token = api.register("ada@example.com", "password1");
    api.post_message(&token, &api.new_chat(&token), "private");

    let mode = |name: &str| {
        std::fs::metadata(folder.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the folder");
    for name in ["memlayer.db", "memlayer.db-wal", "memlayer.db-shm"] {
        assert_eq!(mode(name), 0o600, "{name}");
    }
}

/// Sends `request` on a new connection and reads until the service closes it (the
/// read timeout is only a guard against a hang).
fn until_closed(api: &TestApp, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(api.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the service closes the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_stalled_body_gets_a_json_408_and_its_connection_is_closed() {
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[("REQUEST_BODY_TIMEOUT_SECS", "1")],
    );

    let short = until_closed(
        &api,
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\nOrigin: http://localhost:5173\r\n\r\n{",
    );
    let chunked = until_closed(
        &api,
        b"POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\n{\"em",
    );
    // Routes that read no body answer at once, then close instead of draining.
    let unread = until_closed(
        &api,
        b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    );
    let anonymous = until_closed(
        &api,
        b"POST /chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{",
    );

    for stalled in [&short, &chunked] {
        assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
        assert!(
            stalled.ends_with(
                r#"{"detail":"Request Timeout: the body did not arrive within 1 seconds"}"#
            ),
            "{stalled}"
        );
    }
    assert!(
        short
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: http://localhost:5173"),
        "{short}"
    );
    assert!(unread.starts_with("HTTP/1.1 200"), "{unread}");
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
}

#[test]
fn a_client_past_its_share_of_connections_is_turned_away_while_others_are_served() {
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::time::Duration;

    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[
            ("MAX_CONNECTIONS_PER_CLIENT", "8"),
            ("REQUEST_HEAD_TIMEOUT_SECS", "120"),
        ],
    );
    let server: SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();
    // A client at 127.0.0.2 opens stalled connections (a head that never ends).
    let connect_from_second_address = || {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.connect(&server.into()).unwrap();
        let mut stream: std::net::TcpStream = socket.into();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let mut connections: Vec<std::net::TcpStream> =
        (0..12).map(|_| connect_from_second_address()).collect();

    // Past its eight, its connections are closed at once, unanswered (which four depends
    // on the order the workers took them in).
    for connection in &connections {
        connection.set_nonblocking(true).unwrap();
    }
    let closed = |connection: &mut std::net::TcpStream| match connection.read(&mut [0; 1]) {
        Ok(0) => true,
        Ok(_) => panic!("a stalled connection was answered"),
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut gone = 0;
    let mut held = loop {
        connections.retain_mut(|connection| {
            let is_closed = closed(connection);
            gone += usize::from(is_closed);
            !is_closed
        });
        if gone >= 4 {
            break connections;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {gone} of 4 were closed"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(gone, 4, "more than the share was closed");
    // Another client (the test's own address, 127.0.0.1) is served.
    let health = api.request("GET", "/health").send();
    assert_eq!(health.status, 200);
    assert!(!held.iter_mut().any(closed), "a held one was closed");
    // The first client's slots come back when its connections close.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from_second_address();
        again.write_all(b"\r\n").unwrap();
        let mut answer = [0; 12];
        if again.read_exact(&mut answer).is_ok() {
            assert_eq!(&answer, b"HTTP/1.1 200");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slots never came back"
        );
    }
}
