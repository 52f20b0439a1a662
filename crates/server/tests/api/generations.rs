//! Replies that outlive the connection: a reply belongs to the service from its start
//! (`generating`), goes on when its client leaves, can be resumed from a cursor and
//! stopped from any client, on any instance, and ends as the contract's table says.
//! Against a scripted model (`upstream.rs`), on both databases; the cross-instance ones
//! on two instances over one PostgreSQL; an instance killed or stopped as a process.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use memlayer_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::process::{Service, memlayer};
use crate::support::{Events, SECRET, TestApp};
use crate::upstream::{Script, Upstream, WithScriptedModel};

/// The service over `db` with a scripted model.
fn with_model(db: TestDatabase) -> WithScriptedModel {
    WithScriptedModel::start(db, &[("ASSISTANT_TIMEOUT_SECS", "10")])
}

/// The same, allowed one reply at a time.
fn with_one_generation(db: TestDatabase) -> WithScriptedModel {
    WithScriptedModel::start(
        db,
        &[("ASSISTANT_TIMEOUT_SECS", "10"), ("MAX_GENERATIONS", "1")],
    )
}

memlayer_testkit::on_both_backends!(crate::generations::with_model;
    a_streamed_reply_is_numbered_from_its_start_to_its_end,
    a_client_that_leaves_does_not_stop_the_reply,
    a_generating_reply_is_listed_with_its_text_so_far_and_stops_on_request,
    a_resumed_stream_gets_every_piece_after_its_cursor_then_the_ending,
    resume_and_stop_refuse_what_is_not_a_reply_of_ones_own,
    while_a_reply_generates_the_chat_takes_no_other,
    deleting_the_chat_stops_its_reply,
    deleting_the_question_stops_its_reply,
    a_model_that_fails_after_some_text_leaves_the_reply_failed_with_it,
    a_chat_with_its_default_title_is_named_by_the_model_from_its_first_question,
    a_rename_wins_over_the_models_title,
    revoking_the_accounts_tokens_ends_its_open_streams_not_its_reply,
);

/// The same, with replies limited to 5 tokens.
fn with_max_tokens(db: TestDatabase) -> WithScriptedModel {
    WithScriptedModel::start(
        db,
        &[
            ("ASSISTANT_TIMEOUT_SECS", "10"),
            ("ASSISTANT_MAX_TOKENS", "5"),
        ],
    )
}

mod max_tokens {
    use super::*;

    memlayer_testkit::on_both_backends!(crate::generations::with_max_tokens;
        a_reply_the_model_ends_at_max_tokens_is_stored_stopped_with_its_text,
    );
}

fn a_reply_the_model_ends_at_max_tokens_is_stored_stopped_with_its_text(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![
        Script::Length(vec!["One", " two", " three"]),
        Script::Length(vec!["Four", " five"]),
    ]);

    let json = t.api.post(&path, &token, json!({ "content": "Count" }));
    let streamed = numbered(
        t.api
            .post_streamed(&path, &token, json!({ "content": "Again" })),
    );

    assert_eq!(json.status, 201, "{}", json.text);
    assert_eq!(state(&json.json()), ("stopped", "One two three"));
    let (name, _, done) = streamed.last().unwrap();
    assert_eq!(
        (name.as_str(), state(done)),
        ("done", ("stopped", "Four five"))
    );
    for request in t.upstream.requests() {
        assert_eq!(request.body["max_tokens"], 5);
    }
}

/// The same, with one reply at a time per user.
fn with_one_reply_per_user(db: TestDatabase) -> WithScriptedModel {
    WithScriptedModel::start(
        db,
        &[
            ("ASSISTANT_TIMEOUT_SECS", "10"),
            ("USER_MAX_GENERATIONS", "1"),
        ],
    )
}

mod per_user {
    use super::*;

    memlayer_testkit::on_both_backends!(crate::generations::with_one_reply_per_user;
        past_user_max_generations_a_reply_is_429_before_anything_is_stored_or_asked,
        two_posts_racing_for_the_users_last_place_one_wins,
    );
}

fn past_user_max_generations_a_reply_is_429_before_anything_is_stored_or_asked(
    t: &WithScriptedModel,
) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::StallAfter(vec!["Busy"])]);
    let (_events, id) = start(t, &token, &path, "First");
    let other = crate::support::messages_path(&t.api.new_chat(&token));

    let refused = t.api.post(&other, &token, json!({ "content": "Second" }));

    refused.assert_detail(
        429,
        "Too many of your replies are being written at once: wait for one to end",
    );
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert!(t.api.conversation(&other, &token).is_empty());
    assert_eq!(t.upstream.requests().len(), 1, "the model was asked");
    // Another user is not concerned; the user is free again once the reply ends.
    t.upstream.script(vec![
        Script::Answer(vec!["Yours"]),
        Script::Answer(vec!["Now"]),
    ]);
    let (stranger, theirs) = t.chat();
    assert_eq!(
        t.api
            .post(&theirs, &stranger, json!({ "content": "Hi" }))
            .status,
        201
    );
    t.api
        .post(&format!("{path}/{id}/stop"), &token, json!(null));
    assert_eq!(
        t.api
            .post(&other, &token, json!({ "content": "Second" }))
            .status,
        201
    );
}

fn two_posts_racing_for_the_users_last_place_one_wins(t: &WithScriptedModel) {
    let token = t.api.new_user();
    let paths: Vec<String> = (0..4)
        .map(|_| crate::support::messages_path(&t.api.new_chat(&token)))
        .collect();
    t.upstream
        .script((0..4).map(|_| Script::StallAfter(vec!["Mine"])).collect());

    // Four posts in four chats at once: with one place, exactly one reply starts.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let posts: Vec<_> = paths
            .iter()
            .map(|path| {
                let token = token.clone();
                let api = &t.api;
                scope.spawn(move || {
                    let events = api.post_streamed(path, &token, json!({ "content": "Me first" }));
                    events.status
                })
            })
            .collect();
        posts.into_iter().map(|post| post.join().unwrap()).collect()
    });

    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 429, 429, 429], "{statuses:?}");
    let stored: usize = paths
        .iter()
        .map(|path| t.api.conversation(path, &token).len())
        .sum();
    assert_eq!(stored, 2, "one question and its reply");
}

mod capacity {
    use super::*;

    memlayer_testkit::on_both_backends!(crate::generations::with_one_generation;
        past_max_generations_a_reply_is_refused_with_retry_after_and_nothing_stored,
    );
}

/// The chat id of a messages path (`/chats/{id}/messages`).
fn chat_of(path: &str) -> &str {
    path.trim_start_matches("/chats/")
        .trim_end_matches("/messages")
}

/// Posts `content` streamed and reads up to the `reply` event: the reply's id.
fn start(t: &WithScriptedModel, token: &str, path: &str, content: &str) -> (Events, String) {
    let mut events = t
        .api
        .post_streamed(path, token, json!({ "content": content }));
    assert_eq!(events.status, 200);
    loop {
        let (name, data) = events.next_event().expect("a reply event");
        if name == "reply" {
            return (events, data["id"].as_str().unwrap().to_owned());
        }
    }
}

/// The message `id` of the chat at `path`, as listed (its whole tree).
fn listed(api: &TestApp, token: &str, path: &str, id: &str) -> Option<Value> {
    let tree = api.get(&format!("/chats/{}/tree", chat_of(path)), token);
    assert_eq!(tree.status, 200, "{}", tree.text);
    tree.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
}

/// Waits (at most 20 s) until `check` holds for the message `id` as listed.
fn eventually(
    api: &TestApp,
    token: &str,
    path: &str,
    id: &str,
    check: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = listed(api, token, path, id);
        if check(found.as_ref()) {
            return found;
        }
        assert!(Instant::now() < deadline, "still {found:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status and content of a listed message.
fn state(message: &Value) -> (&str, &str) {
    (
        message["status"].as_str().unwrap(),
        message["content"].as_str().unwrap(),
    )
}

/// Every remaining event, with its id.
fn numbered(mut events: Events) -> Vec<(String, Option<u64>, Value)> {
    std::iter::from_fn(|| events.next_numbered()).collect()
}

/// A resumed stream of reply `id` with the given request headers and query.
fn resume(api: &TestApp, token: &str, path: &str, id: &str, cursor: Cursor) -> Events {
    let (query, header) = match cursor {
        Cursor::None => (String::new(), None),
        Cursor::Header(n) => (String::new(), Some(n.to_string())),
        Cursor::Query(n) => (format!("?after={n}"), None),
    };
    let mut request = api
        .request("GET", &format!("{path}/{id}/stream{query}"))
        .token(token);
    if let Some(header) = header {
        request = request.header("last-event-id", &header);
    }
    request.stream()
}

#[derive(Clone, Copy)]
enum Cursor {
    None,
    Header(u64),
    Query(u64),
}

fn a_streamed_reply_is_numbered_from_its_start_to_its_end(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::Answer(vec!["Once", " upon", " a time"])]);

    let events = numbered(
        t.api
            .post_streamed(&path, &token, json!({ "content": "A story?" })),
    );

    let shape: Vec<(&str, Option<u64>)> = events
        .iter()
        .map(|(name, id, _)| (name.as_str(), *id))
        .collect();
    assert_eq!(
        shape,
        [
            ("message", None),
            ("reply", Some(0)),
            ("delta", Some(1)),
            ("delta", Some(2)),
            ("delta", Some(3)),
            ("done", Some(4))
        ]
    );
    let (question, reply, done) = (&events[0].2, &events[1].2, &events[5].2);
    assert_eq!(
        (reply["role"].as_str(), state(reply)),
        (Some("assistant"), ("generating", ""))
    );
    assert_eq!(reply["parent_id"], question["id"]);
    assert_eq!(done["id"], reply["id"]);
    assert_eq!(state(done), ("complete", "Once upon a time"));
    assert_eq!(t.api.get(&path, &token).json(), json!([question, done]));
}

fn a_client_that_leaves_does_not_stop_the_reply(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Paced(
        vec!["Once", " upon", " a", " time"],
        100,
    )]);

    let (events, id) = start(t, &token, &path, "A story?");
    drop(events);

    let done = eventually(&t.api, &token, &path, &id, |m| {
        m.is_some_and(|m| m["status"] != "generating")
    })
    .unwrap();
    assert_eq!(state(&done), ("complete", "Once upon a time"));
    assert!(
        !t.upstream.closed(Duration::ZERO),
        "the model's connection was closed early"
    );
}

fn a_generating_reply_is_listed_with_its_text_so_far_and_stops_on_request(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::StallAfter(vec!["Once", " upon"])]);
    let (mut events, id) = start(t, &token, &path, "A story?");
    for _ in 0..2 {
        assert_eq!(events.next_event().unwrap().0, "delta");
    }

    let so_far = eventually(&t.api, &token, &path, &id, |m| {
        m.is_some_and(|m| m["content"] == "Once upon")
    })
    .unwrap();
    assert_eq!(state(&so_far), ("generating", "Once upon"));
    let stopped = t
        .api
        .post(&format!("{path}/{id}/stop"), &token, json!(null));

    assert_eq!(stopped.status, 200, "{}", stopped.text);
    assert_eq!(state(&stopped.json()), ("stopped", "Once upon"));
    assert!(
        t.upstream.closed(Duration::from_secs(10)),
        "the model's connection stayed open"
    );
    let (name, id_of_done, done) = events.next_numbered().unwrap();
    assert_eq!((name.as_str(), id_of_done), ("done", Some(3)));
    assert_eq!(done, stopped.json());
    // Stopping an ended reply changes nothing.
    let again = t
        .api
        .post(&format!("{path}/{id}/stop"), &token, json!(null));
    assert_eq!((again.status, again.json()), (200, stopped.json()));
    assert_eq!(
        state(&listed(&t.api, &token, &path, &id).unwrap()),
        ("stopped", "Once upon")
    );
}

fn a_resumed_stream_gets_every_piece_after_its_cursor_then_the_ending(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Paced(
        vec!["a", "b", "c", "d", "e", "f", "g", "h"],
        150,
    )]);
    let (mut first, id) = start(t, &token, &path, "Letters?");
    for expected in ["a", "b"] {
        assert_eq!(first.next_event().unwrap().1["content"], expected);
    }
    // A second tab, from the start, while the first is still open; then the first
    // reloads, having seen two deltas, and a third resumes by the query string.
    let tab = resume(&t.api, &token, &path, &id, Cursor::None);
    drop(first);
    let reloaded = resume(&t.api, &token, &path, &id, Cursor::Header(2));
    let by_query = resume(&t.api, &token, &path, &id, Cursor::Query(5));

    let joined = |events: &[(String, Option<u64>, Value)]| -> (String, Vec<u64>) {
        events.iter().filter(|(name, ..)| name == "delta").fold(
            (String::new(), Vec::new()),
            |(mut text, mut ids), (_, id, data)| {
                text.push_str(data["content"].as_str().unwrap());
                ids.push(id.unwrap());
                (text, ids)
            },
        )
    };
    let (tab, reloaded, by_query) = (numbered(tab), numbered(reloaded), numbered(by_query));
    assert_eq!(joined(&tab), ("abcdefgh".into(), (1..=8).collect()));
    assert_eq!(joined(&reloaded), ("cdefgh".into(), (3..=8).collect()));
    assert_eq!(joined(&by_query), ("fgh".into(), (6..=8).collect()));
    for events in [&tab, &reloaded, &by_query] {
        let (name, number, done) = events.last().unwrap();
        assert_eq!((name.as_str(), *number), ("done", Some(9)));
        assert_eq!(state(done), ("complete", "abcdefgh"));
    }
    // Once ended, a resume answers its ending at once.
    let ended = numbered(resume(&t.api, &token, &path, &id, Cursor::Header(0)));
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].0, "done");
    assert_eq!(state(&ended[0].2), ("complete", "abcdefgh"));
}

fn resume_and_stop_refuse_what_is_not_a_reply_of_ones_own(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::Answer(vec!["Hi"])]);
    let reply = t
        .api
        .post(&path, &token, json!({ "content": "Hello" }))
        .json();
    let (reply_id, question_id) = (
        reply["id"].as_str().unwrap(),
        reply["parent_id"].as_str().unwrap(),
    );

    let get = |id: &str, query: &str, header: Option<&str>, token: &str| {
        let mut request = t
            .api
            .request("GET", &format!("{path}/{id}/stream{query}"))
            .token(token);
        if let Some(header) = header {
            request = request.header("last-event-id", header);
        }
        request.send()
    };
    get(reply_id, "", Some("x"), &token)
        .assert_invalid(json!(["header", "last-event-id"]), "int_parsing");
    get(reply_id, "?after=-1", None, &token)
        .assert_invalid(json!(["query", "after"]), "int_parsing");
    // Both given: each is checked (the header wins when both are whole numbers).
    get(reply_id, "?after=-1", Some("1"), &token)
        .assert_invalid(json!(["query", "after"]), "int_parsing");
    get(reply_id, "?after=1.5", None, &token)
        .assert_invalid(json!(["query", "after"]), "int_parsing");
    get(question_id, "", None, &token).assert_invalid(json!(["path", "message_id"]), "value_error");
    get(&uuid::Uuid::now_v7().to_string(), "", None, &token)
        .assert_detail(404, "Message not found");
    get(reply_id, "", None, &t.api.new_user())
        .assert_detail(403, "Not allowed to access this chat");
    get("not-a-uuid", "", None, &token)
        .assert_invalid(json!(["path", "message_id"]), "uuid_parsing");
    t.api
        .post(&format!("{path}/{question_id}/stop"), &token, json!(null))
        .assert_invalid(json!(["path", "message_id"]), "value_error");
    t.api
        .post(
            &format!("{path}/{}/stop", uuid::Uuid::now_v7()),
            &token,
            json!(null),
        )
        .assert_detail(404, "Message not found");
}

fn while_a_reply_generates_the_chat_takes_no_other(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream
        .script(vec![Script::StallAfter(vec!["Thinking"])]);
    let (_events, id) = start(t, &token, &path, "First");
    let first = listed(&t.api, &token, &path, &id).unwrap();
    let question = first["parent_id"].as_str().unwrap().to_owned();
    let busy = "A reply is being written in this chat: stop it or wait for it to end";

    t.api
        .post(&path, &token, json!({ "content": "Second" }))
        .assert_detail(409, busy);
    t.api
        .request("POST", &path)
        .token(&token)
        .header("accept", "text/event-stream")
        .json(&json!({ "content": "Second" }))
        .send()
        .assert_detail(409, busy);
    t.api
        .post(&format!("{path}/{id}/regenerate"), &token, json!(null))
        .assert_detail(409, busy);
    t.api
        .post(
            &format!("{path}/{question}/edit"),
            &token,
            json!({ "content": "Other" }),
        )
        .assert_detail(409, busy);
    assert_eq!(
        t.api.conversation(&path, &token),
        [
            ("user".into(), "First".into()),
            ("assistant".into(), String::new())
        ]
    );

    // Another chat is free; this one is free again once the reply is stopped.
    let other = crate::support::messages_path(&t.api.new_chat(&token));
    t.upstream.script(vec![
        Script::Answer(vec!["Free"]),
        Script::Answer(vec!["Again"]),
    ]);
    assert_eq!(
        t.api
            .post(&other, &token, json!({ "content": "Hi" }))
            .status,
        201
    );
    assert_eq!(
        t.api
            .post(&format!("{path}/{id}/stop"), &token, json!(null))
            .status,
        200
    );
    let again = t.api.post(&path, &token, json!({ "content": "Second" }));
    assert_eq!(
        (again.status, again.json()["content"].clone()),
        (201, json!("Again"))
    );
}

fn past_max_generations_a_reply_is_refused_with_retry_after_and_nothing_stored(
    t: &WithScriptedModel,
) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::StallAfter(vec!["Busy"])]);
    let (_events, id) = start(t, &token, &path, "First");
    let other = crate::support::messages_path(&t.api.new_chat(&token));

    let refused = t.api.post(&other, &token, json!({ "content": "Second" }));

    refused.assert_detail(503, "Too many replies are being written: try again shortly");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(t.api.conversation(&other, &token).is_empty());
    assert_eq!(t.upstream.requests().len(), 1);
    t.api
        .post(&format!("{path}/{id}/stop"), &token, json!(null));
    t.upstream.script(vec![Script::Answer(vec!["Now"])]);
    assert_eq!(
        t.api
            .post(&other, &token, json!({ "content": "Second" }))
            .status,
        201
    );
}

fn deleting_the_chat_stops_its_reply(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::StallAfter(vec!["Once"])]);
    let (mut events, _) = start(t, &token, &path, "A story?");
    assert_eq!(events.next_event().unwrap().0, "delta");

    let deleted = t.api.call(
        "DELETE",
        &format!("/chats/{}", chat_of(&path)),
        &token,
        None,
    );

    assert_eq!(deleted.status, 204);
    assert!(
        t.upstream.closed(Duration::from_secs(10)),
        "the model's connection stayed open"
    );
    let (name, data) = events.next_event().unwrap();
    assert_eq!(
        (name.as_str(), data),
        ("error", json!({ "detail": "Chat not found" }))
    );
    assert!(events.next_event().is_none());
}

fn deleting_the_question_stops_its_reply(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![Script::StallAfter(vec!["Once"])]);
    let (mut events, id) = start(t, &token, &path, "A story?");
    assert_eq!(events.next_event().unwrap().0, "delta");
    let question = listed(&t.api, &token, &path, &id).unwrap()["parent_id"].clone();

    let deleted = t.api.call(
        "DELETE",
        &format!("{path}/{}", question.as_str().unwrap()),
        &token,
        None,
    );

    assert_eq!(deleted.status, 204);
    assert!(
        t.upstream.closed(Duration::from_secs(10)),
        "the model's connection stayed open"
    );
    let (name, data) = events.next_event().unwrap();
    assert_eq!(
        (name.as_str(), data),
        ("error", json!({ "detail": "Message not found" }))
    );
    assert!(t.api.conversation(&path, &token).is_empty());
}

fn a_model_that_fails_after_some_text_leaves_the_reply_failed_with_it(t: &WithScriptedModel) {
    let (token, path) = t.chat();
    t.upstream.script(vec![
        Script::CutAfter(vec!["Par", "tial"]),
        Script::CutAfter(vec!["Half"]),
    ]);

    let events = numbered(
        t.api
            .post_streamed(&path, &token, json!({ "content": "Streamed" })),
    );
    let names: Vec<&str> = events.iter().map(|(name, ..)| name.as_str()).collect();
    assert_eq!(names, ["message", "reply", "delta", "delta", "error"]);
    assert_eq!(events[4].1, Some(3));
    let id = events[1].2["id"].as_str().unwrap();
    assert_eq!(
        state(&listed(&t.api, &token, &path, id).unwrap()),
        ("failed", "Partial")
    );

    // The JSON route: 502, and the reply stored failed with its text.
    let other = crate::support::messages_path(&t.api.new_chat(&token));
    t.api
        .post(&other, &token, json!({ "content": "JSON" }))
        .assert_detail(
            502,
            "The assistant could not answer; your message was saved",
        );
    let tree = t
        .api
        .get(&format!("/chats/{}/tree", chat_of(&other)), &token)
        .json();
    assert_eq!(state(&tree[1]), ("failed", "Half"));
}

fn revoking_the_accounts_tokens_ends_its_open_streams_not_its_reply(t: &WithScriptedModel) {
    let email = format!("revoked-{}@example.com", uuid::Uuid::now_v7());
    let token = t.api.register(&email, "password1");
    let path = crate::support::messages_path(&t.api.new_chat(&token));
    t.upstream
        // Slow enough that the revocation (noticed within about 1.2 s) comes first.
        .script(vec![Script::Paced(vec!["a", "b", "c", "d", "e", "f"], 800)]);
    let (mut events, id) = start(t, &token, &path, "Letters?");
    assert_eq!(events.next_event().unwrap().0, "delta");

    let revoked = t
        .api
        .request("POST", "/auth/logout-all")
        .token(&token)
        .send();

    assert_eq!(revoked.status, 204, "{}", revoked.text);
    let rest: Vec<(String, Value)> = std::iter::from_fn(|| events.next_event()).collect();
    assert_eq!(
        rest.last(),
        Some(&(
            "error".to_owned(),
            json!({ "detail": "Could not validate credentials" })
        )),
        "{rest:?}"
    );
    assert!(rest.iter().all(|(name, _)| name != "done"), "{rest:?}");
    // The reply itself goes on, and is there for the next session.
    let login = t
        .api
        .request("POST", "/auth/login")
        .json(&crate::support::credentials(&email, "password1"))
        .send();
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let done = eventually(&t.api, &token, &path, &id, |m| {
        m.is_some_and(|m| m["status"] != "generating")
    })
    .unwrap();
    assert_eq!(state(&done), ("complete", "abcdef"));
}

/// A new chat with the default title (none given): its messages path.
fn untitled_chat(api: &TestApp, token: &str) -> String {
    let chat = api.post("/chats", token, json!({}));
    assert_eq!(chat.status, 201, "{}", chat.text);
    crate::support::messages_path(chat.json()["id"].as_str().unwrap())
}

/// The title requests the model received.
fn title_requests(upstream: &Upstream) -> Vec<Value> {
    upstream
        .requests()
        .into_iter()
        .map(|request| request.body)
        .filter(|body| {
            body["messages"][0]["content"]
                .as_str()
                .is_some_and(|system| system.starts_with("Write a short title"))
        })
        .collect()
}

fn a_chat_with_its_default_title_is_named_by_the_model_from_its_first_question(
    t: &WithScriptedModel,
) {
    let token = t.api.new_user();
    let path = untitled_chat(&t.api, &token);
    t.upstream
        .script_titles(vec![Script::Answer(vec!["\"Lisbon", " in a day.\""])]);
    t.upstream.script(vec![
        // Long enough for the title, asked at the same time, to arrive first.
        Script::Paced(vec!["Start", " at", " the", " river"], 500),
        Script::Answer(vec!["Sure"]),
    ]);

    let events = numbered(t.api.post_streamed(
        &path,
        &token,
        json!({ "content": "Plan a day in Lisbon for me" }),
    ));

    let titles: Vec<&Value> = events
        .iter()
        .filter(|(name, ..)| name == "title")
        .map(|(_, id, data)| {
            assert_eq!(*id, None);
            data
        })
        .collect();
    assert_eq!(titles.len(), 1, "{events:?}");
    assert_eq!(titles[0]["title"], "Lisbon in a day");
    assert_eq!(titles[0]["id"].as_str(), Some(chat_of(&path)));
    let chat = t
        .api
        .get(&format!("/chats/{}", chat_of(&path)), &token)
        .json();
    assert_eq!(chat["title"], "Lisbon in a day");
    let asked = title_requests(&t.upstream);
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0]["messages"][1]["content"],
        "Plan a day in Lisbon for me"
    );
    // Only a first question names a chat.
    assert_eq!(
        t.api
            .post(&path, &token, json!({ "content": "And then?" }))
            .status,
        201
    );
    assert_eq!(title_requests(&t.upstream).len(), 1);
}

fn a_rename_wins_over_the_models_title(t: &WithScriptedModel) {
    let token = t.api.new_user();
    let path = untitled_chat(&t.api, &token);
    let chat = format!("/chats/{}", chat_of(&path));
    // The title comes after the user renamed the chat.
    t.upstream
        .script_titles(vec![Script::Paced(vec!["Model's", " title"], 1_000)]);
    t.upstream
        .script(vec![Script::Paced(vec!["A", " long", " answer"], 1_000)]);

    let mut events = t
        .api
        .post_streamed(&path, &token, json!({ "content": "Hello there" }));
    assert_eq!(events.next_event().unwrap().0, "message");
    let renamed = t
        .api
        .call("PATCH", &chat, &token, Some(&json!({ "title": "Mine" })));
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let rest = numbered(events);

    assert!(rest.iter().all(|(name, ..)| name != "title"), "{rest:?}");
    assert_eq!(rest.last().unwrap().0, "done");
    assert_eq!(t.api.get(&chat, &token).json()["title"], "Mine");
    assert_eq!(title_requests(&t.upstream).len(), 1);
}

/// Two instances (in this process, each its own server and its own generations) over
/// one PostgreSQL database, with one scripted model.
struct TwoOnPostgres {
    upstream: Upstream,
    a: TestApp,
    b: TestApp,
}

impl TwoOnPostgres {
    fn start() -> Option<Self> {
        let db = TestDatabase::postgres()?;
        let upstream = Upstream::scripted(vec![]);
        let settings = [
            ("ASSISTANT_URL", upstream.url.as_str()),
            ("ASSISTANT_MODEL", "test-model"),
            ("ASSISTANT_TIMEOUT_SECS", "10"),
        ];
        let url = db.url().to_owned();
        let a = TestApp::start_with(db, &settings);
        let b = TestApp::start_on(&url, &settings);
        Some(Self { upstream, a, b })
    }
}

#[test]
fn a_reply_generating_on_one_instance_is_resumed_and_stopped_through_another() {
    let Some(t) = TwoOnPostgres::start() else {
        return;
    };
    let token = t.a.new_user();
    let path = crate::support::messages_path(&t.a.new_chat(&token));
    t.upstream
        .script(vec![Script::StallAfter(vec!["Once", " upon"])]);
    let mut on_a =
        t.a.post_streamed(&path, &token, json!({ "content": "A story?" }));
    let id = loop {
        let (name, data) = on_a.next_event().unwrap();
        if name == "reply" {
            break data["id"].as_str().unwrap().to_owned();
        }
    };

    let mut on_b = resume(&t.b, &token, &path, &id, Cursor::Header(1));
    let (name, number, data) = on_b.next_numbered().unwrap();
    assert_eq!(
        (name.as_str(), number, data),
        ("delta", Some(2), json!({ "content": " upon" }))
    );
    let stopped = t.b.post(&format!("{path}/{id}/stop"), &token, json!(null));

    assert_eq!(stopped.status, 200, "{}", stopped.text);
    assert_eq!(state(&stopped.json()), ("stopped", "Once upon"));
    assert!(
        t.upstream.closed(Duration::from_secs(10)),
        "the model's connection stayed open"
    );
    let rest = numbered(on_a);
    assert_eq!(rest.last().unwrap().0, "done");
    assert_eq!(rest.last().unwrap().2, stopped.json());
    let (name, number, done) = on_b.next_numbered().unwrap();
    assert_eq!(
        (name.as_str(), number, done),
        ("done", Some(3), stopped.json())
    );
}

/// `POST` `content` streamed to `base` on a raw connection, read until the `reply`
/// event and `deltas` deltas: the connection (still open) and the reply's id.
fn post_raw(base: &str, token: &str, path: &str, deltas: usize) -> (TcpStream, String) {
    let body = json!({ "content": "Tell me everything" }).to_string();
    let mut connection = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    write!(
        connection,
        "POST {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\naccept: text/event-stream\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(connection.try_clone().unwrap());
    let (mut id, mut seen, mut name) = (None, 0, String::new());
    while id.is_none() || seen < deltas {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        if let Some(event) = line.strip_prefix("event: ") {
            name = event.trim().to_owned();
            seen += usize::from(name == "delta");
        } else if let Some(data) = line.strip_prefix("data: ")
            && name == "reply"
        {
            let reply: Value = serde_json::from_str(data).unwrap();
            id = reply["id"].as_str().map(str::to_owned);
        }
    }
    (connection, id.unwrap())
}

/// A `memlayer` process over `db` with the scripted `upstream`, and `vars`.
fn process(db: &TestDatabase, upstream: &Upstream, vars: &[(&str, &str)]) -> Service {
    let mut all = vec![
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", SECRET),
        ("BCRYPT_COST", "4"),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
        ("ASSISTANT_URL", upstream.url.as_str()),
        ("ASSISTANT_MODEL", "test-model"),
        ("ASSISTANT_TIMEOUT_SECS", "60"),
    ];
    all.extend_from_slice(vars);
    Service::spawn(memlayer(&all))
}

/// Kills an instance (SIGKILL) mid-reply; `survivor` starts another over the same
/// database, which must mark the reply failed with its text.
fn an_instance_killed_mid_reply(db: TestDatabase, survivor: impl FnOnce(TestDatabase) -> TestApp) {
    let upstream = Upstream::scripted(vec![Script::StallAfter(vec!["Once", " upon"])]);
    let service = process(&db, &upstream, &[]);
    let agent = crate::process::agent();
    let token = crate::support::register_at(&agent, &service.base, "killed@example.com");
    let chat = crate::support::chat_at(&agent, &service.base, &token);
    let path = crate::support::messages_path(&chat);
    let (_connection, id) = post_raw(&service.base, &token, &path, 2);
    // Its two pieces reach the database within a batch.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.count(&format!(
        "SELECT COUNT(*) FROM messages WHERE content = 'Once upon' AND id = '{id}'"
    )) == 0
    {
        assert!(Instant::now() < deadline, "the pieces were not stored");
        std::thread::sleep(Duration::from_millis(20));
    }

    service.kill();
    let api = survivor(db);

    let failed = eventually(&api, &token, &path, &id, |m| {
        m.is_some_and(|m| m["status"] != "generating")
    })
    .unwrap();
    assert_eq!(state(&failed), ("failed", "Once upon"));
    // Ended: a resume answers its ending at once.
    let resumed = numbered(resume(&api, &token, &path, &id, Cursor::None));
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0].0, "error");
}

#[test]
fn a_reply_of_a_killed_instance_is_marked_failed_by_another_on_postgres() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    // Another instance (on PostgreSQL no start marks anything: other instances may be
    // generating); it finds the reply silent past its window.
    an_instance_killed_mid_reply(db, |db| {
        TestApp::start_with(db, &[("REPLY_SILENCE_SECS", "3")])
    });
}

#[test]
fn a_reply_of_a_killed_instance_is_marked_failed_by_the_next_start_on_sqlite() {
    an_instance_killed_mid_reply(TestDatabase::sqlite(), |db| TestApp::start_with(db, &[]));
}

#[test]
fn sigterm_lets_a_reply_finish_within_the_shutdown_timeout_then_stores_the_rest_stopped() {
    let db = TestDatabase::sqlite();
    let upstream = Upstream::scripted(vec![
        Script::Paced(vec!["Quick", " one"], 200),
        Script::StallAfter(vec!["Once"]),
    ]);
    let service = process(&db, &upstream, &[("SHUTDOWN_TIMEOUT_SECS", "3")]);
    let agent = crate::process::agent();
    let token = crate::support::register_at(&agent, &service.base, "sigterm@example.com");
    let (quick, slow) = (
        crate::support::chat_at(&agent, &service.base, &token),
        crate::support::chat_at(&agent, &service.base, &token),
    );
    let (quick_connection, quick_id) = post_raw(
        &service.base,
        &token,
        &crate::support::messages_path(&quick),
        0,
    );
    drop(quick_connection);
    // A client still following the slow one when the shutdown comes.
    let (slow_connection, slow_id) = post_raw(
        &service.base,
        &token,
        &crate::support::messages_path(&slow),
        1,
    );

    service.terminate();

    let mut followed = BufReader::new(slow_connection);
    let ending = loop {
        let mut line = String::new();
        assert!(
            followed.read_line(&mut line).unwrap() > 0,
            "the stream ended without done"
        );
        if line.starts_with("event: ") {
            let mut data = String::new();
            followed.read_line(&mut data).unwrap();
            if line.trim() == "event: done" {
                break serde_json::from_str::<Value>(data.trim_start_matches("data: ")).unwrap();
            }
        }
    };
    assert_eq!(state(&ending), ("stopped", "Once"));
    let (status, _) = service.finish();
    assert!(status.success(), "{status:?}");
    let stored = |id: &str, status: &str, content: &str| {
        db.count(&format!(
            "SELECT COUNT(*) FROM messages WHERE id = '{id}' AND status = '{status}' AND content = '{content}'"
        ))
    };
    assert_eq!(stored(&quick_id, "complete", "Quick one"), 1);
    assert_eq!(stored(&slow_id, "stopped", "Once"), 1);
    assert!(
        upstream.closed(Duration::from_secs(5)),
        "the model's connection stayed open"
    );
}
