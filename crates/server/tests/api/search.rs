//! `GET /search`: the user's own messages and chat titles by their words.

use serde_json::{Value, json};

use crate::api_tests;
use crate::support::{Reply, TestApp};

api_tests!(
    a_hit_carries_its_chat_message_role_time_snippet_and_highlights,
    search_ignores_case_and_accents_and_matches_prefixes,
    every_word_of_the_query_must_match,
    punctuation_and_operators_in_the_query_are_plain_text,
    a_chat_title_is_a_hit_without_a_message,
    archived_chats_are_searched,
    deleted_messages_and_chats_are_not_found_and_renamed_titles_are,
    only_the_users_own_messages_are_found,
    hits_are_paged_newest_first_with_the_next_cursor,
    sort_by_relevance_puts_the_best_match_first_in_one_page,
    a_missing_blank_or_too_long_query_is_422,
    a_bad_limit_cursor_or_sort_is_422,
    search_needs_a_current_token,
    a_message_with_a_word_too_long_to_index_is_stored_and_found_by_its_other_words,
);

fn say(api: &TestApp, token: &str, chat: &str, content: &str) -> Value {
    let reply = api.post(
        &format!("/chats/{chat}/messages"),
        token,
        json!({ "content": content }),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

fn search(api: &TestApp, token: &str, query: &str) -> Reply {
    let q: String = url_encode(query);
    api.get(&format!("/search?q={q}"), token)
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn snippets(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["snippet"].as_str().unwrap().to_owned())
        .collect()
}

/// The highlighted pieces of each hit's snippet, counted in characters.
fn highlighted(reply: &Reply) -> Vec<Vec<String>> {
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| {
            let chars: Vec<char> = hit["snippet"].as_str().unwrap().chars().collect();
            hit["highlights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|range| {
                    let start = usize::try_from(range[0].as_u64().unwrap()).unwrap();
                    let end = usize::try_from(range[1].as_u64().unwrap()).unwrap();
                    chars[start..end].iter().collect()
                })
                .collect()
        })
        .collect()
}

fn chat_titled(api: &TestApp, token: &str, title: &str) -> String {
    let reply = api.post("/chats", token, json!({ "title": title }));
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_str().unwrap().to_owned()
}

fn a_hit_carries_its_chat_message_role_time_snippet_and_highlights(api: &TestApp) {
    let token = api.new_user();
    let chat = chat_titled(api, &token, "Trip");
    say(api, &token, &chat, "Where are the best pastéis in Lisbon?");
    let question = api.get(&format!("/chats/{chat}/messages"), &token).json()[0].clone();

    let reply = search(api, &token, "lisbon");

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!([{
            "chat_id": chat,
            "chat_title": "Trip",
            "message_id": question["id"],
            "role": "user",
            "created_at": question["created_at"],
            "snippet": "Where are the best pastéis in Lisbon?",
            "highlights": [[30, 36]],
        }])
    );
    assert_eq!(reply.header("x-next-cursor"), None);
}

fn search_ignores_case_and_accents_and_matches_prefixes(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    say(api, &token, &chat, "Le CAFÉ crème de Zoë");

    for query in ["cafe", "CAFÉ", "caf", "Creme", "zoe", "ZOË"] {
        assert_eq!(
            snippets(&search(api, &token, query)),
            ["Le CAFÉ crème de Zoë"],
            "{query}"
        );
    }
    assert_eq!(highlighted(&search(api, &token, "caf zo")), [["CAF", "Zo"]]);
    assert!(snippets(&search(api, &token, "afe")).is_empty());
}

fn every_word_of_the_query_must_match(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    say(api, &token, &chat, "red apples");
    say(api, &token, &chat, "green apples");

    assert_eq!(
        snippets(&search(api, &token, "apples green")),
        ["green apples"]
    );
    assert_eq!(
        search(api, &token, "apples")
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

fn punctuation_and_operators_in_the_query_are_plain_text(api: &TestApp) {
    let token = api.new_user();
    let chat = chat_titled(api, &token, "Talk");
    say(api, &token, &chat, "C++ & Rust: it's (really) fast!");

    for query in [
        "rust & (fast",
        "\"rust\" | !fast",
        "rust:* <-> fast'",
        "it's",
        "c++",
        "rust*",
        "-rust ^fast",
        "\\rust",
    ] {
        let reply = search(api, &token, query);
        assert_eq!(
            snippets(&reply),
            ["C++ & Rust: it's (really) fast!"],
            "{query}"
        );
    }
    // Operator words are plain words: the message holds no "near", "and" nor "or".
    for query in [
        "&",
        "!!! :* ()",
        "'\"",
        "😀",
        "NEAR(rust fast)",
        "rust AND fast OR",
        "rust;DROP TABLE messages;--",
    ] {
        let reply = search(api, &token, query);
        assert_eq!((reply.status, reply.json()), (200, json!([])), "{query}");
    }
}

fn a_chat_title_is_a_hit_without_a_message(api: &TestApp) {
    let token = api.new_user();
    let chat = api
        .post("/chats", &token, json!({ "title": "Groceries list" }))
        .json();

    let reply = search(api, &token, "grocer");

    assert_eq!(
        reply.json(),
        json!([{
            "chat_id": chat["id"],
            "chat_title": "Groceries list",
            "message_id": null,
            "role": null,
            "created_at": chat["created_at"],
            "snippet": "Groceries list",
            "highlights": [[0, 6]],
        }])
    );
}

fn archived_chats_are_searched(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    say(api, &token, &chat, "the answer was 42 kilometres");
    let archived = api
        .request("PATCH", &format!("/chats/{chat}"))
        .token(&token)
        .json(&json!({ "archived": true }))
        .send();
    assert_eq!(archived.status, 200);

    assert_eq!(
        snippets(&search(api, &token, "kilometre")),
        ["the answer was 42 kilometres"]
    );
}

fn deleted_messages_and_chats_are_not_found_and_renamed_titles_are(api: &TestApp) {
    let token = api.new_user();
    let kept = chat_titled(api, &token, "Kept");
    let gone = chat_titled(api, &token, "Gone");
    say(api, &token, &kept, "zebra one");
    say(api, &token, &gone, "zebra two");

    let deleted = api.call("DELETE", &format!("/chats/{gone}"), &token, None);
    assert_eq!(deleted.status, 204);
    assert_eq!(snippets(&search(api, &token, "zebra")), ["zebra one"]);
    assert!(snippets(&search(api, &token, "gone")).is_empty());

    api.request("PATCH", &format!("/chats/{kept}"))
        .token(&token)
        .json(&json!({ "title": "Savanna" }))
        .send();
    assert_eq!(snippets(&search(api, &token, "savan")), ["Savanna"]);
    assert!(snippets(&search(api, &token, "kept")).is_empty());
    assert_eq!(
        search(api, &token, "zebra").json()[0]["chat_title"],
        "Savanna"
    );
}

fn only_the_users_own_messages_are_found(api: &TestApp) {
    let ada = api.new_user();
    let bob = api.new_user();
    let adas = api.new_chat(&ada);
    say(api, &ada, &adas, "my secret recipe");

    assert!(snippets(&search(api, &bob, "secret")).is_empty());
    assert_eq!(snippets(&search(api, &ada, "secret")), ["my secret recipe"]);
}

fn hits_are_paged_newest_first_with_the_next_cursor(api: &TestApp) {
    let token = api.new_user();
    let chat = chat_titled(api, &token, "Notes");
    for n in 1..=5 {
        say(api, &token, &chat, &format!("note number {n}"));
    }

    let mut read = Vec::new();
    let mut path = "/search?q=note&limit=4".to_owned();
    loop {
        let page = api.get(&path, &token);
        read.extend(snippets(&page));
        match page.header("x-next-cursor") {
            Some(cursor) => path = format!("/search?q=note&limit=4&cursor={cursor}"),
            None => break,
        }
    }

    // Each post stores the question and the reply ("Message received"); the title is
    // the oldest hit.
    assert_eq!(
        read,
        [
            "note number 5",
            "note number 4",
            "note number 3",
            "note number 2",
            "note number 1",
            "Notes"
        ]
    );
}

fn sort_by_relevance_puts_the_best_match_first_in_one_page(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    say(
        api,
        &token,
        &chat,
        "pasta pasta pasta, and pasta with pasta",
    );
    say(
        api,
        &token,
        &chat,
        "a long note on many things, of which pasta is one, among words words words",
    );

    let reply = api.get("/search?q=pasta&sort=relevance&limit=1", &token);

    assert_eq!(
        snippets(&reply),
        ["pasta pasta pasta, and pasta with pasta"]
    );
    assert_eq!(reply.header("x-next-cursor"), None);
}

fn a_missing_blank_or_too_long_query_is_422(api: &TestApp) {
    let token = api.new_user();

    api.get("/search", &token)
        .assert_invalid(json!(["query", "q"]), "missing");
    api.get("/search?q=%20%20", &token)
        .assert_invalid(json!(["query", "q"]), "string_too_short");
    api.get(&format!("/search?q={}", "a".repeat(201)), &token)
        .assert_invalid(json!(["query", "q"]), "string_too_long");
}

fn a_bad_limit_cursor_or_sort_is_422(api: &TestApp) {
    let token = api.new_user();

    api.get("/search?q=x&limit=0", &token)
        .assert_invalid(json!(["query", "limit"]), "value_error");
    api.get("/search?q=x&cursor=nope", &token)
        .assert_invalid(json!(["query", "cursor"]), "value_error");
    api.get("/search?q=x&sort=oldest", &token)
        .assert_invalid(json!(["query", "sort"]), "enum");
    api.get(
        "/search?q=x&sort=relevance&cursor=1_0194f4c2-0000-7000-8000-000000000000",
        &token,
    )
    .assert_invalid(json!(["query", "cursor"]), "value_error");
}

fn search_needs_a_current_token(api: &TestApp) {
    api.request("GET", "/search?q=x")
        .send()
        .assert_detail(401, "Not authenticated");
    let token = api.new_user();
    let revoked = api.call("POST", "/auth/logout-all", &token, None);
    assert_eq!(revoked.status, 204);
    search(api, &token, "x").assert_detail(401, "Could not validate credentials");
}

/// PostgreSQL refuses a `tsvector` lexeme over 2,047 bytes, and the owner's tag makes each
/// one 13 bytes longer: a pasted blob of one "word" near that size must not fail the
/// post (it used to: a 500).
fn a_message_with_a_word_too_long_to_index_is_stored_and_found_by_its_other_words(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    for length in [2_040, 1_020] {
        // ASCII letters (a byte each), then Cyrillic ones (two bytes each): both near the
        // limit in bytes.
        let word = if length > 1_500 {
            "a".repeat(length)
        } else {
            "ж".repeat(length)
        };
        let text = format!("Pasted blob {word} from the logs");
        let stored = say(api, &token, &chat, &text);
        assert_eq!(stored["content"], "Message received", "the fixed reply");
        let found = snippets(&search(api, &token, "pasted blob logs"));
        assert_eq!(found.len(), if length > 1_500 { 1 } else { 2 }, "{found:?}");
    }
}
