//! Zero-setup mode: the embedded database and a generated development secret, both
//! surviving a restart.

use memlayer_testkit::TestDatabase;

use crate::support::{TestApp, credentials};

#[test]
fn without_a_secret_the_embedded_mode_starts_and_data_and_tokens_survive_a_restart() {
    let db = TestDatabase::sqlite();
    let dir = db.sqlite_dir().unwrap().clone();
    let no_secret = [("JWT_SECRET", "")];

    let first = TestApp::start_with(db, &no_secret);
    let token = first.register("ada@example.com", "password1");
    let chat = first.new_chat(&token);
    first.post_message(&token, &chat, "remember me");
    let db = first.stop();

    assert!(
        dir.join("jwt-secret").is_file(),
        "the development secret is kept beside the database"
    );
    let second = TestApp::start_with(db, &no_secret);
    let messages = second.list_messages(&token, &chat);
    assert_eq!(
        messages.status, 200,
        "the old token still works: {}",
        messages.text
    );
    assert_eq!(messages.json()[0]["content"], "remember me");
    let login = second
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", "password1"))
        .send();
    assert_eq!(login.status, 200, "{}", login.text);
}
