//! What is read from a model is bounded: a reply's size, one event of its stream, an
//! error body; and what a model is sent of a chat is cut by the database. Against the
//! scripted upstream of `upstream.rs`, whose answers never end.

use std::time::Duration;

use memlayer_testkit::TestDatabase;
use serde_json::json;

use crate::support::event_names;
use crate::upstream::{Script, WithScriptedModel};

/// The reply limit these tests set (`ASSISTANT_MAX_REPLY_CHARS`).
const MAX_REPLY_CHARS: usize = 1_000;
/// The context budget these tests set (`ASSISTANT_CONTEXT_CHARS`).
const CONTEXT_CHARS: usize = 50;

/// The service with a scripted model behind it, and small limits.
pub struct Bounded(WithScriptedModel);

impl Bounded {
    fn start(db: TestDatabase) -> Self {
        Self(WithScriptedModel::start(
            db,
            &[
                ("ASSISTANT_TIMEOUT_SECS", "5"),
                ("ASSISTANT_MAX_REPLY_CHARS", &MAX_REPLY_CHARS.to_string()),
                ("ASSISTANT_CONTEXT_CHARS", &CONTEXT_CHARS.to_string()),
            ],
        ))
    }

    /// Whether the service closed the model's connection (within ten seconds).
    fn model_connection_closed(&self) -> bool {
        self.0.upstream.closed(Duration::from_secs(10))
    }
}

impl std::ops::Deref for Bounded {
    type Target = WithScriptedModel;

    fn deref(&self) -> &WithScriptedModel {
        &self.0
    }
}

memlayer_testkit::on_both_backends!(crate::model_limits::Bounded::start;
    an_endless_answer_ends_at_the_reply_limit_is_kept_and_the_model_is_hung_up_on,
    an_endless_streamed_answer_ends_at_the_reply_limit_with_done,
    an_answer_exactly_as_long_as_the_limit_is_complete,
    an_event_larger_than_its_bound_is_a_broken_answer_and_the_model_is_hung_up_on,
    an_endless_error_body_is_read_only_in_part,
    each_stored_message_reaches_the_model_cut_to_the_context_budget,
);

fn an_endless_answer_ends_at_the_reply_limit_is_kept_and_the_model_is_hung_up_on(t: &Bounded) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Endless("0123456789")]);

    let reply = t
        .api
        .post(&path, &token, json!({ "content": "Go on forever" }));

    assert_eq!(reply.status, 201, "{}", reply.text);
    // Cut at the limit: the text so far, `stopped`.
    assert_eq!(reply.json()["status"], "stopped");
    let content = reply.json()["content"].as_str().unwrap().to_owned();
    assert_eq!(content, "0123456789".repeat(MAX_REPLY_CHARS / 10));
    assert!(
        t.model_connection_closed(),
        "the model's connection stayed open"
    );
    let stored = t.api.conversation(&path, &token);
    assert_eq!(stored[1], ("assistant".into(), content));
}

fn an_answer_exactly_as_long_as_the_limit_is_complete(t: &Bounded) {
    let (token, path) = t.chat();
    // Ten pieces of a hundred characters: the limit, then [DONE].
    let piece: &'static str = "0123456789".repeat(10).leak();
    t.upstream
        .script(vec![Script::Answer(vec![piece; MAX_REPLY_CHARS / 100])]);

    let reply = t
        .api
        .post(&path, &token, json!({ "content": "Just enough" }));

    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["status"], "complete");
    assert_eq!(
        reply.json()["content"].as_str().unwrap().chars().count(),
        MAX_REPLY_CHARS
    );
}

fn an_endless_streamed_answer_ends_at_the_reply_limit_with_done(t: &Bounded) {
    let (token, path) = t.chat();
    // Three characters a piece: the limit falls inside one, which is cut.
    t.upstream.script(vec![Script::Endless("ab😀")]);

    let events = t
        .api
        .post_streamed(&path, &token, json!({ "content": "Go on forever" }))
        .all();

    let names = event_names(&events);
    assert_eq!(names[..2], ["message", "reply"]);
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let deltas: String = events[2..events.len() - 1]
        .iter()
        .map(|(_, data)| data["content"].as_str().unwrap())
        .collect();
    assert_eq!(deltas.chars().count(), MAX_REPLY_CHARS);
    assert_eq!(events.last().unwrap().1["content"], deltas.as_str());
    assert_eq!(events.last().unwrap().1["status"], "stopped");
    assert!(
        t.model_connection_closed(),
        "the model's connection stayed open"
    );
}

fn an_event_larger_than_its_bound_is_a_broken_answer_and_the_model_is_hung_up_on(t: &Bounded) {
    let (token, path) = t.chat();
    // 50 MB in one delta, as a model was seen to send.
    t.upstream.script(vec![Script::HugeDelta(50_000_000)]);

    let reply = t.api.post(&path, &token, json!({ "content": "Say a lot" }));

    assert_eq!(reply.status, 502, "{}", reply.text);
    assert!(t.model_connection_closed(), "the huge event was read whole");
    assert_eq!(
        t.api.conversation(&path, &token),
        [("user".into(), "Say a lot".into())]
    );
}

fn an_endless_error_body_is_read_only_in_part(t: &Bounded) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::EndlessErrorBody]);

    let reply = t.api.post(&path, &token, json!({ "content": "Hello?" }));

    assert_eq!(reply.status, 502, "{}", reply.text);
    assert!(
        t.model_connection_closed(),
        "the error body was read on and on"
    );
}

fn each_stored_message_reaches_the_model_cut_to_the_context_budget(t: &Bounded) {
    let (token, path) = t.chat();
    let long_answer: &'static str = "a long answer. ".repeat(60).leak();
    t.upstream.script(vec![Script::Answer(vec![long_answer])]);
    assert_eq!(
        t.api
            .post(&path, &token, json!({ "content": "Tell me" }))
            .status,
        201
    );

    let next = t.api.post(&path, &token, json!({ "content": "And?" }));

    assert_eq!(next.status, 201, "{}", next.text);
    let sent = &t.upstream.requests()[1].body["messages"];
    // The newest message alone fills the budget, cut to it; the older one is left out.
    let cut: String = long_answer.chars().take(CONTEXT_CHARS).collect();
    assert_eq!(
        sent,
        &json!([
            { "role": "assistant", "content": cut },
            { "role": "user", "content": "And?" },
        ])
    );
}
