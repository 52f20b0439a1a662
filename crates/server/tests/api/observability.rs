//! What an operator sees: a request id on every response, and Prometheus metrics on
//! their own listener.

use std::time::Duration;

use serde_json::json;

use crate::api_tests;
use crate::support::{SPA_ORIGIN, TestApp};
use crate::upstream::{Script, Upstream};

api_tests!(
    a_request_id_sent_by_the_client_is_echoed_on_success_and_on_error,
    a_request_id_is_generated_when_none_or_an_unusable_one_is_sent,
    a_cors_preflight_gets_a_request_id_too,
    an_expect_100_continue_refusal_gets_a_request_id_too,
);

fn a_request_id_sent_by_the_client_is_echoed_on_success_and_on_error(api: &TestApp) {
    let ok = api
        .request("GET", "/health")
        .header("x-request-id", "trace-42.abc_DEF")
        .send();
    let not_found = api
        .request("GET", "/no/such/route")
        .header("x-request-id", "trace-43")
        .send();
    let unauthorised = api
        .request("GET", "/chats")
        .header("x-request-id", "trace-44")
        .send();

    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-request-id"), Some("trace-42.abc_DEF"));
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.header("x-request-id"), Some("trace-43"));
    assert_eq!(unauthorised.status, 401);
    assert_eq!(unauthorised.header("x-request-id"), Some("trace-44"));
}

fn a_request_id_is_generated_when_none_or_an_unusable_one_is_sent(api: &TestApp) {
    let none = api.request("GET", "/health").send();
    let too_long = api
        .request("GET", "/health")
        .header("x-request-id", &"x".repeat(129))
        .send();
    let with_a_space = api
        .request("POST", "/auth/login")
        .header("x-request-id", "two words")
        .json(&json!({}))
        .send();

    for reply in [&none, &too_long, &with_a_space] {
        let id = reply.header("x-request-id").expect("an id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "not a UUID: {id}");
    }
    assert_eq!(with_a_space.status, 422);
    assert_ne!(none.header("x-request-id"), too_long.header("x-request-id"));
}

fn a_cors_preflight_gets_a_request_id_too(api: &TestApp) {
    let preflight = api
        .request("OPTIONS", "/chats")
        .header("origin", SPA_ORIGIN)
        .header("access-control-request-method", "POST")
        .header("x-request-id", "preflight-1")
        .send();

    assert_eq!(preflight.status, 200, "{}", preflight.text);
    assert_eq!(preflight.header("x-request-id"), Some("preflight-1"));
}

fn an_expect_100_continue_refusal_gets_a_request_id_too(api: &TestApp) {
    let refused = api.raw(
        b"POST /chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          X-Request-Id: expect-1\r\nContent-Length: 10485760\r\nExpect: 100-continue\r\n\r\n",
    );

    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("x-request-id: expect-1\r\n"),
        "{refused}"
    );
}

#[test]
fn the_browser_may_read_the_request_id() {
    let api = TestApp::start(memlayer_testkit::TestDatabase::sqlite());

    let reply = api
        .request("GET", "/health")
        .header("origin", SPA_ORIGIN)
        .send();

    let exposed = reply
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

/// The text at `/metrics` on the app's metrics listener.
fn scrape(api: &TestApp) -> String {
    ureq::get(format!(
        "{}/metrics",
        api.metrics_base.as_deref().expect("a metrics address")
    ))
    .call()
    .unwrap()
    .into_body()
    .read_to_string()
    .unwrap()
}

#[test]
fn the_model_servers_latency_is_measured_to_the_first_piece_and_to_the_end() {
    let upstream = Upstream::scripted(vec![Script::Answer(vec!["Hel", "lo"])]);
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("ASSISTANT_URL", &upstream.url),
            ("ASSISTANT_MODEL", "test-model"),
        ],
    );
    let token = api.new_user();
    let chat = api.new_chat(&token);

    let reply = api.post(
        &format!("/chats/{chat}/messages"),
        &token,
        json!({ "content": "Hi" }),
    );
    let metrics = scrape(&api);

    assert_eq!(reply.status, 201, "{}", reply.text);
    for until in ["first_piece", "end"] {
        assert!(
            metrics.lines().any(|line| line
                .starts_with("memlayer_assistant_upstream_seconds_count{")
                && line.contains(&format!(r#"until="{until}""#))),
            "{until}: {metrics}"
        );
    }
}

#[test]
fn metrics_are_served_on_their_own_listener_by_route_template_and_never_on_the_public_port() {
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[("METRICS_ADDR", "127.0.0.1:0")],
    );
    let token = api.new_user();
    let chat = api.new_chat(&token);
    assert_eq!(api.get(&format!("/chats/{chat}"), &token).status, 200);
    assert_eq!(api.request("GET", "/no/such/route").send().status, 404);

    let metrics = scrape(&api);
    let public = api.request("GET", "/metrics").send();

    let series = |name: &str| {
        metrics
            .lines()
            .filter(|line| line.starts_with(name))
            .collect::<Vec<_>>()
    };
    let requests = series("memlayer_http_requests_total{");
    assert!(
        requests
            .iter()
            .any(|line| line.contains(r#"route="/chats/{chat_id}""#)
                && line.contains(r#"status="200""#)
                && line.contains(r#"method="GET""#)),
        "{metrics}"
    );
    assert!(
        requests
            .iter()
            .any(|line| line.contains(r#"route="unmatched""#) && line.contains(r#"status="404""#)),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&chat),
        "a raw path in the labels: {metrics}"
    );
    assert!(!metrics.contains("/no/such/route"), "{metrics}");
    assert!(
        !series("memlayer_http_request_duration_seconds_bucket{").is_empty(),
        "{metrics}"
    );
    assert!(
        !series("memlayer_db_pool_connections{").is_empty(),
        "{metrics}"
    );
    assert!(
        !series("memlayer_db_pool_checkout_seconds").is_empty(),
        "{metrics}"
    );
    assert_eq!(public.status, 404);
    assert!(!public.text.contains("memlayer_http"), "{}", public.text);
}

#[test]
fn the_log_lines_of_a_streamed_reply_carry_its_request_id() {
    let upstream = Upstream::scripted(vec![Script::CutAfter(vec!["Half an ans"])]);
    let db = memlayer_testkit::TestDatabase::sqlite();
    let service = crate::process::Service::spawn(crate::process::memlayer(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", "a-secret-that-is-long-enough-for-the-check"),
        ("LOG_FORMAT", "json"),
        ("ASSISTANT_URL", &upstream.url),
        ("ASSISTANT_MODEL", "test-model"),
    ]));
    let agent = crate::process::agent();
    let call = |method: &str, path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", service.base))
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .header("x-request-id", "stream-7");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut reply = agent.run(request.body(body.to_string()).unwrap()).unwrap();
        reply.body_mut().read_to_string().unwrap()
    };
    let token: serde_json::Value = serde_json::from_str(&call(
        "POST",
        "/auth/register",
        None,
        json!({ "email": "ada@example.com", "password": "password1" }),
    ))
    .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let chat: serde_json::Value =
        serde_json::from_str(&call("POST", "/chats", Some(&token), json!({}))).unwrap();
    let chat = chat["id"].as_str().unwrap().to_owned();

    let events = call(
        "POST",
        &format!("/chats/{chat}/messages"),
        Some(&token),
        json!({ "content": "Hi" }),
    );
    // Logged by the task that relays the reply, after the handler has returned.
    let line = service.wait_for_line("request failed", Duration::from_secs(30));

    assert!(events.contains("event: error"), "{events}");
    let failed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(failed["span"]["request_id"], "stream-7", "{line}");
}
