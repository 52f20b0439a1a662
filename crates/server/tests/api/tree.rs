//! Conversations as a tree: regenerate, edit, switch branches, the whole tree, delete a
//! branch, and the active path the SPA lists, on both backends.

use serde_json::{Value, json};

use crate::api_tests;
use crate::support::{TestApp, event_names, messages_path};
use crate::upstream::{Script, Upstream};

api_tests!(
    a_chat_that_never_branched_lists_every_message_each_following_the_one_before,
    regenerating_an_answer_adds_a_sibling_that_becomes_the_active_leaf,
    regenerating_a_question_answers_it_again,
    editing_a_question_adds_a_sibling_question_with_its_answer_and_keeps_the_original,
    switching_branches_lists_the_path_through_the_chosen_message,
    a_page_after_a_cursor_stays_on_its_path_when_the_active_path_changes,
    the_tree_lists_every_branch_in_the_order_written,
    deleting_a_message_takes_everything_below_it_and_moves_the_active_leaf_off_it,
    a_regenerated_answer_streams_without_a_message_event_an_edit_with_one,
    the_routes_of_a_message_answer_401_403_404_and_422_as_every_route_does,
    the_export_carries_the_tree,
    racing_changes_to_one_branch_leave_the_active_leaf_a_message_of_the_chat,
);

/// The active path of `chat` (its latest page).
fn path(api: &TestApp, token: &str, chat: &str) -> Vec<Value> {
    api.listed_messages(token, chat)
}

/// The contents of `messages`, in order.
fn contents(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(|m| m["id"].clone()).collect()
}

/// A user with a chat of one exchange: the token, the chat, the question and the reply.
fn one_exchange(api: &TestApp) -> (String, String, Value, Value) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    assert_eq!(api.post_message(&token, &chat, "Hello").status, 201);
    let listed = path(api, &token, &chat);
    (token, chat, listed[0].clone(), listed[1].clone())
}

fn regenerate(api: &TestApp, token: &str, chat: &str, message: &Value) -> crate::support::Reply {
    api.request(
        "POST",
        &format!(
            "/chats/{chat}/messages/{}/regenerate",
            message["id"].as_str().unwrap()
        ),
    )
    .token(token)
    .send()
}

fn edit(
    api: &TestApp,
    token: &str,
    chat: &str,
    message: &Value,
    content: &str,
) -> crate::support::Reply {
    api.post(
        &format!(
            "/chats/{chat}/messages/{}/edit",
            message["id"].as_str().unwrap()
        ),
        token,
        json!({ "content": content }),
    )
}

fn switch(api: &TestApp, token: &str, chat: &str, message: &Value) -> crate::support::Reply {
    api.request("PUT", &format!("/chats/{chat}/active"))
        .token(token)
        .json(&json!({ "message_id": message["id"] }))
        .send()
}

fn a_chat_that_never_branched_lists_every_message_each_following_the_one_before(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    assert_eq!(api.post_message(&token, &chat, "one").status, 201);
    assert_eq!(api.post_message(&token, &chat, "two").status, 201);

    let listed = path(api, &token, &chat);
    let found = api.get(&format!("/chats/{chat}"), &token).json();

    assert_eq!(
        contents(&listed),
        ["one", "Message received", "two", "Message received"]
    );
    assert_eq!(listed[0]["parent_id"], Value::Null);
    for pair in listed.windows(2) {
        assert_eq!(pair[1]["parent_id"], pair[0]["id"]);
    }
    for message in &listed {
        assert_eq!(message["status"], "complete");
        assert_eq!(message["sibling_ids"], json!([message["id"]]));
    }
    assert_eq!(found["active_message_id"], listed[3]["id"]);
}

fn regenerating_an_answer_adds_a_sibling_that_becomes_the_active_leaf(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);

    let reply = regenerate(api, &token, &chat, &first);

    assert_eq!(reply.status, 201, "{}", reply.text);
    let second = reply.json();
    assert_eq!(second["parent_id"], question["id"]);
    assert_eq!(second["role"], "assistant");
    assert_eq!(second["sibling_ids"], json!([first["id"], second["id"]]));
    let listed = path(api, &token, &chat);
    assert_eq!(ids(&listed), [question["id"].clone(), second["id"].clone()]);
    assert_eq!(listed[1]["sibling_ids"], json!([first["id"], second["id"]]));
}

fn regenerating_a_question_answers_it_again(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);

    let reply = regenerate(api, &token, &chat, &question);

    assert_eq!(reply.status, 201, "{}", reply.text);
    let second = reply.json();
    assert_eq!(second["parent_id"], question["id"]);
    assert_eq!(second["sibling_ids"], json!([first["id"], second["id"]]));
}

fn editing_a_question_adds_a_sibling_question_with_its_answer_and_keeps_the_original(
    api: &TestApp,
) {
    let (token, chat, question, first) = one_exchange(api);

    let reply = edit(api, &token, &chat, &question, "Hello again");

    assert_eq!(reply.status, 201, "{}", reply.text);
    let answer = reply.json();
    let listed = path(api, &token, &chat);
    assert_eq!(contents(&listed), ["Hello again", "Message received"]);
    assert_eq!(listed[1]["id"], answer["id"]);
    assert_eq!(listed[0]["parent_id"], Value::Null);
    assert_eq!(
        listed[0]["sibling_ids"],
        json!([question["id"], listed[0]["id"]])
    );
    // The original and its answer are still there, on their own branch.
    assert_eq!(switch(api, &token, &chat, &question).status, 200);
    assert_eq!(
        ids(&path(api, &token, &chat)),
        [question["id"].clone(), first["id"].clone()]
    );
}

fn switching_branches_lists_the_path_through_the_chosen_message(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);
    let second = regenerate(api, &token, &chat, &first).json();
    // A follow-up on the second answer's branch.
    assert_eq!(api.post_message(&token, &chat, "more").status, 201);

    let to_first = switch(api, &token, &chat, &first);
    let on_first = path(api, &token, &chat);
    let to_question = switch(api, &token, &chat, &question);
    let on_newest = path(api, &token, &chat);

    assert_eq!(to_first.status, 200, "{}", to_first.text);
    assert_eq!(to_first.json()["active_message_id"], first["id"]);
    assert_eq!(
        ids(&on_first),
        [question["id"].clone(), first["id"].clone()]
    );
    // The newest leaf below the question: the end of the follow-up.
    assert_eq!(to_question.status, 200);
    assert_eq!(
        contents(&on_newest),
        ["Hello", "Message received", "more", "Message received"]
    );
    assert_eq!(on_newest[1]["id"], second["id"]);
    // A new message follows the active leaf and becomes it.
    assert_eq!(switch(api, &token, &chat, &first).status, 200);
    let posted = api.post_message(&token, &chat, "after the first").json();
    let listed = path(api, &token, &chat);
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[2]["parent_id"], first["id"]);
    assert_eq!(listed[3]["id"], posted["id"]);
}

fn a_page_after_a_cursor_stays_on_its_path_when_the_active_path_changes(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    for n in 0..3 {
        assert_eq!(
            api.post_message(&token, &chat, &format!("q{n}")).status,
            201
        );
    }
    let first_page = api.get(&format!("{}?limit=2", messages_path(&chat)), &token);
    let cursor = first_page.header("x-next-cursor").unwrap().to_owned();
    let page = first_page.json();
    // Another branch becomes active before the next page is read.
    let all = path(api, &token, &chat);
    assert_eq!(regenerate(api, &token, &chat, &all[1]).status, 201);

    let next = api.get(
        &format!("{}?limit=2&cursor={cursor}", messages_path(&chat)),
        &token,
    );

    assert_eq!(
        contents(page.as_array().unwrap()),
        ["q2", "Message received"]
    );
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(
        contents(next.json().as_array().unwrap()),
        ["q1", "Message received"]
    );
}

fn the_tree_lists_every_branch_in_the_order_written(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);
    let second = regenerate(api, &token, &chat, &first).json();
    let edited = edit(api, &token, &chat, &question, "Hi").json();

    let whole = api.get(&format!("/chats/{chat}/tree"), &token);
    let page = api.get(&format!("/chats/{chat}/tree?limit=2"), &token);
    let cursor = page.header("x-next-cursor").unwrap().to_owned();
    let rest = api.get(&format!("/chats/{chat}/tree?cursor={cursor}"), &token);

    assert_eq!(whole.status, 200, "{}", whole.text);
    let whole = whole.json().as_array().unwrap().clone();
    assert_eq!(whole.len(), 5);
    assert_eq!(whole[0]["id"], question["id"]);
    assert_eq!(whole[1]["id"], first["id"]);
    assert_eq!(whole[2]["id"], second["id"]);
    assert_eq!(whole[4]["id"], edited["id"]);
    assert_eq!(
        whole[3]["sibling_ids"],
        json!([question["id"], whole[3]["id"]])
    );
    let paged: Vec<Value> = page
        .json()
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.json().as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(paged, whole);
}

fn deleting_a_message_takes_everything_below_it_and_moves_the_active_leaf_off_it(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);
    let second = regenerate(api, &token, &chat, &first).json();
    assert_eq!(api.post_message(&token, &chat, "more").status, 201);

    let deleted = api
        .request(
            "DELETE",
            &format!("/chats/{chat}/messages/{}", second["id"].as_str().unwrap()),
        )
        .token(&token)
        .send();

    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    assert_eq!(
        ids(&path(api, &token, &chat)),
        [question["id"].clone(), first["id"].clone()]
    );
    let tree = api.get(&format!("/chats/{chat}/tree"), &token).json();
    assert_eq!(tree.as_array().unwrap().len(), 2);
    let again = api
        .request(
            "DELETE",
            &format!("/chats/{chat}/messages/{}", second["id"].as_str().unwrap()),
        )
        .token(&token)
        .send();
    again.assert_detail(404, "Message not found");
    let root = api
        .request(
            "DELETE",
            &format!(
                "/chats/{chat}/messages/{}",
                question["id"].as_str().unwrap()
            ),
        )
        .token(&token)
        .send();
    assert_eq!(root.status, 204);
    assert!(path(api, &token, &chat).is_empty());
    let found = api.get(&format!("/chats/{chat}"), &token).json();
    assert_eq!(found["active_message_id"], Value::Null);
}

fn a_regenerated_answer_streams_without_a_message_event_an_edit_with_one(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);

    let regenerated = api
        .request(
            "POST",
            &format!(
                "/chats/{chat}/messages/{}/regenerate",
                first["id"].as_str().unwrap()
            ),
        )
        .token(&token)
        .stream()
        .all();
    let edited = api
        .request(
            "POST",
            &format!(
                "/chats/{chat}/messages/{}/edit",
                question["id"].as_str().unwrap()
            ),
        )
        .token(&token)
        .json(&json!({ "content": "Again" }))
        .stream()
        .all();

    assert_eq!(event_names(&regenerated), ["reply", "delta", "done"]);
    assert_eq!(regenerated[2].1["parent_id"], question["id"]);
    assert_eq!(event_names(&edited), ["message", "reply", "delta", "done"]);
    assert_eq!(edited[0].1["content"], "Again");
    assert_eq!(
        edited[0].1["sibling_ids"],
        json!([question["id"], edited[0].1["id"]])
    );
    assert_eq!(edited[3].1["parent_id"], edited[0].1["id"]);
}

fn the_routes_of_a_message_answer_401_403_404_and_422_as_every_route_does(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);
    let other_chat = api.new_chat(&token);
    let (stranger, _, _, _) = one_exchange(api);
    let id = |m: &Value| m["id"].as_str().unwrap().to_owned();
    let routes = |chat: &str, message: &str| {
        [
            (
                "POST",
                format!("/chats/{chat}/messages/{message}/regenerate"),
                None,
            ),
            (
                "POST",
                format!("/chats/{chat}/messages/{message}/edit"),
                Some(json!({ "content": "x" })),
            ),
            ("DELETE", format!("/chats/{chat}/messages/{message}"), None),
        ]
    };

    for (method, path, body) in routes(&chat, &id(&question)) {
        let anonymous = api.call(method, &path, "", body.as_ref());
        anonymous.assert_detail(401, "Not authenticated");
        let theirs = api.call(method, &path, &stranger, body.as_ref());
        theirs.assert_detail(403, "Not allowed to access this chat");
    }
    for (method, path, body) in routes(&other_chat, &id(&question)) {
        // A message of another chat is no message of this one.
        api.call(method, &path, &token, body.as_ref())
            .assert_detail(404, "Message not found");
    }
    for (method, path, body) in routes(&chat, "not-a-uuid") {
        api.call(method, &path, &token, body.as_ref())
            .assert_invalid(json!(["path", "message_id"]), "uuid_parsing");
    }
    edit(api, &token, &chat, &first, "x")
        .assert_invalid(json!(["path", "message_id"]), "value_error");
    edit(api, &token, &chat, &question, "  ")
        .assert_invalid(json!(["body", "content"]), "string_too_short");
    let unknown = api
        .request("PUT", &format!("/chats/{chat}/active"))
        .token(&token)
        .json(&json!({ "message_id": first["id"].as_str().unwrap().replace('0', "1") }))
        .send();
    unknown.assert_detail(404, "Message not found");
    let malformed = api
        .request("PUT", &format!("/chats/{chat}/active"))
        .token(&token)
        .json(&json!({ "message_id": "nope" }))
        .send();
    assert_eq!(malformed.status, 422, "{}", malformed.text);
    // Nothing changed.
    assert_eq!(
        ids(&path(api, &token, &chat)),
        [question["id"].clone(), first["id"].clone()]
    );
}

fn the_export_carries_the_tree(api: &TestApp) {
    let (token, chat, question, first) = one_exchange(api);
    let second = regenerate(api, &token, &chat, &first).json();

    let export = api.get("/auth/me/export", &token).json();

    let exported = &export["chats"][0];
    assert_eq!(exported["id"], json!(chat));
    assert_eq!(exported["active_message_id"], second["id"]);
    let messages = exported["messages"].as_array().unwrap();
    assert_eq!(
        ids(messages),
        [
            question["id"].clone(),
            first["id"].clone(),
            second["id"].clone()
        ]
    );
    assert_eq!(messages[2]["parent_id"], question["id"]);
    assert_eq!(messages[2]["status"], "complete");
}

#[test]
fn the_model_sees_the_new_messages_ancestors_never_another_branch() {
    let upstream = Upstream::scripted(vec![
        Script::Answer(vec!["A1"]),
        Script::Answer(vec!["A2"]),
        Script::Answer(vec!["A1 again"]),
    ]);
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[
            ("ASSISTANT_URL", &upstream.url),
            ("ASSISTANT_MODEL", "test-model"),
        ],
    );
    let token = api.new_user();
    let chat = api.new_chat(&token);
    assert_eq!(api.post_message(&token, &chat, "Q1").status, 201);
    assert_eq!(api.post_message(&token, &chat, "Q2").status, 201);
    let listed = path(&api, &token, &chat);

    let again = regenerate(&api, &token, &chat, &listed[1]);

    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json()["content"], "A1 again");
    let sent = &upstream.requests()[2].body["messages"];
    assert_eq!(sent, &json!([{ "role": "user", "content": "Q1" }]));
    // The new answer is active: the second exchange is on the other branch now.
    assert_eq!(contents(&path(&api, &token, &chat)), ["Q1", "A1 again"]);
}

/// Whether the chat's active leaf is one of its messages (null only when it has none),
/// and the listed path a chain that ends there.
fn assert_consistent(api: &TestApp, token: &str, chat: &str) {
    let tree = api.get(&format!("/chats/{chat}/tree"), token).json();
    let tree = tree.as_array().unwrap();
    let active = api.get(&format!("/chats/{chat}"), token).json()["active_message_id"].clone();
    let listed = path(api, token, chat);
    if tree.is_empty() {
        assert_eq!(active, Value::Null);
        assert!(listed.is_empty());
        return;
    }
    assert!(
        tree.iter().any(|m| m["id"] == active),
        "{active} not in {tree:?}"
    );
    assert_eq!(listed.last().unwrap()["id"], active);
    assert_eq!(listed[0]["parent_id"], Value::Null);
    for pair in listed.windows(2) {
        assert_eq!(pair[1]["parent_id"], pair[0]["id"]);
    }
}

fn racing_changes_to_one_branch_leave_the_active_leaf_a_message_of_the_chat(api: &TestApp) {
    for _ in 0..10 {
        let (token, chat, question, answer) = one_exchange(api);
        let delete = format!(
            "/chats/{chat}/messages/{}",
            question["id"].as_str().unwrap()
        );

        let (regenerated, deleted) = std::thread::scope(|scope| {
            let regenerated = scope.spawn(|| regenerate(api, &token, &chat, &answer).status);
            let deleted =
                scope.spawn(|| api.request("DELETE", &delete).token(&token).send().status);
            (regenerated.join().unwrap(), deleted.join().unwrap())
        });

        assert!([201, 404].contains(&regenerated), "{regenerated}");
        assert_eq!(deleted, 204);
        assert_consistent(api, &token, &chat);
        assert_eq!(api.post_message(&token, &chat, "still works").status, 201);
        assert_consistent(api, &token, &chat);
    }
}
