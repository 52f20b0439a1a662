//! The assistant against a real model: llama.cpp's llama-server serving
//! SmolLM2-135M-Instruct (`scripts/model-server start PORT`), behind a recording
//! pass-through so the tests can check what the model was sent, not its wording.
//!
//! `MEMLAYER_TEST_MODEL` names the server (`127.0.0.1:8089`). Without it these tests say
//! `SKIPPED` once and pass, unless `CI=true` or `MEMLAYER_REQUIRE_MODEL=1`: then they fail.

use std::sync::Once;

use memlayer_testkit::TestDatabase;
use serde_json::json;

use crate::support::{TestApp, messages_path};
use crate::upstream::Upstream;

/// The service in front of the real model, or `None` when no model server is set.
pub struct WithRealModel(Option<(Upstream, TestApp)>);

impl WithRealModel {
    fn start(db: TestDatabase) -> Self {
        let Some(target) = model_server() else {
            return Self(None);
        };
        let upstream = Upstream::recording(&target);
        let api = TestApp::start_with(
            db,
            &[
                ("ASSISTANT_URL", &upstream.url),
                ("ASSISTANT_MODEL", "SmolLM2-135M-Instruct"),
                (
                    "ASSISTANT_SYSTEM_PROMPT",
                    "You are a helpful assistant. Answer briefly.",
                ),
                ("ASSISTANT_TIMEOUT_SECS", "60"),
            ],
        );
        Self(Some((upstream, api)))
    }
}

fn model_server() -> Option<String> {
    static NOTICE: Once = Once::new();
    if let Some(target) = std::env::var("MEMLAYER_TEST_MODEL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return Some(target);
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("MEMLAYER_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "MEMLAYER_TEST_MODEL is not set: start a model server with `scripts/model-server start 8089` and set MEMLAYER_TEST_MODEL=127.0.0.1:8089"
    );
    NOTICE.call_once(|| {
        memlayer_testkit::skipped(
            "the real-model tests (set MEMLAYER_TEST_MODEL=host:port of a llama-server; see scripts/model-server)",
        );
    });
    None
}

memlayer_testkit::on_both_backends!(crate::model::WithRealModel::start;
    a_json_post_gets_the_models_own_reply_and_stores_it,
    a_streamed_post_gets_several_deltas_whose_concatenation_is_the_stored_reply,
    the_second_message_reaches_the_model_with_the_first_exchange_as_context,
);

fn a_json_post_gets_the_models_own_reply_and_stores_it(t: &WithRealModel) {
    let Some((_, api)) = &t.0 else { return };
    let token = api.new_user();
    let chat = api.new_chat(&token);

    let reply = api.post_message(&token, &chat, "What is the capital of France?");

    assert_eq!(reply.status, 201, "{}", reply.text);
    let content = reply.json()["content"].as_str().unwrap().to_owned();
    assert!(!content.trim().is_empty());
    assert_ne!(content, "Message received");
    let stored = api.list_messages(&token, &chat).json();
    assert_eq!(stored[1], reply.json());
    // The usage llama-server reported (`stream_options.include_usage`), on the reply and
    // on the day's total.
    let usage = &reply.json()["usage"];
    if reply.json()["status"] == "complete" {
        assert_eq!(usage["estimated"], false, "{usage}");
    }
    let spent =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5, "{usage}");
    assert_eq!(
        api.get("/auth/me/usage", &token).json()["tokens_used"],
        spent
    );
}

fn a_streamed_post_gets_several_deltas_whose_concatenation_is_the_stored_reply(t: &WithRealModel) {
    let Some((_, api)) = &t.0 else { return };
    let token = api.new_user();
    let chat = api.new_chat(&token);

    let events = api.post_streamed(
        &messages_path(&chat),
        &token,
        json!({ "content": "Write one sentence about the sea." }),
    );

    assert_eq!(events.status, 200);
    let events = events.all();
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "done", "{events:?}");
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(name, _)| name == "delta")
        .map(|(_, data)| data["content"].as_str().unwrap())
        .collect();
    assert!(deltas.len() >= 2, "{deltas:?}");
    assert_eq!(data["content"].as_str().unwrap(), deltas.concat());
    let stored = api.list_messages(&token, &chat).json();
    assert_eq!(stored, json!([events[0].1, data]));
}

fn the_second_message_reaches_the_model_with_the_first_exchange_as_context(t: &WithRealModel) {
    let Some((upstream, api)) = &t.0 else { return };
    let token = api.new_user();
    let chat = api.new_chat(&token);
    let first = api.post_message(&token, &chat, "My name is Ada.");
    assert_eq!(first.status, 201, "{}", first.text);
    let first_answer = first.json()["content"].clone();

    let second = api.post_message(&token, &chat, "What is my name?");

    assert_eq!(second.status, 201, "{}", second.text);
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].body["messages"],
        json!([
            { "role": "system", "content": "You are a helpful assistant. Answer briefly." },
            { "role": "user", "content": "My name is Ada." },
            { "role": "assistant", "content": first_answer },
            { "role": "user", "content": "What is my name?" },
        ])
    );
}
