//! Organising chats: `/folders`, and pinned, archived and filed chats through
//! `PATCH /chats/{chat_id}` and `GET /chats`.

use serde_json::{Value, json};

use crate::api_tests;
use crate::support::TestApp;

api_tests!(
    a_folder_is_created_listed_renamed_and_deleted,
    a_folder_name_is_1_to_100_characters_after_trimming,
    another_users_folder_is_403_a_missing_one_404_and_a_malformed_id_422,
    deleting_a_folder_keeps_its_chats_without_a_folder,
    a_new_chat_is_not_pinned_not_archived_and_in_no_folder,
    a_chat_is_pinned_archived_and_filed_and_taken_out_of_its_folder,
    a_chat_cannot_be_filed_in_an_unknown_or_someone_elses_folder,
    an_update_with_a_null_or_wrong_type_is_422,
    pinned_chats_list_first_and_archived_ones_are_left_out,
    the_chat_list_pages_stably_across_pinned_and_other_chats,
    the_chat_list_keeps_one_folder_or_the_archived_chats,
    a_bad_archived_or_folder_id_is_422_in_the_query,
    deleting_an_account_deletes_its_folders_and_the_export_carries_them,
    folder_routes_need_a_token,
);

fn folder(api: &TestApp, token: &str, name: &str) -> Value {
    let reply = api.post("/folders", token, json!({ "name": name }));
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

fn patch(api: &TestApp, token: &str, chat: &str, body: Value) -> crate::support::Reply {
    api.request("PATCH", &format!("/chats/{chat}"))
        .token(token)
        .json(&body)
        .send()
}

fn ids(reply: &crate::support::Reply) -> Vec<String> {
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|chat| chat["id"].as_str().unwrap().to_owned())
        .collect()
}

fn chat_titled(api: &TestApp, token: &str, title: &str) -> String {
    let reply = api.post("/chats", token, json!({ "title": title }));
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_str().unwrap().to_owned()
}

fn a_folder_is_created_listed_renamed_and_deleted(api: &TestApp) {
    let token = api.new_user();
    let work = folder(api, &token, "  Work ");
    let keys: Vec<&String> = work.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["created_at", "id", "name"]);
    assert_eq!(work["name"], "Work");
    let home = folder(api, &token, "Home");

    let listed = api.get("/folders", &token);
    assert_eq!((listed.status, listed.json()), (200, json!([work, home])));

    let path = format!("/folders/{}", work["id"].as_str().unwrap());
    let renamed = api
        .request("PATCH", &path)
        .token(&token)
        .json(&json!({ "name": "Office" }))
        .send();
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(
        (&renamed.json()["id"], &renamed.json()["name"]),
        (&work["id"], &json!("Office"))
    );

    let deleted = api.call("DELETE", &path, &token, None);
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""));
    assert_eq!(api.get("/folders", &token).json(), json!([home]));
    api.call("DELETE", &path, &token, None)
        .assert_detail(404, "Folder not found");
}

fn a_folder_name_is_1_to_100_characters_after_trimming(api: &TestApp) {
    let token = api.new_user();
    folder(api, &token, &format!("  {}  ", "é".repeat(100)));

    api.post("/folders", &token, json!({ "name": "   " }))
        .assert_invalid(json!(["body", "name"]), "string_too_short");
    api.post("/folders", &token, json!({ "name": "é".repeat(101) }))
        .assert_invalid(json!(["body", "name"]), "string_too_long");
    api.post("/folders", &token, json!({}))
        .assert_invalid(json!(["body", "name"]), "missing");
    let work = folder(api, &token, "Work");
    api.request(
        "PATCH",
        &format!("/folders/{}", work["id"].as_str().unwrap()),
    )
    .token(&token)
    .json(&json!({ "name": "" }))
    .send()
    .assert_invalid(json!(["body", "name"]), "string_too_short");
}

fn another_users_folder_is_403_a_missing_one_404_and_a_malformed_id_422(api: &TestApp) {
    let owner = api.new_user();
    let other = api.new_user();
    let theirs = folder(api, &owner, "Mine");
    let path = format!("/folders/{}", theirs["id"].as_str().unwrap());
    let missing = format!("/folders/{}", uuid::Uuid::now_v7());
    let rename = json!({ "name": "Stolen" });

    api.request("PATCH", &path)
        .token(&other)
        .json(&rename)
        .send()
        .assert_detail(403, "Not allowed to access this folder");
    api.call("DELETE", &path, &other, None)
        .assert_detail(403, "Not allowed to access this folder");
    api.request("PATCH", &missing)
        .token(&other)
        .json(&rename)
        .send()
        .assert_detail(404, "Folder not found");
    api.call("DELETE", &missing, &other, None)
        .assert_detail(404, "Folder not found");
    api.call("DELETE", "/folders/not-a-uuid", &other, None)
        .assert_invalid(json!(["path", "folder_id"]), "uuid_parsing");
    assert_eq!(api.get("/folders", &other).json(), json!([]));
    assert_eq!(api.get("/folders", &owner).json(), json!([theirs]));
}

fn deleting_a_folder_keeps_its_chats_without_a_folder(api: &TestApp) {
    let token = api.new_user();
    let work = folder(api, &token, "Work");
    let chat = api.new_chat(&token);
    assert_eq!(
        patch(api, &token, &chat, json!({ "folder_id": work["id"] })).status,
        200
    );

    let deleted = api.call(
        "DELETE",
        &format!("/folders/{}", work["id"].as_str().unwrap()),
        &token,
        None,
    );

    assert_eq!(deleted.status, 204);
    let kept = api.get(&format!("/chats/{chat}"), &token);
    assert_eq!(
        (kept.status, &kept.json()["folder_id"]),
        (200, &Value::Null)
    );
}

fn a_new_chat_is_not_pinned_not_archived_and_in_no_folder(api: &TestApp) {
    let token = api.new_user();
    let chat = api.post("/chats", &token, json!({})).json();

    assert_eq!(
        (&chat["pinned"], &chat["archived"], &chat["folder_id"]),
        (&json!(false), &json!(false), &Value::Null)
    );
}

fn a_chat_is_pinned_archived_and_filed_and_taken_out_of_its_folder(api: &TestApp) {
    let token = api.new_user();
    let work = folder(api, &token, "Work");
    let chat = chat_titled(api, &token, "Plans");

    let changed = patch(
        api,
        &token,
        &chat,
        json!({ "pinned": true, "archived": true, "folder_id": work["id"] }),
    );
    assert_eq!(changed.status, 200, "{}", changed.text);
    let changed = changed.json();
    assert_eq!(
        (
            &changed["title"],
            &changed["pinned"],
            &changed["archived"],
            &changed["folder_id"]
        ),
        (&json!("Plans"), &json!(true), &json!(true), &work["id"])
    );
    assert_eq!(api.get(&format!("/chats/{chat}"), &token).json(), changed);

    let out = patch(
        api,
        &token,
        &chat,
        json!({ "folder_id": null, "title": "Later" }),
    );
    assert_eq!(out.status, 200, "{}", out.text);
    let out = out.json();
    assert_eq!(
        (&out["title"], &out["pinned"], &out["folder_id"]),
        (&json!("Later"), &json!(true), &Value::Null)
    );
}

fn a_chat_cannot_be_filed_in_an_unknown_or_someone_elses_folder(api: &TestApp) {
    let token = api.new_user();
    let other = api.new_user();
    let theirs = folder(api, &other, "Theirs");
    let chat = api.new_chat(&token);

    for folder_id in [theirs["id"].clone(), json!(uuid::Uuid::now_v7())] {
        patch(
            api,
            &token,
            &chat,
            json!({ "folder_id": folder_id, "pinned": true }),
        )
        .assert_invalid(json!(["body", "folder_id"]), "value_error");
    }
    let unchanged = api.get(&format!("/chats/{chat}"), &token).json();
    assert_eq!(
        (&unchanged["pinned"], &unchanged["folder_id"]),
        (&json!(false), &Value::Null)
    );
}

fn an_update_with_a_null_or_wrong_type_is_422(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    assert_eq!(
        patch(api, &token, &chat, json!({ "pinned": "yes" })).status,
        422
    );
    assert_eq!(
        patch(api, &token, &chat, json!({ "archived": null })).status,
        422
    );
    assert_eq!(
        patch(api, &token, &chat, json!({ "folder_id": "nope" })).status,
        422
    );
    patch(api, &token, &chat, json!({ "colour": "red" }))
        .assert_invalid(json!(["body", "colour"]), "extra_forbidden");
}

fn pinned_chats_list_first_and_archived_ones_are_left_out(api: &TestApp) {
    let token = api.new_user();
    let oldest = chat_titled(api, &token, "oldest");
    let pinned = chat_titled(api, &token, "pinned");
    let archived = chat_titled(api, &token, "archived");
    let newest = chat_titled(api, &token, "newest");
    patch(api, &token, &pinned, json!({ "pinned": true }));
    patch(api, &token, &archived, json!({ "archived": true }));

    let listed = api.get("/chats", &token);

    assert_eq!(listed.status, 200);
    assert_eq!(ids(&listed), [pinned, newest, oldest]);
    assert_eq!(ids(&api.get("/chats?archived=true", &token)), [archived]);
}

fn the_chat_list_pages_stably_across_pinned_and_other_chats(api: &TestApp) {
    let token = api.new_user();
    let chats: Vec<String> = (0..7)
        .map(|n| chat_titled(api, &token, &format!("c{n}")))
        .collect();
    for n in [1, 4, 5] {
        patch(api, &token, &chats[n], json!({ "pinned": true }));
    }
    let expected = [5, 4, 1, 6, 3, 2, 0].map(|n| chats[n].clone());

    let mut read = Vec::new();
    let mut path = "/chats?limit=2".to_owned();
    loop {
        let page = api.get(&path, &token);
        assert_eq!(page.status, 200, "{}", page.text);
        read.extend(ids(&page));
        match page.header("x-next-cursor") {
            Some(cursor) => path = format!("/chats?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(read, expected);
}

fn the_chat_list_keeps_one_folder_or_the_archived_chats(api: &TestApp) {
    let token = api.new_user();
    let work = folder(api, &token, "Work");
    let filed = api.new_chat(&token);
    let filed_archived = api.new_chat(&token);
    api.new_chat(&token);
    patch(api, &token, &filed, json!({ "folder_id": work["id"] }));
    patch(
        api,
        &token,
        &filed_archived,
        json!({ "folder_id": work["id"], "archived": true }),
    );
    let id = work["id"].as_str().unwrap();

    assert_eq!(
        ids(&api.get(&format!("/chats?folder_id={id}"), &token)),
        [filed]
    );
    assert_eq!(
        ids(&api.get(&format!("/chats?folder_id={id}&archived=true"), &token)),
        [filed_archived]
    );
    let other = api.new_user();
    assert!(ids(&api.get(&format!("/chats?folder_id={id}"), &other)).is_empty());
}

fn a_bad_archived_or_folder_id_is_422_in_the_query(api: &TestApp) {
    let token = api.new_user();

    api.get("/chats?archived=perhaps", &token)
        .assert_invalid(json!(["query", "archived"]), "bool_parsing");
    api.get("/chats?folder_id=x", &token)
        .assert_invalid(json!(["query", "folder_id"]), "uuid_parsing");
    api.get("/chats?cursor=p", &token)
        .assert_invalid(json!(["query", "cursor"]), "value_error");
}

fn deleting_an_account_deletes_its_folders_and_the_export_carries_them(api: &TestApp) {
    let token = api.new_user();
    let work = folder(api, &token, "Work");
    let chat = api.new_chat(&token);
    patch(
        api,
        &token,
        &chat,
        json!({ "folder_id": work["id"], "pinned": true }),
    );

    let export = api.get("/auth/me/export", &token).json();
    assert_eq!(export["folders"], json!([work]));
    assert_eq!(
        (
            &export["chats"][0]["pinned"],
            &export["chats"][0]["folder_id"]
        ),
        (&json!(true), &work["id"])
    );

    let deleted = api
        .request("DELETE", "/auth/me")
        .token(&token)
        .json(&json!({ "password": "password1" }))
        .send();
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(api.count("folders", "1 = 1"), 0);
}

fn folder_routes_need_a_token(api: &TestApp) {
    let path = format!("/folders/{}", uuid::Uuid::now_v7());
    for (method, path) in [
        ("GET", "/folders"),
        ("POST", "/folders"),
        ("PATCH", path.as_str()),
        ("DELETE", path.as_str()),
    ] {
        api.request(method, path)
            .json(&json!({ "name": "x" }))
            .send()
            .assert_detail(401, "Not authenticated");
    }
}
