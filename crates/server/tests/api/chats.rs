//! `/chats`: create, list, get, rename, delete; ownership on every route.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api_tests;
use crate::support::{TestApp, messages_path};

api_tests!(
    creating_a_chat_answers_201_with_exactly_id_title_and_created_at,
    a_chat_without_a_title_is_named_after_the_utc_minute_it_was_created,
    a_null_blank_or_absent_title_or_an_empty_body_gets_the_default_title,
    a_title_is_trimmed,
    a_title_longer_than_200_characters_is_422,
    chats_are_listed_newest_first_and_only_the_users_own,
    a_user_without_chats_lists_none,
    getting_a_chat_answers_it,
    renaming_a_chat_answers_and_keeps_the_new_title,
    renaming_to_a_blank_or_missing_title_is_422,
    deleting_a_chat_answers_204_without_a_body_and_deletes_its_messages,
    another_users_chat_is_403_on_every_route_and_nothing_changes,
    a_missing_chat_is_404_on_every_route,
    a_chat_id_that_is_not_a_uuid_is_422_at_path_chat_id,
    chats_are_read_page_by_page_with_limit_and_the_next_cursor,
    without_a_limit_a_page_holds_200_chats,
    a_bad_limit_or_cursor_is_422_in_the_query,
);

fn assert_chat_shape(chat: &Value) {
    let keys: Vec<&String> = chat.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "active_message_id",
            "archived",
            "created_at",
            "folder_id",
            "id",
            "pinned",
            "title"
        ],
        "{chat}"
    );
    assert!(uuid::Uuid::parse_str(chat["id"].as_str().unwrap()).is_ok());
    assert!(
        chat["created_at"].as_str().unwrap().ends_with('Z'),
        "{chat}"
    );
}

fn creating_a_chat_answers_201_with_exactly_id_title_and_created_at(api: &TestApp) {
    let token = api.new_user();

    let reply = api.post("/chats", &token, json!({ "title": "Trip to Lisbon" }));

    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_chat_shape(&reply.json());
    assert_eq!(reply.json()["title"], "Trip to Lisbon");
}

fn a_chat_without_a_title_is_named_after_the_utc_minute_it_was_created(api: &TestApp) {
    let token = api.new_user();

    let chat = api.post("/chats", &token, json!({})).json();

    let created_at: DateTime<Utc> = chat["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        chat["title"],
        created_at.format("Chat %Y-%m-%d %H:%M").to_string()
    );
}

fn a_null_blank_or_absent_title_or_an_empty_body_gets_the_default_title(api: &TestApp) {
    let token = api.new_user();
    let empty_body = api
        .request("POST", "/chats")
        .token(&token)
        .header("content-type", "application/json")
        .send();
    let replies = [
        api.post("/chats", &token, json!(null)),
        api.post("/chats", &token, json!({ "title": null })),
        api.post("/chats", &token, json!({ "title": "   " })),
        api.post("/chats", &token, json!({})),
        empty_body,
    ];

    for reply in replies {
        assert_eq!(reply.status, 201, "{}", reply.text);
        let title = reply.json()["title"].as_str().unwrap().to_owned();
        assert!(
            title.starts_with("Chat 20") && title.len() == "Chat 2026-11-26 09:30".len(),
            "{title}"
        );
    }
}

fn a_title_is_trimmed(api: &TestApp) {
    let token = api.new_user();

    let reply = api.post("/chats", &token, json!({ "title": "  Plans \n" }));

    assert_eq!(reply.json()["title"], "Plans");
}

fn a_title_longer_than_200_characters_is_422(api: &TestApp) {
    let token = api.new_user();

    let fits = api.post("/chats", &token, json!({ "title": "é".repeat(200) }));
    let too_long = api.post("/chats", &token, json!({ "title": "é".repeat(201) }));

    assert_eq!(fits.status, 201, "{}", fits.text);
    too_long.assert_invalid(json!(["body", "title"]), "string_too_long");
}

fn chats_are_listed_newest_first_and_only_the_users_own(api: &TestApp) {
    let ada = api.new_user();
    let bob = api.new_user();
    for title in ["one", "two", "three"] {
        api.post("/chats", &ada, json!({ "title": title }));
    }
    api.post("/chats", &bob, json!({ "title": "bob's" }));

    let reply = api.get("/chats", &ada);

    assert_eq!(reply.status, 200, "{}", reply.text);
    let chats = reply.json();
    let titles: Vec<&str> = chats
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["three", "two", "one"]);
    chats.as_array().unwrap().iter().for_each(assert_chat_shape);
}

fn a_user_without_chats_lists_none(api: &TestApp) {
    let reply = api.get("/chats", &api.new_user());

    assert_eq!((reply.status, reply.json()), (200, json!([])));
}

fn getting_a_chat_answers_it(api: &TestApp) {
    let token = api.new_user();
    let created = api
        .post("/chats", &token, json!({ "title": "Mine" }))
        .json();

    let reply = api.get(
        &format!("/chats/{}", created["id"].as_str().unwrap()),
        &token,
    );

    assert_eq!((reply.status, reply.json()), (200, created));
}

fn renaming_a_chat_answers_and_keeps_the_new_title(api: &TestApp) {
    let token = api.new_user();
    let created = api
        .post("/chats", &token, json!({ "title": "Before" }))
        .json();
    let path = format!("/chats/{}", created["id"].as_str().unwrap());

    let reply = api
        .request("PATCH", &path)
        .token(&token)
        .json(&json!({ "title": " After " }))
        .send();

    assert_eq!(reply.status, 200, "{}", reply.text);
    let renamed = reply.json();
    assert_chat_shape(&renamed);
    assert_eq!(
        (&renamed["id"], &renamed["title"], &renamed["created_at"]),
        (&created["id"], &json!("After"), &created["created_at"])
    );
    assert_eq!(api.get(&path, &token).json()["title"], "After");
}

fn renaming_to_a_blank_or_missing_title_is_422(api: &TestApp) {
    let token = api.new_user();
    let path = format!("/chats/{}", api.new_chat(&token));

    let blank = api
        .request("PATCH", &path)
        .token(&token)
        .json(&json!({ "title": "  " }))
        .send();
    let missing = api
        .request("PATCH", &path)
        .token(&token)
        .json(&json!({}))
        .send();
    let null = api
        .request("PATCH", &path)
        .token(&token)
        .json(&json!({ "title": null }))
        .send();

    blank.assert_invalid(json!(["body", "title"]), "string_too_short");
    missing.assert_invalid(json!(["body", "title"]), "missing");
    null.assert_invalid(json!(["body", "title"]), "string_type");
    assert_eq!(api.get(&path, &token).json()["title"], "A chat");
}

fn deleting_a_chat_answers_204_without_a_body_and_deletes_its_messages(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    api.post_message(&token, &chat, "hi");
    assert_eq!(api.count("messages", &format!("chat_id = '{chat}'")), 2);

    let reply = api
        .request("DELETE", &format!("/chats/{chat}"))
        .token(&token)
        .send();

    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    assert_eq!(api.get(&format!("/chats/{chat}"), &token).status, 404);
    assert_eq!(api.count("messages", &format!("chat_id = '{chat}'")), 0);
}

fn another_users_chat_is_403_on_every_route_and_nothing_changes(api: &TestApp) {
    let owner = api.new_user();
    let intruder = api.new_user();
    let chat = api.new_chat(&owner);
    api.post_message(&owner, &chat, "private");

    for (method, path, body) in chat_routes(&chat) {
        api.call(method, &path, &intruder, body.as_ref())
            .assert_detail(403, "Not allowed to access this chat");
    }

    // Checked in the database, not only through the API.
    assert_eq!(
        api.count("chats", &format!("id = '{chat}' AND title = 'A chat'")),
        1
    );
    assert_eq!(api.count("messages", &format!("chat_id = '{chat}'")), 2);
    assert_eq!(api.count("messages", "content = 'hi'"), 0);
}

fn a_missing_chat_is_404_on_every_route(api: &TestApp) {
    let token = api.new_user();
    let missing = uuid::Uuid::now_v7().to_string();

    for (method, path, body) in chat_routes(&missing) {
        api.call(method, &path, &token, body.as_ref())
            .assert_detail(404, "Chat not found");
    }
}

fn a_chat_id_that_is_not_a_uuid_is_422_at_path_chat_id(api: &TestApp) {
    let token = api.new_user();

    for (method, path, body) in chat_routes("not-a-uuid") {
        api.call(method, &path, &token, body.as_ref())
            .assert_invalid(json!(["path", "chat_id"]), "uuid_parsing");
    }
}

/// Every route that names a chat, with a valid body where one is needed.
fn chat_routes(chat: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("/chats/{chat}"), None),
        (
            "PATCH",
            format!("/chats/{chat}"),
            Some(json!({ "title": "Taken over" })),
        ),
        ("DELETE", format!("/chats/{chat}"), None),
        ("GET", messages_path(chat), None),
        (
            "POST",
            messages_path(chat),
            Some(json!({ "content": "hi" })),
        ),
    ]
}

fn chats_are_read_page_by_page_with_limit_and_the_next_cursor(api: &TestApp) {
    let token = api.new_user();
    for i in 0..5 {
        api.post("/chats", &token, json!({ "title": format!("chat {i}") }));
    }

    let mut titles = vec![];
    let mut path = "/chats?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let reply = api.get(&path, &token);
        assert_eq!(reply.status, 200, "{}", reply.text);
        pages += 1;
        titles.extend(
            reply
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["title"].as_str().unwrap().to_owned()),
        );
        match reply.header("x-next-cursor") {
            Some(cursor) => path = format!("/chats?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(pages, 3);
    assert_eq!(titles, ["chat 4", "chat 3", "chat 2", "chat 1", "chat 0"]);
}

fn without_a_limit_a_page_holds_200_chats(api: &TestApp) {
    let token = api.new_user();
    for _ in 0..201 {
        api.post("/chats", &token, json!({}));
    }

    let first = api.get("/chats", &token);
    let cursor = first
        .header("x-next-cursor")
        .expect("a next page")
        .to_owned();
    let rest = api.get(&format!("/chats?cursor={cursor}"), &token);

    assert_eq!(first.json().as_array().unwrap().len(), 200);
    assert_eq!(rest.json().as_array().unwrap().len(), 1);
    assert_eq!(rest.header("x-next-cursor"), None);
}

fn a_bad_limit_or_cursor_is_422_in_the_query(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    for query in ["limit=0", "limit=1001", "limit=ten", "limit=-1"] {
        api.get(&format!("/chats?{query}"), &token)
            .assert_invalid(json!(["query", "limit"]), "value_error");
        api.get(&format!("{}?{query}", messages_path(&chat)), &token)
            .assert_invalid(json!(["query", "limit"]), "value_error");
    }
    api.get("/chats?cursor=garbage", &token)
        .assert_invalid(json!(["query", "cursor"]), "value_error");
}
