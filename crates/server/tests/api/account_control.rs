//! Accounts a user controls: change the password, log out everywhere, delete the
//! account, take the data away (`/auth/password`, `/auth/logout-all`, `DELETE /auth/me`,
//! `/auth/me/export`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api_tests;
use crate::support::{TestApp, credentials, messages_path};

api_tests!(
    changing_the_password_revokes_every_earlier_token_on_every_route_and_the_fresh_one_works,
    a_wrong_current_password_is_403_and_changes_nothing,
    logging_out_everywhere_revokes_every_token_this_one_included,
    deleting_the_account_removes_it_its_chats_and_messages_and_frees_the_email,
    deleting_the_account_with_a_wrong_password_is_403_and_deletes_nothing,
    the_export_holds_the_account_and_every_chat_with_its_messages_and_nothing_else,
    an_account_of_100_000_messages_is_exported_as_a_stream_while_other_requests_are_served,
);

/// Every authenticated route, with a body where it needs one: each must say 401.
fn assert_revoked_everywhere(api: &TestApp, token: &str, chat: &str) {
    let title = Some(json!({ "title": "t" }));
    let content = Some(json!({ "content": "c" }));
    let password = Some(json!({ "password": "password1" }));
    let change = Some(json!({ "current_password": "password1", "new_password": "password3" }));
    for (method, path, body) in [
        ("GET", "/auth/me".to_owned(), None),
        ("GET", "/auth/me/export".to_owned(), None),
        ("POST", "/auth/logout-all".to_owned(), None),
        ("POST", "/auth/password".to_owned(), change),
        ("DELETE", "/auth/me".to_owned(), password),
        ("GET", "/chats".to_owned(), None),
        ("POST", "/chats".to_owned(), title.clone()),
        ("GET", format!("/chats/{chat}"), None),
        ("PATCH", format!("/chats/{chat}"), title),
        ("GET", messages_path(chat), None),
        ("POST", messages_path(chat), content),
        ("DELETE", format!("/chats/{chat}"), None),
    ] {
        let reply = api.call(method, &path, token, body.as_ref());
        assert_eq!(reply.status, 401, "{method} {path}: {}", reply.text);
        reply.assert_detail(401, "Could not validate credentials");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
}

fn login(api: &TestApp, password: &str) -> (u16, Option<String>) {
    let reply = api
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", password))
        .send();
    let token = reply.json()["access_token"].as_str().map(str::to_owned);
    (reply.status, token)
}

fn changing_the_password_revokes_every_earlier_token_on_every_route_and_the_fresh_one_works(
    api: &TestApp,
) {
    let first = api.register("ada@example.com", "password1");
    // Issued within the same second as the change, most likely: revocation must not
    // depend on the clock's resolution.
    let (_, second) = login(api, "password1");
    let second = second.unwrap();
    let chat = api.new_chat(&first);

    let reply = api.post(
        "/auth/password",
        &first,
        json!({ "current_password": "password1", "new_password": "password2" }),
    );

    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["token_type"], "bearer");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    assert_revoked_everywhere(api, &first, &chat);
    assert_revoked_everywhere(api, &second, &chat);
    assert_eq!(api.get("/auth/me", &fresh).status, 200);
    assert_eq!(api.get(&format!("/chats/{chat}"), &fresh).status, 200);
    assert_eq!(login(api, "password1").0, 401);
    assert_eq!(login(api, "password2").0, 200);
}

fn a_wrong_current_password_is_403_and_changes_nothing(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");

    let wrong = api.post(
        "/auth/password",
        &token,
        json!({ "current_password": "password9", "new_password": "password2" }),
    );
    let weak = api.post(
        "/auth/password",
        &token,
        json!({ "current_password": "password1", "new_password": "short" }),
    );
    let nul = api.post(
        "/auth/password",
        &token,
        json!({ "current_password": "password1", "new_password": "password\u{0}2" }),
    );

    wrong.assert_detail(403, "Incorrect password");
    weak.assert_invalid(json!(["body", "new_password"]), "string_too_short");
    nul.assert_invalid(json!(["body", "new_password"]), "value_error");
    assert_eq!(api.get("/auth/me", &token).status, 200);
    assert_eq!(login(api, "password1").0, 200);
}

fn logging_out_everywhere_revokes_every_token_this_one_included(api: &TestApp) {
    let first = api.register("ada@example.com", "password1");
    let (_, second) = login(api, "password1");
    let chat = api.new_chat(&first);

    let reply = api.request("POST", "/auth/logout-all").token(&first).send();

    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(reply.text, "");
    assert_revoked_everywhere(api, &first, &chat);
    assert_revoked_everywhere(api, &second.unwrap(), &chat);
    let (status, again) = login(api, "password1");
    assert_eq!(status, 200);
    assert_eq!(
        api.get(&format!("/chats/{chat}"), &again.unwrap()).status,
        200
    );
}

fn deleting_the_account_removes_it_its_chats_and_messages_and_frees_the_email(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    let other = api.new_user();
    let chat = api.new_chat(&token);
    let kept = api.new_chat(&other);
    for (who, chat) in [(&token, &chat), (&other, &kept)] {
        let posted = api.post_message(who, chat, "hello");
        assert_eq!(posted.status, 201);
    }
    let id = api.get("/auth/me", &token).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let reply = api
        .request("DELETE", "/auth/me")
        .token(&token)
        .json(&json!({ "password": "password1" }))
        .send();

    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(api.count("users", &format!("id = '{id}'")), 0);
    assert_eq!(api.count("chats", &format!("user_id = '{id}'")), 0);
    assert_eq!(api.count("messages", &format!("user_id = '{id}'")), 0);
    assert_eq!(api.count("messages", &format!("chat_id = '{kept}'")), 2);
    assert_revoked_everywhere(api, &token, &chat);
    api.register("ada@example.com", "password2");
}

fn deleting_the_account_with_a_wrong_password_is_403_and_deletes_nothing(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    api.new_chat(&token);

    let wrong = api
        .request("DELETE", "/auth/me")
        .token(&token)
        .json(&json!({ "password": "password2" }))
        .send();
    let missing = api
        .request("DELETE", "/auth/me")
        .token(&token)
        .json(&json!({}))
        .send();

    wrong.assert_detail(403, "Incorrect password");
    missing.assert_invalid(json!(["body", "password"]), "missing");
    assert_eq!(api.count("users", "email = 'ada@example.com'"), 1);
    assert_eq!(
        api.get("/chats", &token).json().as_array().unwrap().len(),
        1
    );
}

fn the_export_holds_the_account_and_every_chat_with_its_messages_and_nothing_else(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    let other = api.new_user();
    api.post_message(&other, &api.new_chat(&other), "not ada's");
    let empty = api.new_chat(&token);
    let talk = api.new_chat(&token);
    for content in ["first", "second"] {
        api.post_message(&token, &talk, content);
    }
    let me = api.get("/auth/me", &token).json();

    let reply = api.get("/auth/me/export", &token);

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let export = reply.json();
    assert_eq!(export["account"], me, "the account, without its hash");
    let chats = export["chats"].as_array().unwrap();
    let ids: Vec<&str> = chats.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [talk.as_str(), empty.as_str()], "newest first");
    assert_eq!(chats[1]["messages"], json!([]));
    assert_eq!(chats[0]["title"], "A chat");
    let contents: Vec<&str> = chats[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["first", "Message received", "second", "Message received"]
    );
    assert_eq!(
        chats[0]["messages"],
        api.list_messages(&token, &talk).json()
    );
    assert!(!reply.text.contains("not ada's"));
    assert!(!reply.text.contains("$2"), "no password hash");
}

/// Inserts `count` messages into `chat`, behind the service's back (one statement).
fn insert_messages(api: &TestApp, chat: &str, user: &str, count: u32) {
    let url = api.db().url().to_owned();
    let sql = if url.starts_with("sqlite://") {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO messages (id, chat_id, user_id, role, content, created_at, parent_id) \
             SELECT lower(printf('%08x-0000-7000-8000-%012x', 0, i)), '{chat}', '{user}', 'user', \
                    'message ' || i, \
                    strftime('%Y-%m-%dT%H:%M:%S', '2026-01-01', '+' || i || ' seconds') || '.000000Z', \
                    CASE WHEN i > 1 THEN lower(printf('%08x-0000-7000-8000-%012x', 0, i - 1)) END \
             FROM n"
        )
    } else {
        format!(
            "INSERT INTO messages (id, chat_id, user_id, role, content, created_at, parent_id) \
             SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, '{chat}', \
                    '{user}', 'user', 'message ' || i, \
                    timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second', \
                    CASE WHEN i > 1 THEN ('00000000-0000-7000-8000-' || lpad(to_hex(i - 1), 12, '0'))::uuid END \
             FROM generate_series(1, {count}) AS i"
        )
    };
    api.db().execute(&sql);
}

fn an_account_of_100_000_messages_is_exported_as_a_stream_while_other_requests_are_served(
    api: &TestApp,
) {
    const COUNT: u32 = 100_000;
    let token = api.register("ada@example.com", "password1");
    let user = api.get("/auth/me", &token).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chat = api.new_chat(&token);
    insert_messages(api, &chat, &user, COUNT);

    // Read the export slowly over a raw connection: the head arrives, chunked, before
    // the service has read everything; meanwhile other requests are answered.
    let mut stream = TcpStream::connect(api.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET /auth/me/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "streamed, not buffered: {head}"
    );
    assert_eq!(api.get("/chats", &token).status, 200, "served meanwhile");
    assert_eq!(api.get("/health", "").status, 200);

    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..size]);
    }
    let export: Value = serde_json::from_slice(&body).unwrap();
    let messages = export["chats"][0]["messages"].as_array().unwrap();
    assert_eq!(u64::try_from(messages.len()).unwrap(), u64::from(COUNT));
    assert_eq!(messages[0]["content"], "message 1");
    assert_eq!(messages[99_999]["content"], "message 100000");
    assert!(
        messages
            .windows(2)
            .all(|pair| pair[0]["created_at"].as_str() < pair[1]["created_at"].as_str()),
        "oldest first"
    );
}

#[test]
fn wrong_current_passwords_count_toward_the_credential_rate_limit() {
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[("AUTH_RATE_LIMIT_PER_MINUTE", "3")],
    );
    let token = api.register("ada@example.com", "password1");
    let guess = |password: &str| {
        api.post(
            "/auth/password",
            &token,
            json!({ "current_password": password, "new_password": "password2" }),
        )
    };

    assert_eq!(guess("guess one").status, 403);
    assert_eq!(guess("guess two").status, 403);
    let refused = guess("password1");

    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(login(&api, "password1").0, 429, "one budget for all");
}
