//! The assistant answered by a model server: the adapter, the JSON and streamed replies,
//! and every wire fault, against a scripted OpenAI-compatible upstream (see
//! `upstream.rs`). The same flows against a real model are in `model.rs`.

use std::time::{Duration, Instant};

use memlayer_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::support::{SPA_ORIGIN, TestApp, event_names};
use crate::upstream::{Script, Upstream, WithScriptedModel};

const SYSTEM_PROMPT: &str = "You are MemLayer's test assistant.";
const API_KEY: &str = "sk-test-key-never-shown";

/// The service with a scripted model behind it.
pub type WithModel = WithScriptedModel;

/// The service and its model with the settings these tests share.
fn with_model(db: TestDatabase) -> WithModel {
    WithScriptedModel::start(
        db,
        &[
            ("ASSISTANT_API_KEY", API_KEY),
            ("ASSISTANT_SYSTEM_PROMPT", SYSTEM_PROMPT),
            ("ASSISTANT_CONTEXT_MESSAGES", "3"),
            ("ASSISTANT_TIMEOUT_SECS", "2"),
        ],
    )
}

memlayer_testkit::on_both_backends!(crate::assistant::with_model;
    a_json_post_returns_the_models_whole_answer_and_stores_it,
    a_streamed_post_sends_the_question_then_each_piece_then_the_stored_reply,
    the_model_sees_the_system_prompt_the_latest_history_in_order_then_the_new_message,
    the_api_key_goes_to_the_model_and_nowhere_else,
    a_model_that_refuses_is_a_502_and_the_question_stays,
    a_model_that_refuses_a_stream_is_an_error_event_after_the_question,
    a_silent_model_times_out_as_a_502,
    an_answer_cut_off_mid_stream_is_an_error_event_and_the_reply_is_kept_failed,
    errors_found_before_the_stream_starts_are_ordinary_json_errors,
);

fn a_json_post_returns_the_models_whole_answer_and_stores_it(t: &WithModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::Answer(vec!["Hel", "lo", " there"])]);

    let reply = t.api.post(&path, &token, json!({ "content": "Hi" }));

    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["content"], "Hello there");
    assert_eq!(reply.json()["role"], "assistant");
    assert_eq!(
        t.api.conversation(&path, &token),
        [
            ("user".into(), "Hi".into()),
            ("assistant".into(), "Hello there".into())
        ]
    );
}

fn a_streamed_post_sends_the_question_then_each_piece_then_the_stored_reply(t: &WithModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::Answer(vec!["Once", " upon", " a time"])]);

    let events = t
        .api
        .request("POST", &path)
        .token(&token)
        .header("origin", SPA_ORIGIN)
        .json(&json!({ "content": "A story?" }))
        .stream();

    assert_eq!(events.status, 200);
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        events.header("access-control-allow-origin"),
        Some(SPA_ORIGIN)
    );
    let events = events.all();
    let names = event_names(&events);
    assert_eq!(
        names,
        ["message", "reply", "delta", "delta", "delta", "done"]
    );
    let (question, done) = (&events[0].1, &events[5].1);
    assert_eq!(
        (question["role"].as_str(), question["content"].as_str()),
        (Some("user"), Some("A story?"))
    );
    let deltas: String = events[2..5]
        .iter()
        .map(|(_, data)| data["content"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Once upon a time");
    assert_eq!(
        (done["role"].as_str(), done["content"].as_str()),
        (Some("assistant"), Some(deltas.as_str()))
    );
    let stored = t.api.get(&path, &token).json();
    assert_eq!(stored, json!([question, done]));
}

fn the_model_sees_the_system_prompt_the_latest_history_in_order_then_the_new_message(
    t: &WithModel,
) {
    let (token, path) = t.chat();
    t.upstream.script(vec![
        Script::Answer(vec!["A1"]),
        Script::Answer(vec!["A2"]),
        Script::Answer(vec!["A3"]),
    ]);
    for question in ["Q1", "Q2", "Q3"] {
        let reply = t.api.post(&path, &token, json!({ "content": question }));
        assert_eq!(reply.status, 201, "{}", reply.text);
    }

    let requests = t.upstream.requests();

    assert_eq!(requests.len(), 3);
    let first = &requests[0].body;
    assert_eq!(first["model"], "test-model");
    assert_eq!(first["stream"], true);
    assert_eq!(
        first["messages"],
        json!([{ "role": "system", "content": SYSTEM_PROMPT }, { "role": "user", "content": "Q1" }])
    );
    // ASSISTANT_CONTEXT_MESSAGES=3: the three latest earlier messages, oldest first.
    assert_eq!(
        requests[2].body["messages"],
        json!([
            { "role": "system", "content": SYSTEM_PROMPT },
            { "role": "assistant", "content": "A1" },
            { "role": "user", "content": "Q2" },
            { "role": "assistant", "content": "A2" },
            { "role": "user", "content": "Q3" },
        ])
    );
}

fn the_api_key_goes_to_the_model_and_nowhere_else(t: &WithModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Status(500)]);

    let reply = t.api.post(&path, &token, json!({ "content": "Hi" }));

    assert_eq!(
        t.upstream.requests()[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert!(!reply.text.contains(API_KEY), "{}", reply.text);
}

fn a_model_that_refuses_is_a_502_and_the_question_stays(t: &WithModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Status(500)]);

    let reply = t.api.post(&path, &token, json!({ "content": "Hi" }));

    reply.assert_detail(
        502,
        "The assistant could not answer; your message was saved",
    );
    assert_eq!(
        t.api.conversation(&path, &token),
        [("user".into(), "Hi".into())]
    );
}

fn a_model_that_refuses_a_stream_is_an_error_event_after_the_question(t: &WithModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Status(503)]);

    let events = t
        .api
        .post_streamed(&path, &token, json!({ "content": "Hi" }))
        .all();

    let names = event_names(&events);
    assert_eq!(names, ["message", "reply", "error"]);
    assert_eq!(
        events[2].1,
        json!({ "detail": "The assistant could not answer; your message was saved" })
    );
    assert_eq!(
        t.api.conversation(&path, &token),
        [("user".into(), "Hi".into())]
    );
}

fn a_silent_model_times_out_as_a_502(t: &WithModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Silent]);

    let reply = t.api.post(&path, &token, json!({ "content": "Hi" }));

    reply.assert_detail(
        502,
        "The assistant could not answer; your message was saved",
    );
    assert_eq!(t.api.conversation(&path, &token).len(), 1);
}

fn an_answer_cut_off_mid_stream_is_an_error_event_and_the_reply_is_kept_failed(t: &WithModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::CutAfter(vec!["Half", " an"])]);

    let events = t
        .api
        .post_streamed(&path, &token, json!({ "content": "Hi" }))
        .all();

    let names = event_names(&events);
    assert_eq!(names, ["message", "reply", "delta", "delta", "error"]);
    assert_eq!(
        t.api.conversation(&path, &token),
        [
            ("user".into(), "Hi".into()),
            ("assistant".into(), "Half an".into())
        ]
    );
    assert_eq!(t.api.get(&path, &token).json()[1]["status"], "failed");
}

#[test]
fn an_unreachable_model_is_a_502() {
    // A model server that is not listening: a port that was free a moment ago.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let api = TestApp::start_with(
        TestDatabase::sqlite(),
        &[
            ("ASSISTANT_URL", &format!("http://{free}/v1")),
            ("ASSISTANT_MODEL", "m"),
        ],
    );
    let token = api.new_user();
    let chat = api.new_chat(&token);

    let reply = api.post(
        &format!("/chats/{chat}/messages"),
        &token,
        json!({ "content": "Hi" }),
    );

    reply.assert_detail(
        502,
        "The assistant could not answer; your message was saved",
    );
}

fn errors_found_before_the_stream_starts_are_ordinary_json_errors(t: &WithModel) {
    let (token, path) = t.chat();
    let stream = |token: &str, path: &str, body: Value| {
        t.api
            .request("POST", path)
            .token(token)
            .json(&body)
            .header("accept", "text/event-stream")
            .send()
    };

    stream("not-a-token", &path, json!({ "content": "Hi" }))
        .assert_detail(401, "Could not validate credentials");
    let missing = format!("/chats/{}/messages", uuid::Uuid::now_v7());
    stream(&token, &missing, json!({ "content": "Hi" })).assert_detail(404, "Chat not found");
    stream(&t.api.new_user(), &path, json!({ "content": "Hi" }))
        .assert_detail(403, "Not allowed to access this chat");
    stream(&token, &path, json!({ "content": " " }))
        .assert_invalid(json!(["body", "content"]), "string_too_short");
    assert!(t.upstream.requests().is_empty());
}

#[test]
fn a_reply_cut_short_by_the_service_stopping_is_kept_stopped_with_its_text() {
    let upstream = Upstream::scripted(vec![Script::StallAfter(vec!["Once", " upon"])]);
    let settings = [
        ("ASSISTANT_URL", upstream.url.as_str()),
        ("ASSISTANT_MODEL", "test-model"),
    ];
    let api = TestApp::start_with(TestDatabase::sqlite(), &settings);
    let token = api.new_user();
    let path = format!("/chats/{}/messages", api.new_chat(&token));
    let mut events = api.post_streamed(&path, &token, json!({ "content": "Hi" }));
    for expected in ["message", "reply", "delta", "delta"] {
        assert_eq!(events.next_event().unwrap().0, expected);
    }

    // Stopped at once, as when a shutdown's timeout runs out mid-stream.
    let db = api.stop();
    drop(events);

    // The stopped worker stores it as it ends, which may be just after the stop returns.
    let api = TestApp::start_with(db, &settings);
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.count(
        "messages",
        "role = 'assistant' AND content = 'Once upon' AND status = 'stopped'",
    ) == 0
    {
        assert!(Instant::now() < deadline, "the partial reply was lost");
        std::thread::sleep(Duration::from_millis(20));
    }
}
