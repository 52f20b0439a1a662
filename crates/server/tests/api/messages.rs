//! `/chats/{chat_id}/messages`: post and list.

use serde_json::{Value, json};

use crate::api_tests;
use crate::support::{TestApp, messages_path};

api_tests!(
    posting_answers_201_with_the_assistants_reply,
    the_users_message_is_stored_before_its_reply,
    many_quick_posts_read_back_in_order_every_time,
    concurrent_posts_to_one_chat_are_all_kept,
    content_is_stored_exactly_as_written,
    blank_content_is_422,
    content_over_32000_characters_is_422,
    the_longest_message_fits_even_with_every_character_escaped,
    a_body_over_the_size_limit_is_413,
    content_with_a_nul_character_is_422_on_every_backend,
    a_new_chat_has_no_messages,
    messages_are_read_page_by_page_in_order,
    without_a_model_a_streamed_reply_is_one_delta_then_done,
);

fn posting_answers_201_with_the_assistants_reply(api: &TestApp) {
    let token = api.new_user();
    let user_id = api.get("/auth/me", &token).json()["id"].clone();
    let chat = api.new_chat(&token);

    let reply = api.post_message(&token, &chat, "hello");

    assert_eq!(reply.status, 201, "{}", reply.text);
    let message = reply.json();
    let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "chat_id",
            "content",
            "created_at",
            "id",
            "parent_id",
            "role",
            "sibling_ids",
            "status",
            "usage",
            "user_id"
        ]
    );
    assert_eq!(message["usage"], json!(null), "no model, nothing spent");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], "Message received");
    assert_eq!(message["status"], "complete");
    assert_eq!(message["sibling_ids"], json!([message["id"]]));
    assert!(message["parent_id"].is_string(), "{message}");
    assert_eq!(message["chat_id"], json!(chat));
    assert_eq!(message["user_id"], user_id);
    assert!(message["created_at"].as_str().unwrap().ends_with('Z'));
}

fn the_users_message_is_stored_before_its_reply(api: &TestApp) {
    let token = api.new_user();
    let user_id = api.get("/auth/me", &token).json()["id"].clone();
    let chat = api.new_chat(&token);
    let reply = api.post_message(&token, &chat, "question").json();

    let listed = api.listed_messages(&token, &chat);

    assert_eq!(listed.len(), 2);
    let (question, answer) = (&listed[0], &listed[1]);
    assert_eq!(
        (&question["role"], &question["content"]),
        (&json!("user"), &json!("question"))
    );
    assert_eq!(
        (&question["user_id"], &question["chat_id"]),
        (&user_id, &json!(chat))
    );
    assert_eq!(answer, &reply);
    assert!(question["created_at"].as_str().unwrap() < answer["created_at"].as_str().unwrap());
}

fn many_quick_posts_read_back_in_order_every_time(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    for i in 0..25 {
        let reply = api.post_message(&token, &chat, &format!("message {i}"));
        assert_eq!(reply.status, 201, "{}", reply.text);
    }

    let first_read = api.listed_messages(&token, &chat);
    let second_read = api.listed_messages(&token, &chat);

    assert_eq!(first_read, second_read);
    let contents: Vec<&str> = first_read
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..25)
        .flat_map(|i| [format!("message {i}"), "Message received".to_owned()])
        .collect();
    assert_eq!(contents, expected);
    let stamps: Vec<&str> = first_read
        .iter()
        .map(|m| m["created_at"].as_str().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|pair| pair[0] <= pair[1]),
        "{stamps:?}"
    );
}

fn concurrent_posts_to_one_chat_are_all_kept(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    let path = messages_path(&chat);

    std::thread::scope(|scope| {
        for t in 0..8 {
            let (path, token) = (&path, &token);
            scope.spawn(move || {
                for i in 0..10 {
                    let reply = api.post(path, token, json!({ "content": format!("t{t} m{i}") }));
                    assert_eq!(reply.status, 201, "{}", reply.text);
                }
            });
        }
    });

    // Posts that raced on one leaf are siblings: every one is in the tree, and the
    // active path is a chain from a first message to the active leaf.
    let tree = api.get(&format!("/chats/{chat}/tree"), &token).json();
    assert_eq!(tree.as_array().unwrap().len(), 160);
    assert_eq!(api.count("messages", &format!("chat_id = '{chat}'")), 160);
    let listed = api.listed_messages(&token, &chat);
    assert_eq!(listed[0]["parent_id"], Value::Null);
    for pair in listed.windows(2) {
        assert_eq!(pair[1]["parent_id"], pair[0]["id"], "{listed:?}");
    }
    let active = api.get(&format!("/chats/{chat}"), &token).json()["active_message_id"].clone();
    assert_eq!(listed.last().unwrap()["id"], active);
    assert_eq!(listed, api.listed_messages(&token, &chat));
}

fn content_is_stored_exactly_as_written(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    let content = "  leading space, emoji 👩‍💻, RTL שלום, quotes \" and \\, tab\t and\nnewlines\n";

    api.post_message(&token, &chat, content);

    assert_eq!(api.listed_messages(&token, &chat)[0]["content"], content);
}

fn blank_content_is_422(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    for content in ["", "  \n\t"] {
        api.post_message(&token, &chat, content)
            .assert_invalid(json!(["body", "content"]), "string_too_short");
    }
    assert!(api.listed_messages(&token, &chat).is_empty());
}

fn content_over_32000_characters_is_422(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    let fits = api.post_message(&token, &chat, &"ß".repeat(32_000));
    let too_long = api.post_message(&token, &chat, &"ß".repeat(32_001));

    assert_eq!(fits.status, 201, "{}", fits.text);
    too_long.assert_invalid(json!(["body", "content"]), "string_too_long");
}

fn a_body_over_the_size_limit_is_413(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    let reply = api.post_message(&token, &chat, &"x".repeat(600 * 1024));

    reply.assert_detail(413, "Request body too large: the limit is 524288 bytes");
    assert!(api.listed_messages(&token, &chat).is_empty());
}

fn content_with_a_nul_character_is_422_on_every_backend(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    let reply = api.post_message(&token, &chat, "a\u{0}b");

    reply.assert_invalid(json!(["body", "content"]), "value_error");
}

fn a_new_chat_has_no_messages(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    assert!(api.listed_messages(&token, &chat).is_empty());
}

fn messages_are_read_page_by_page_in_order(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    for i in 0..4 {
        api.post_message(&token, &chat, &format!("m{i}"));
    }
    let everything = api.listed_messages(&token, &chat);

    // Pages go back in time, each in the order the messages were written.
    let mut pages = vec![];
    let first_page = format!("{}?limit=3", messages_path(&chat));
    let mut path = first_page.clone();
    loop {
        let reply = api.get(&path, &token);
        assert_eq!(reply.status, 200, "{}", reply.text);
        pages.push(reply.json().as_array().unwrap().clone());
        match reply.header("x-next-cursor") {
            Some(cursor) => path = format!("{first_page}&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(everything.len(), 8);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
    assert_eq!(
        pages[0][2]["content"], "Message received",
        "the first page ends with the latest message"
    );
    pages.reverse();
    assert_eq!(pages.concat(), everything);
}

fn the_longest_message_fits_even_with_every_character_escaped(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    // 32,000 emoji written as \uXXXX\uXXXX surrogate pairs: 12 bytes each, as Python's
    // json.dumps sends them.
    let body = format!(r#"{{"content": "{}"}}"#, r"\ud83d\ude00".repeat(32_000));
    let over = format!(r#"{{"content": "{}"}}"#, r"\ud83d\ude00".repeat(32_001));

    let fits = api
        .request("POST", &messages_path(&chat))
        .token(&token)
        .header("content-type", "application/json")
        .raw(body.into_bytes())
        .send();
    let too_long = api
        .request("POST", &messages_path(&chat))
        .token(&token)
        .header("content-type", "application/json")
        .raw(over.into_bytes())
        .send();

    assert_eq!(
        fits.status,
        201,
        "{}",
        fits.text.chars().take(300).collect::<String>()
    );
    too_long.assert_invalid(json!(["body", "content"]), "string_too_long");
}

fn without_a_model_a_streamed_reply_is_one_delta_then_done(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    let path = messages_path(&chat);

    let events = api.post_streamed(&path, &token, json!({ "content": "hello" }));

    assert_eq!(events.status, 200);
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert_eq!(events.header("cache-control"), Some("no-cache"));
    let events = events.all();
    let names = crate::support::event_names(&events);
    assert_eq!(names, ["message", "reply", "delta", "done"]);
    assert_eq!(events[2].1, json!({ "content": "Message received" }));
    assert_eq!(events[3].1["content"], "Message received");
    assert_eq!(
        api.listed_messages(&token, &chat),
        [events[0].1.clone(), events[3].1.clone()]
    );
}
