//! The five steps a new user of the SPA takes.

use serde_json::json;

use crate::api_tests;
use crate::support::{TestApp, credentials, messages_path};

api_tests!(register_login_create_chat_send_message_and_read_it_back);

fn register_login_create_chat_send_message_and_read_it_back(api: &TestApp) {
    let registered = api
        .request("POST", "/auth/register")
        .json(&credentials("ada@example.com", "correct horse"))
        .send();
    assert_eq!(registered.status, 201, "{}", registered.text);

    let login = api
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", "correct horse"))
        .send();
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();

    let chat = api.post("/chats", &token, json!({ "title": "First steps" }));
    assert_eq!(chat.status, 201, "{}", chat.text);
    let chat_id = chat.json()["id"].as_str().unwrap().to_owned();

    let reply = api.post_message(&token, &chat_id, "Hello, MemLayer");
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["content"], "Message received");

    let listed = api.conversation(&messages_path(&chat_id), &token);
    assert_eq!(
        listed,
        [
            ("user".to_owned(), "Hello, MemLayer".to_owned()),
            ("assistant".to_owned(), "Message received".to_owned())
        ]
    );
}
