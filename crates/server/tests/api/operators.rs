//! Operators in control (issue 19): what replies cost (usage per reply, the daily
//! ledger, `GET /auth/me/usage`), the daily token quota, admins and their routes,
//! disabled accounts, the "at least one enabled admin" rule, and `memlayer admin`.
//! Against a scripted model (`upstream.rs`), on both databases; the shared limits with
//! two instances on one PostgreSQL; the command as the operator runs it.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use memlayer_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::process::memlayer;
use crate::support::{SECRET, TestApp, credentials, messages_path, wait_until};
use crate::upstream::{Script, Upstream, WithScriptedModel};

/// The service over `db` with a scripted model and a daily quota of 20 tokens.
fn with_quota(db: TestDatabase) -> WithScriptedModel {
    WithScriptedModel::start(
        db,
        &[
            ("ASSISTANT_TIMEOUT_SECS", "10"),
            ("USER_TOKENS_PER_DAY", "20"),
        ],
    )
}

mod quota {
    use super::*;

    memlayer_testkit::on_both_backends!(crate::operators::with_quota;
        a_reply_carries_the_reported_usage_and_it_counts_on_the_day,
        a_stopped_reply_carries_an_estimate,
        past_the_daily_quota_a_reply_is_429_until_the_next_utc_day_before_anything_is_stored,
        an_admins_limit_for_a_user_overrides_the_default,
        a_title_request_counts_on_the_day_not_on_a_message,
        the_usage_is_read_wherever_the_model_puts_it,
        a_reply_deleted_while_it_is_written_still_counts,
        disabling_an_account_stops_its_replies,
    );
}

fn the_usage_is_read_wherever_the_model_puts_it(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![
        Script::ReportedWithText(vec!["In", " the text"], 4, 2),
        Script::LengthReported(vec!["Cut", " here"], 6, 3),
        Script::MalformedUsage(vec!["Twelve chars"]),
    ]);

    let with_text = t.api.post(&path, &token, json!({ "content": "A" })).json();
    let at_length = t.api.post(&path, &token, json!({ "content": "B" })).json();
    let malformed = t.api.post(&path, &token, json!({ "content": "C" })).json();

    assert_eq!(
        (&with_text["status"], &with_text["content"]),
        (&json!("complete"), &json!("In the text"))
    );
    assert_eq!(
        with_text["usage"],
        json!({ "prompt_tokens": 4, "completion_tokens": 2, "estimated": false })
    );
    // Cut by the model at max_tokens: stopped, with the usage it reported after.
    assert_eq!(
        (&at_length["status"], &at_length["content"]),
        (&json!("stopped"), &json!("Cut here"))
    );
    assert_eq!(
        at_length["usage"],
        json!({ "prompt_tokens": 6, "completion_tokens": 3, "estimated": false })
    );
    // Figures that are not whole numbers are no report: the reply is whole, estimated.
    assert_eq!(malformed["status"], "complete", "{malformed}");
    assert_eq!(malformed["usage"]["estimated"], true, "{malformed}");
    assert_eq!(malformed["usage"]["completion_tokens"], 3);
}

fn a_reply_deleted_while_it_is_written_still_counts(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::StallAfter(vec!["abcdefgh"])]);
    let mut events = t
        .api
        .post_streamed(&path, &token, json!({ "content": "Twelve chars" }));
    while events.next_event().is_some_and(|(name, _)| name != "delta") {}

    let chat = path.trim_end_matches("/messages");
    assert_eq!(t.api.call("DELETE", chat, &token, None).status, 204);
    let rest: Vec<String> =
        std::iter::from_fn(|| events.next_event().map(|(name, _)| name)).collect();

    assert_eq!(rest.last().map(String::as_str), Some("error"), "{rest:?}");
    // 12 characters sent, 8 written: 3 and 2 tokens, though the reply is gone.
    assert_eq!(usage(&t.api, &token)["tokens_used"], 5);
}

fn a_title_request_counts_on_the_day_not_on_a_message(t: &WithScriptedModel) {
    let token = t.api.new_user();
    // No title: the model names the chat from its first question, in a request of its
    // own (the two requests run at once, in either order).
    let chat = t.api.post("/chats", &token, json!({})).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = messages_path(&chat);
    t.upstream
        .script_titles(vec![Script::Reported(vec!["Lisbon"], 4, 1)]);
    t.upstream
        .script(vec![Script::Reported(vec!["Go to Belém"], 5, 2)]);

    let posted = t.api.post(&path, &token, json!({ "content": "A trip?" }));

    assert_eq!(posted.status, 201, "{}", posted.text);
    wait_until("the chat named", Duration::from_secs(10), || {
        t.api.get(&format!("/chats/{chat}"), &token).json()["title"] == "Lisbon"
    });
    assert_eq!(t.upstream.requests().len(), 2);
    assert_eq!(posted.json()["usage"]["prompt_tokens"], 5);
    assert_eq!(
        usage(&t.api, &token)["tokens_used"],
        12,
        "the reply's 7 and the title's 5"
    );
}

fn disabling_an_account_stops_its_replies(t: &WithScriptedModel) {
    let (_, admin_token) = admin(&t.api);
    let (_, token, id) = user(&t.api);
    let path = messages_path(&t.api.new_chat(&token));
    t.upstream
        .script(vec![Script::StallAfter(vec!["Still", " going"])]);
    let mut events = t
        .api
        .post_streamed(&path, &token, json!({ "content": "Go on" }));
    while events.next_event().is_some_and(|(name, _)| name != "delta") {}

    let disabled = t.api.call(
        "PATCH",
        &format!("/admin/users/{id}"),
        &admin_token,
        Some(&json!({ "disabled": true })),
    );

    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert!(
        t.upstream.closed(Duration::from_secs(10)),
        "the model's connection was closed"
    );
    wait_until("the reply stored stopped", Duration::from_secs(10), || {
        t.api.count(
            "messages",
            "role = 'assistant' AND status = 'stopped' AND content = 'Still going'",
        ) == 1
    });
    // Its stream ended too (revoked, or with the reply).
    let rest: Vec<String> =
        std::iter::from_fn(|| events.next_event().map(|(name, _)| name)).collect();
    assert!(
        rest.last()
            .is_some_and(|name| name == "done" || name == "error"),
        "{rest:?}"
    );
}

/// Logs in; the token.
fn login(api: &TestApp, email: &str, password: &str) -> String {
    let reply = api
        .request("POST", "/auth/login")
        .json(&credentials(email, password))
        .send();
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

/// A new account made an admin behind the service's back (as `memlayer admin grant`
/// does; that command has a test of its own): its email and token.
fn admin(api: &TestApp) -> (String, String) {
    let email = format!("admin-{}@example.com", uuid::Uuid::now_v7());
    let token = api.register(&email, "password1");
    api.db().execute(&format!(
        "UPDATE users SET role = 'admin' WHERE email = '{email}'"
    ));
    (email, token)
}

/// A new user: its email, token and id.
fn user(api: &TestApp) -> (String, String, String) {
    let email = format!("user-{}@example.com", uuid::Uuid::now_v7());
    let token = api.register(&email, "password1");
    let id = api.get("/auth/me", &token).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (email, token, id)
}

fn usage(api: &TestApp, token: &str) -> Value {
    let reply = api.get("/auth/me/usage", token);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

fn a_reply_carries_the_reported_usage_and_it_counts_on_the_day(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::Reported(vec!["Hello", " there"], 12, 3)]);

    let posted = t.api.post(&path, &token, json!({ "content": "Hi" }));

    assert_eq!(posted.status, 201, "{}", posted.text);
    let expected = json!({ "prompt_tokens": 12, "completion_tokens": 3, "estimated": false });
    assert_eq!(posted.json()["usage"], expected);
    assert_eq!(
        t.upstream.requests()[0].body["stream_options"],
        json!({ "include_usage": true })
    );
    let listed = t.api.get(&path, &token).json();
    assert_eq!(listed[0]["usage"], json!(null), "the question has none");
    assert_eq!(listed[1]["usage"], expected);
    let exported = t.api.get("/auth/me/export", &token).json();
    assert_eq!(exported["chats"][0]["messages"][1]["usage"], expected);
    let asked_from = chrono::Utc::now();
    let today = usage(&t.api, &token);
    let asked_until = chrono::Utc::now();
    assert_eq!(today["tokens_used"], 15);
    assert_eq!(today["token_limit"], 20);
    assert_eq!(today["generations_running"], 0);
    assert_eq!(today["generation_limit"], 3);
    let start =
        chrono::DateTime::parse_from_rfc3339(today["period_start"].as_str().unwrap()).unwrap();
    let end = chrono::DateTime::parse_from_rfc3339(today["period_end"].as_str().unwrap()).unwrap();
    assert_eq!(end - start, chrono::TimeDelta::days(1));
    assert_eq!(start.timestamp() % 86_400, 0, "a UTC day");
    // The service's clock read a moment in between: the day holds it.
    assert!(start <= asked_until && asked_from < end);

    // Deleting the chat gives no tokens back.
    let chat = path.trim_end_matches("/messages");
    assert_eq!(t.api.call("DELETE", chat, &token, None).status, 204);
    assert_eq!(usage(&t.api, &token)["tokens_used"], 15);
}

fn a_stopped_reply_carries_an_estimate(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::StallAfter(vec!["abcdefghi"])]);
    let mut events = t
        .api
        .post_streamed(&path, &token, json!({ "content": "Twelve chars" }));
    let id = loop {
        let (name, data) = events.next_event().unwrap();
        if name == "delta" {
            break t.api.get(&path, &token).json()[1]["id"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert_ne!(name, "done", "{data}");
    };
    assert_eq!(usage(&t.api, &token)["generations_running"], 1);

    let stopped = t
        .api
        .post(&format!("{path}/{id}/stop"), &token, json!(null));
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    let done = loop {
        let (name, data) = events.next_event().unwrap();
        if name == "done" {
            break data;
        }
    };

    // 12 characters sent, 9 written: 3 and 3 tokens, rounded up.
    let expected = json!({ "prompt_tokens": 3, "completion_tokens": 3, "estimated": true });
    assert_eq!(done["status"], "stopped");
    assert_eq!(done["usage"], expected);
    assert_eq!(t.api.get(&path, &token).json()[1]["usage"], expected);
    assert_eq!(usage(&t.api, &token)["tokens_used"], 6);
}

fn past_the_daily_quota_a_reply_is_429_until_the_next_utc_day_before_anything_is_stored(
    t: &WithScriptedModel,
) {
    let (token, path) = t.chat();
    t.upstream.script(vec![
        Script::Reported(vec!["One"], 12, 3),
        // Below the quota when it starts: it runs to its end, past the quota.
        Script::Reported(vec!["Two"], 10, 5),
    ]);
    assert_eq!(
        t.api.post(&path, &token, json!({ "content": "A" })).status,
        201
    );
    let second = t.api.post(&path, &token, json!({ "content": "B" }));
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(usage(&t.api, &token)["tokens_used"], 30);
    let asked = t.upstream.requests().len();
    let before = t.api.get(&path, &token).json();
    let asked_from = chrono::Utc::now().timestamp();

    let refused = t.api.post(&path, &token, json!({ "content": "C" }));
    let streamed = t
        .api
        .post_streamed(&path, &token, json!({ "content": "D" }));
    let question = before[2]["id"].as_str().unwrap();
    let answer = before[3]["id"].as_str().unwrap();
    let regenerated = t
        .api
        .post(&format!("{path}/{answer}/regenerate"), &token, json!(null));
    let edited = t.api.post(
        &format!("{path}/{question}/edit"),
        &token,
        json!({ "content": "B again" }),
    );

    for refused in [&refused, &regenerated, &edited] {
        assert_eq!(refused.status, 429, "{}", refused.text);
        assert!(
            refused.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with("You have used today's tokens"),
            "{}",
            refused.text
        );
        // Seconds to the next UTC midnight as the service saw it, some time between
        // the first request and now (which may have crossed a midnight).
        let retry: i64 = refused.header("retry-after").unwrap().parse().unwrap();
        let to_midnight = |at: i64| 86_400 - at.rem_euclid(86_400);
        let (early, late) = (
            to_midnight(asked_from),
            to_midnight(chrono::Utc::now().timestamp()),
        );
        let counts_to_midnight = if early >= late {
            (late - 2..=early + 2).contains(&retry)
        } else {
            retry <= early + 2 || retry >= late - 2
        };
        assert!(counts_to_midnight, "{retry}");
    }
    assert_eq!(streamed.status, 429);
    assert_eq!(t.api.get(&path, &token).json(), before, "nothing stored");
    assert_eq!(
        t.upstream.requests().len(),
        asked,
        "the model was not asked"
    );
    // Another user is not concerned.
    let (stranger, theirs) = t.chat();
    t.upstream
        .script(vec![Script::Reported(vec!["Yours"], 1, 1)]);
    assert_eq!(
        t.api
            .post(&theirs, &stranger, json!({ "content": "Hi" }))
            .status,
        201
    );
}

fn an_admins_limit_for_a_user_overrides_the_default(t: &WithScriptedModel) {
    let (_, admin_token) = admin(&t.api);
    let (_, token, id) = user(&t.api);
    let path = messages_path(&t.api.new_chat(&token));
    t.upstream.script(vec![
        Script::Reported(vec!["One"], 15, 10),
        Script::Reported(vec!["Two"], 1, 1),
    ]);
    assert_eq!(
        t.api.post(&path, &token, json!({ "content": "A" })).status,
        201
    );
    assert_eq!(
        t.api.post(&path, &token, json!({ "content": "B" })).status,
        429
    );

    let raised = t.api.call(
        "PATCH",
        &format!("/admin/users/{id}"),
        &admin_token,
        Some(&json!({ "token_limit": 100 })),
    );
    assert_eq!(raised.status, 200, "{}", raised.text);
    assert_eq!(raised.json()["token_limit"], 100);
    assert_eq!(raised.json()["tokens_used"], 25);
    assert_eq!(usage(&t.api, &token)["token_limit"], 100);
    assert_eq!(
        t.api.post(&path, &token, json!({ "content": "B" })).status,
        201
    );

    // Zero: no more today; null: the operator's default again.
    let patch = |limit: Value| {
        t.api.call(
            "PATCH",
            &format!("/admin/users/{id}"),
            &admin_token,
            Some(&json!({ "token_limit": limit })),
        )
    };
    assert_eq!(patch(json!(0)).status, 200);
    assert_eq!(usage(&t.api, &token)["token_limit"], 0);
    assert_eq!(
        t.api.post(&path, &token, json!({ "content": "C" })).status,
        429
    );
    let reset = patch(json!(null));
    assert_eq!(reset.json()["token_limit"], json!(null));
    assert_eq!(usage(&t.api, &token)["token_limit"], 20);
}

/// The service over `db`, with no model.
fn plain(db: TestDatabase) -> TestApp {
    TestApp::start(db)
}

memlayer_testkit::on_both_backends!(crate::operators::plain;
    the_admin_routes_are_for_admins_only,
    an_admin_lists_accounts_by_email_with_their_chats_and_tokens_page_by_page,
    an_admin_creates_an_account,
    disabling_an_account_revokes_its_tokens_and_refuses_its_logins,
    a_change_of_role_applies_to_the_tokens_an_account_has,
    no_change_may_leave_no_enabled_admin,
    bad_input_to_the_admin_routes_is_a_clear_4xx,
    the_default_assistant_has_no_usage_and_costs_nothing,
);

fn the_admin_routes_are_for_admins_only(t: &TestApp) {
    let (_, token, id) = user(t);
    let me = t.get("/auth/me", &token).json();
    assert_eq!(me["role"], "user");
    let user_path = format!("/admin/users/{id}");
    let calls = [
        ("GET", "/admin/users", None),
        (
            "POST",
            "/admin/users",
            Some(credentials("x@example.com", "password1")),
        ),
        (
            "PATCH",
            user_path.as_str(),
            Some(json!({ "disabled": true })),
        ),
        ("DELETE", user_path.as_str(), None),
    ];
    for (method, path, body) in &calls {
        let reply = t.call(method, path, &token, body.as_ref());
        reply.assert_detail(403, "Only an admin may do this");
        let anonymous = t.call(method, path, "", body.as_ref());
        assert_eq!(anonymous.status, 401, "{method} {path}: {}", anonymous.text);
    }
    assert_eq!(t.get("/auth/me", &token).status, 200, "nothing changed");
}

fn an_admin_lists_accounts_by_email_with_their_chats_and_tokens_page_by_page(t: &TestApp) {
    let (_, admin_token) = admin(t);
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let mut ids = Vec::new();
    for n in 0..3 {
        let email = format!("{tag}-{n}@Example.com");
        let token = t.register(&email, "password1");
        for _ in 0..n {
            t.new_chat(&token);
        }
        ids.push(t.get("/auth/me", &token).json()["id"].clone());
    }

    let first = t.get(
        &format!("/admin/users?q={}&limit=2", tag.to_uppercase()),
        &admin_token,
    );
    assert_eq!(first.status, 200, "{}", first.text);
    let page = first.json();
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["id"], ids[2], "newest first");
    assert_eq!(page[0]["email"], format!("{tag}-2@example.com"));
    assert_eq!(page[0]["chats"], 2);
    assert_eq!(page[0]["tokens_used"], 0);
    assert_eq!(page[0]["role"], "user");
    assert_eq!(page[0]["disabled"], false);
    assert_eq!(page[0]["token_limit"], json!(null));
    let cursor = first
        .header("x-next-cursor")
        .expect("a next page")
        .to_owned();
    let second = t.get(
        &format!("/admin/users?q={tag}&limit=2&cursor={cursor}"),
        &admin_token,
    );
    let rest = second.json();
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["id"], ids[0]);
    assert_eq!(rest[0]["chats"], 0);
    assert!(second.header("x-next-cursor").is_none());
    // `%` and `_` are plain characters, not patterns.
    assert_eq!(t.get("/admin/users?q=%25", &admin_token).json(), json!([]));
    assert_eq!(t.get("/admin/users?q=_", &admin_token).json(), json!([]));
    let all = t.get("/admin/users", &admin_token).json();
    assert!(all.as_array().unwrap().len() >= 4);
}

fn an_admin_creates_an_account(t: &TestApp) {
    let (_, admin_token) = admin(t);
    let email = format!("made-{}@example.com", uuid::Uuid::now_v7());

    let created = t.post(
        "/admin/users",
        &admin_token,
        credentials(&email, "password1"),
    );

    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["email"], email);
    assert_eq!(created.json()["role"], "user");
    assert_eq!(created.json()["chats"], 0);
    login(t, &email, "password1");
    t.post(
        "/admin/users",
        &admin_token,
        credentials(&email, "password1"),
    )
    .assert_detail(409, "Email already registered");
    let short = t.post(
        "/admin/users",
        &admin_token,
        credentials("new@example.com", "short"),
    );
    assert_eq!(short.status, 422, "{}", short.text);
}

fn disabling_an_account_revokes_its_tokens_and_refuses_its_logins(t: &TestApp) {
    let (_, admin_token) = admin(t);
    let (email, token, id) = user(t);
    let chat = t.new_chat(&token);

    let disabled = t.call(
        "PATCH",
        &format!("/admin/users/{id}"),
        &admin_token,
        Some(&json!({ "disabled": true })),
    );

    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(disabled.json()["disabled"], true);
    assert_eq!(t.get(&format!("/chats/{chat}"), &token).status, 401);
    assert_eq!(t.get("/auth/me/usage", &token).status, 401);
    t.request("POST", "/auth/login")
        .json(&credentials(&email, "password1"))
        .send()
        .assert_detail(403, "This account is disabled");
    // A wrong password says nothing of the account.
    assert_eq!(
        t.request("POST", "/auth/login")
            .json(&credentials(&email, "password2"))
            .send()
            .status,
        401
    );
    let enabled = t.call(
        "PATCH",
        &format!("/admin/users/{id}"),
        &admin_token,
        Some(&json!({ "disabled": false })),
    );
    assert_eq!(enabled.json()["disabled"], false);
    let again = login(t, &email, "password1");
    assert_eq!(t.get(&format!("/chats/{chat}"), &again).status, 200);
    assert_eq!(
        t.get(&format!("/chats/{chat}"), &token).status,
        401,
        "revoked for good"
    );
}

fn a_change_of_role_applies_to_the_tokens_an_account_has(t: &TestApp) {
    let (_, admin_token) = admin(t);
    let (_, token, id) = user(t);
    let path = format!("/admin/users/{id}");
    let promoted = t.call(
        "PATCH",
        &path,
        &admin_token,
        Some(&json!({ "role": "admin" })),
    );
    assert_eq!(promoted.json()["role"], "admin");
    assert_eq!(t.get("/admin/users", &token).status, 200);
    assert_eq!(t.get("/auth/me", &token).json()["role"], "admin");
    let demoted = t.call("PATCH", &path, &token, Some(&json!({ "role": "user" })));
    assert_eq!(demoted.status, 200, "{}", demoted.text);
    assert_eq!(t.get("/admin/users", &token).status, 403);
}

fn no_change_may_leave_no_enabled_admin(t: &TestApp) {
    // Whatever admins other tests of this database made, this test makes its own and
    // removes the others first.
    let (email, token) = admin(t);
    t.db().execute(&format!(
        "UPDATE users SET role = 'user' WHERE email <> '{email}'"
    ));
    let id = t.get("/auth/me", &token).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/users/{id}");
    let last = "There must be at least one enabled admin: make another admin first";

    t.call("PATCH", &path, &token, Some(&json!({ "role": "user" })))
        .assert_detail(409, last);
    t.call("PATCH", &path, &token, Some(&json!({ "disabled": true })))
        .assert_detail(409, last);
    t.call("DELETE", &path, &token, None)
        .assert_detail(409, last);
    t.call(
        "DELETE",
        "/auth/me",
        &token,
        Some(&json!({ "password": "password1" })),
    )
    .assert_detail(409, last);
    assert_eq!(t.get("/admin/users", &token).status, 200, "still an admin");

    // Two admins demoting each other at once: one wins.
    for _ in 0..5 {
        let (_, other) = admin(t);
        let other_id = t.get("/auth/me", &other).json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let results: Vec<u16> = std::thread::scope(|scope| {
            let a = scope.spawn(|| {
                t.call(
                    "PATCH",
                    &format!("/admin/users/{other_id}"),
                    &token,
                    Some(&json!({ "role": "user" })),
                )
                .status
            });
            let b = scope.spawn(|| {
                t.call("PATCH", &path, &other, Some(&json!({ "role": "user" })))
                    .status
            });
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        let mut sorted = results.clone();
        sorted.sort_unstable();
        // The loser is refused as the last admin, or (demoted first) as no admin.
        assert!(sorted == [200, 403] || sorted == [200, 409], "{results:?}");
        let admins = t.count("users", "role = 'admin' AND NOT disabled");
        assert_eq!(admins, 1);
        if results[1] == 200 {
            // The other one won: it hands back to this test's admin.
            t.db().execute(&format!(
                "UPDATE users SET role = 'admin' WHERE email = '{email}'"
            ));
            t.db().execute(&format!(
                "UPDATE users SET role = 'user' WHERE id = '{other_id}'"
            ));
        }
    }
    // Another enabled admin: now this one may go.
    let (_, other) = admin(t);
    assert_eq!(t.call("DELETE", &path, &other, None).status, 204);
    assert_eq!(t.get("/auth/me", &token).status, 401);
}

fn bad_input_to_the_admin_routes_is_a_clear_4xx(t: &TestApp) {
    let (_, admin_token) = admin(t);
    let (_, _, id) = user(t);
    let path = format!("/admin/users/{id}");
    let patch = |body: Value| t.call("PATCH", &path, &admin_token, Some(&body));

    for body in [
        json!({ "token_limit": -1 }),
        json!({ "token_limit": 1_000_000_000_001_u64 }),
        json!({ "token_limit": 1.5 }),
        json!({ "token_limit": "many" }),
        json!({ "role": "root" }),
        json!({ "role": null }),
        json!({ "disabled": "yes" }),
        json!({ "disabled": null }),
        json!({ "nickname": "x" }),
        json!({}),
        json!([]),
    ] {
        let reply = patch(body.clone());
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(reply.json()["detail"].is_array(), "{}", reply.text);
    }
    let unknown = format!("/admin/users/{}", uuid::Uuid::now_v7());
    t.call(
        "PATCH",
        &unknown,
        &admin_token,
        Some(&json!({ "disabled": true })),
    )
    .assert_detail(404, "User not found");
    t.call("DELETE", &unknown, &admin_token, None)
        .assert_detail(404, "User not found");
    let malformed = t.call("DELETE", "/admin/users/not-a-uuid", &admin_token, None);
    malformed.assert_invalid(json!(["path", "user_id"]), "uuid_parsing");
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=nope",
        &format!("q={}", "a".repeat(255)),
    ] {
        let reply = t.get(&format!("/admin/users?{query}"), &admin_token);
        assert_eq!(reply.status, 422, "{query}: {}", reply.text);
    }
}

fn the_default_assistant_has_no_usage_and_costs_nothing(t: &TestApp) {
    let token = t.new_user();
    let chat = t.new_chat(&token);
    let posted = t.post_message(&token, &chat, "Hello");
    assert_eq!(posted.status, 201, "{}", posted.text);
    assert_eq!(posted.json()["usage"], json!(null));
    let streamed = t.post_streamed(&messages_path(&chat), &token, json!({ "content": "Again" }));
    let (name, done) = streamed.all().pop().unwrap();
    assert_eq!(
        (name.as_str(), &done["usage"]),
        ("done", &json!(null)),
        "{done}"
    );
    let today = usage(t, &token);
    assert_eq!(today["tokens_used"], 0);
    assert_eq!(today["token_limit"], json!(null));
}

/// `memlayer admin` as the operator runs it, on `url`: its exit status and output.
fn run_admin(url: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = memlayer(&[
        ("DATABASE_URL", url),
        ("JWT_SECRET", SECRET),
        ("BCRYPT_COST", "4"),
    ])
    .arg("admin")
    .args(args)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn closed_registration(db: TestDatabase) -> TestApp {
    TestApp::start_with(db, &[("REGISTRATION", "closed")])
}

mod shell {
    use super::*;

    memlayer_testkit::on_both_backends!(crate::operators::closed_registration;
        the_operator_makes_the_first_admin_of_a_closed_instance_from_the_shell,
    );
}

fn the_operator_makes_the_first_admin_of_a_closed_instance_from_the_shell(t: &TestApp) {
    let url = t.db().url().to_owned();
    let email = format!("root-{}@example.com", uuid::Uuid::now_v7());

    let (ok, text) = run_admin(&url, &["create", &email], "password1\n");

    assert!(ok, "{text}");
    assert!(text.contains("is a new admin"), "{text}");
    assert!(
        text.contains("admin action"),
        "the structured log line: {text}"
    );
    let token = login(t, &email, "password1");
    assert_eq!(t.get("/auth/me", &token).json()["role"], "admin");
    // The admin makes a user (registration is closed), who is then granted and revoked.
    let member = format!("member-{}@example.com", uuid::Uuid::now_v7());
    assert_eq!(
        t.post("/admin/users", &token, credentials(&member, "password1"))
            .status,
        201
    );
    let (ok, text) = run_admin(&url, &["grant", &member.to_uppercase()], "");
    assert!(ok, "{text}");
    let member_token = login(t, &member, "password1");
    assert_eq!(t.get("/admin/users", &member_token).status, 200);
    let (ok, text) = run_admin(&url, &["revoke", &member], "");
    assert!(ok, "{text}");
    assert_eq!(t.get("/admin/users", &member_token).status, 403);

    // Each refusal exits non-zero with its reason.
    let refusals = [
        (
            vec!["grant", "nobody@example.com"],
            "",
            "no account has this email",
        ),
        (
            vec!["create", email.as_str()],
            "password1\n",
            "an account has this email already",
        ),
        (
            vec!["create", "new@example.com"],
            "short\n",
            "invalid password",
        ),
        (
            vec!["create", "not an email"],
            "password1\n",
            "invalid email",
        ),
        (vec!["grant"], "", "expected grant, revoke or create"),
    ];
    for (args, stdin, reason) in refusals {
        let (ok, text) = run_admin(&url, &args, stdin);
        assert!(!ok && text.contains(reason), "{args:?}: {text}");
    }
    // The last enabled admin cannot be revoked (on a database where it is the only one).
    t.db().execute(&format!(
        "UPDATE users SET role = 'user' WHERE email <> '{email}'"
    ));
    let (ok, text) = run_admin(&url, &["revoke", &email], "");
    assert!(!ok && text.contains("last enabled admin"), "{text}");
    let (ok, text) = run_admin(&url, &["--help"], "");
    assert!(ok && text.contains("memlayer admin create EMAIL"), "{text}");
}

/// The daily quota and the replies at once, with two instances on one PostgreSQL: what
/// one instance counted, the other refuses on.
#[test]
fn the_limits_are_shared_by_instances_on_one_postgresql() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let upstream = Upstream::scripted(vec![]);
    let settings = [
        ("ASSISTANT_URL", upstream.url.as_str()),
        ("ASSISTANT_MODEL", "test-model"),
        ("ASSISTANT_TIMEOUT_SECS", "10"),
        ("USER_TOKENS_PER_DAY", "20"),
        ("USER_MAX_GENERATIONS", "1"),
    ];
    let url = db.url().to_owned();
    let a = TestApp::start_with(db, &settings);
    let b = TestApp::start_on(&url, &settings);
    let token = a.new_user();
    let (one, two) = (
        messages_path(&a.new_chat(&token)),
        messages_path(&a.new_chat(&token)),
    );

    // A reply generating on A: B refuses a second one at once.
    upstream.script(vec![Script::StallAfter(vec!["Busy"])]);
    let mut on_a = a.post_streamed(&one, &token, json!({ "content": "A" }));
    let id = loop {
        let (name, data) = on_a.next_event().unwrap();
        if name == "reply" {
            break data["id"].as_str().unwrap().to_owned();
        }
    };
    b.post(&two, &token, json!({ "content": "B" }))
        .assert_detail(
            429,
            "Too many of your replies are being written at once: wait for one to end",
        );
    assert_eq!(
        b.get("/auth/me/usage", &token).json()["generations_running"],
        1
    );
    assert_eq!(
        b.post(&format!("{one}/{id}/stop"), &token, json!(null))
            .status,
        200
    );
    while on_a.next_event().is_some_and(|(name, _)| name != "done") {}

    // The tokens A counted: B refuses past the quota.
    upstream.script(vec![Script::Reported(vec!["Spent"], 30, 1)]);
    assert_eq!(a.post(&two, &token, json!({ "content": "C" })).status, 201);
    assert!(
        b.get("/auth/me/usage", &token).json()["tokens_used"]
            .as_u64()
            .unwrap()
            > 20
    );
    for instance in [&b, &a] {
        let refused = instance.post(&two, &token, json!({ "content": "D" }));
        assert_eq!(refused.status, 429, "{}", refused.text);
        assert!(refused.text.contains("today's tokens"), "{}", refused.text);
    }
}
