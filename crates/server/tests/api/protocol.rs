//! What every client relies on: JSON errors for every failure, no redirects, CORS for
//! the SPA (errors included), the docs and the probes.

use serde_json::json;

use crate::api_tests;
use crate::support::{SPA_ORIGIN, TestApp, credentials, messages_path};

api_tests!(
    an_unknown_route_is_a_json_404,
    a_wrong_method_is_a_json_405_listing_the_allowed_ones,
    a_trailing_slash_reaches_the_same_route_without_a_redirect,
    malformed_json_is_a_422_json_invalid,
    a_body_that_is_not_an_object_is_422,
    a_field_of_the_wrong_type_is_422_at_that_field,
    an_unknown_field_is_422_extra_forbidden,
    invalid_utf8_and_deep_nesting_and_huge_numbers_are_422,
    a_body_that_is_not_declared_json_is_a_json_415,
    the_spa_preflight_is_allowed_with_credentials_and_cached,
    cors_headers_are_on_errors_too,
    an_origin_that_is_not_allowed_gets_no_cors_headers,
    malformed_authorization_headers_are_401,
    the_bearer_scheme_is_case_insensitive,
    swagger_ui_is_served_at_docs,
    the_openapi_document_lists_every_operation_with_bearer_security,
    liveness_and_readiness_answer_200,
    a_huge_declared_body_is_refused_at_once_with_a_json_413,
    an_authorization_header_that_is_not_text_is_401,
    nul_characters_anywhere_in_the_text_are_422,
);

fn an_unknown_route_is_a_json_404(api: &TestApp) {
    api.request("GET", "/nowhere")
        .send()
        .assert_detail(404, "Not Found");
    api.request("POST", "/auth/nowhere")
        .send()
        .assert_detail(404, "Not Found");
}

fn a_wrong_method_is_a_json_405_listing_the_allowed_ones(api: &TestApp) {
    let chats = api.request("PUT", "/chats").send();
    let chat = api
        .request("POST", &format!("/chats/{}", uuid::Uuid::now_v7()))
        .send();
    let login = api.request("GET", "/auth/login").send();

    chats.assert_detail(405, "Method Not Allowed");
    assert_eq!(chats.header("allow"), Some("GET, HEAD, POST"));
    chat.assert_detail(405, "Method Not Allowed");
    assert_eq!(chat.header("allow"), Some("GET, HEAD, PATCH, DELETE"));
    assert_eq!(login.header("allow"), Some("POST"));
}

fn a_trailing_slash_reaches_the_same_route_without_a_redirect(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    assert_eq!(api.get("/chats/", &token).status, 200);
    assert_eq!(api.get(&format!("/chats/{chat}/"), &token).status, 200);
    assert_eq!(
        api.get(&format!("/chats/{chat}/messages/"), &token).status,
        200
    );
    assert_eq!(api.get("/auth/me/", &token).status, 200);
}

fn malformed_json_is_a_422_json_invalid(api: &TestApp) {
    for body in [
        "{",
        "{\"email\": }",
        "not json",
        "{\"email\":\"a@b.io\",\"password\":\"password1\"} trailing",
    ] {
        let reply = api
            .request("POST", "/auth/register")
            .header("content-type", "application/json")
            .raw(body.as_bytes().to_vec())
            .send();
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(reply.json()["detail"][0]["type"], "json_invalid", "{body}");
        assert_eq!(reply.json()["detail"][0]["loc"][0], "body", "{body}");
    }
}

fn a_body_that_is_not_an_object_is_422(api: &TestApp) {
    for body in [
        json!([]),
        json!("text"),
        json!(42),
        json!(["a@b.io", "password1"]),
    ] {
        api.request("POST", "/auth/login")
            .json(&body)
            .send()
            .assert_invalid(json!(["body"]), "model_attributes_type");
    }
    // `null` is read as no body at all: for a required body, its fields are missing.
    api.request("POST", "/auth/login")
        .json(&json!(null))
        .send()
        .assert_invalid(json!(["body", "email"]), "missing");
}

fn a_field_of_the_wrong_type_is_422_at_that_field(api: &TestApp) {
    let reply = api
        .request("POST", "/auth/register")
        .json(&json!({ "email": 42, "password": "password1" }))
        .send();

    reply.assert_invalid(json!(["body", "email"]), "string_type");
}

fn an_unknown_field_is_422_extra_forbidden(api: &TestApp) {
    let reply = api
        .request("POST", "/auth/register")
        .json(&json!({ "email": "a@b.io", "password": "password1", "admin": true }))
        .send();

    reply.assert_invalid(json!(["body", "admin"]), "extra_forbidden");
}

fn invalid_utf8_and_deep_nesting_and_huge_numbers_are_422(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);
    let deep = format!(
        "{{\"content\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let bodies: [Vec<u8>; 4] = [
        b"{\"content\": \"\xff\xfe\"}".to_vec(),
        deep.into_bytes(),
        b"{\"content\": 1e999999}".to_vec(),
        b"{\"content\": 123456789012345678901234567890}".to_vec(),
    ];

    for body in bodies {
        let reply = api
            .request("POST", &messages_path(&chat))
            .token(&token)
            .header("content-type", "application/json")
            .raw(body)
            .send();
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert!(reply.json()["detail"].is_array());
    }
    assert_eq!(api.count("messages", "1 = 1"), 0);
}

fn a_body_that_is_not_declared_json_is_a_json_415(api: &TestApp) {
    let body = br#"{"email":"a@b.io","password":"password1"}"#.to_vec();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = api.request("POST", "/auth/register").raw(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().assert_detail(
            415,
            "Unsupported Media Type: send the body as application/json",
        );
    }
    let with_charset = api
        .request("POST", "/auth/register")
        .header("content-type", "application/json; charset=utf-8")
        .raw(body)
        .send();
    assert_eq!(with_charset.status, 201, "{}", with_charset.text);
}

fn the_spa_preflight_is_allowed_with_credentials_and_cached(api: &TestApp) {
    for (path, method) in [
        ("/chats", "POST"),
        ("/chats/x", "PATCH"),
        ("/chats/x", "DELETE"),
        ("/auth/me", "GET"),
    ] {
        let reply = api
            .request("OPTIONS", path)
            .header("origin", SPA_ORIGIN)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send();

        assert!(
            reply.status == 200 || reply.status == 204,
            "{path} {method}: {}",
            reply.status
        );
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(SPA_ORIGIN)
        );
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true")
        );
        let methods = reply
            .header("access-control-allow-methods")
            .unwrap_or_default();
        assert!(methods.contains(method), "{methods}");
        let headers = reply
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{headers}"
        );
        assert!(reply.header("access-control-max-age").is_some());
    }
}

fn cors_headers_are_on_errors_too(api: &TestApp) {
    let token = api.new_user();
    let replies = [
        api.request("GET", "/auth/me")
            .header("origin", SPA_ORIGIN)
            .send(),
        api.request("GET", "/nowhere")
            .header("origin", SPA_ORIGIN)
            .send(),
        api.request("GET", &format!("/chats/{}", uuid::Uuid::now_v7()))
            .token(&token)
            .header("origin", SPA_ORIGIN)
            .send(),
        api.request("POST", "/chats")
            .token(&token)
            .header("origin", SPA_ORIGIN)
            .json(&json!({ "title": 1 }))
            .send(),
        api.request("PUT", "/chats")
            .header("origin", SPA_ORIGIN)
            .send(),
    ];

    for (reply, status) in replies.iter().zip([401, 404, 404, 422, 405]) {
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(SPA_ORIGIN),
            "{status}"
        );
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true"),
            "{status}"
        );
    }
}

fn an_origin_that_is_not_allowed_gets_no_cors_headers(api: &TestApp) {
    let simple = api
        .request("GET", "/health")
        .header("origin", "http://evil.example")
        .send();
    let preflight = api
        .request("OPTIONS", "/chats")
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send();

    assert_eq!(simple.status, 200);
    assert_eq!(simple.header("access-control-allow-origin"), None);
    assert_eq!(preflight.header("access-control-allow-origin"), None);
}

fn malformed_authorization_headers_are_401(api: &TestApp) {
    let token = api.new_user();
    for header in [
        "".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        token.clone(),
        format!("Basic {token}"),
        format!("Token {token}"),
        format!("Bearer {token} extra"),
    ] {
        let reply = api
            .request("GET", "/auth/me")
            .header("authorization", &header)
            .send();
        assert_eq!(reply.status, 401, "{header:?}: {}", reply.text);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert!(reply.json()["detail"].is_string());
    }
}

fn the_bearer_scheme_is_case_insensitive(api: &TestApp) {
    let token = api.new_user();
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let reply = api
            .request("GET", "/auth/me")
            .header("authorization", &format!("{scheme} {token}"))
            .send();
        assert_eq!(reply.status, 200, "{scheme}");
    }
}

fn swagger_ui_is_served_at_docs(api: &TestApp) {
    let bare = api.request("GET", "/docs").send();
    let page = api.request("GET", "/docs/").send();

    assert_eq!(
        (bare.status, bare.header("location")),
        (308, Some("/docs/"))
    );
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("swagger"),
        "{}",
        page.text.chars().take(200).collect::<String>()
    );
}

fn the_openapi_document_lists_every_operation_with_bearer_security(api: &TestApp) {
    let doc = api.request("GET", "/openapi.json").send().json();

    let paths = doc["paths"].as_object().unwrap();
    let operations: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    for expected in [
        "POST /auth/register",
        "POST /auth/login",
        "GET /auth/me",
        "POST /auth/password",
        "POST /auth/logout-all",
        "DELETE /auth/me",
        "GET /auth/me/export",
        "POST /chats",
        "GET /chats",
        "GET /chats/{chat_id}",
        "PATCH /chats/{chat_id}",
        "DELETE /chats/{chat_id}",
        "POST /chats/{chat_id}/messages",
        "GET /chats/{chat_id}/messages",
        "GET /health",
        "GET /health/ready",
    ] {
        assert!(
            operations.contains(&expected.to_owned()),
            "{expected} missing from {operations:?}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/chats"]["get"]["security"],
        json!([{ "bearer": [] }])
    );
    assert!(doc["components"]["schemas"]["ChatResponse"].is_object());
    let export = &doc["paths"]["/auth/me/export"]["get"]["responses"];
    assert_eq!(
        export["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/AccountExport"
    );
    for (path, method, statuses) in [
        (
            "/auth/password",
            "post",
            &["200", "401", "403", "422", "429", "503"][..],
        ),
        ("/auth/logout-all", "post", &["204", "401", "503"]),
        (
            "/auth/me",
            "delete",
            &["204", "401", "403", "422", "429", "503"],
        ),
        ("/auth/me/export", "get", &["200", "401", "503"]),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        for status in statuses {
            assert!(responses[status].is_object(), "{method} {path} {status}");
        }
    }
}

fn liveness_and_readiness_answer_200(api: &TestApp) {
    let live = api.request("GET", "/health").send();
    let ready = api.request("GET", "/health/ready").send();

    assert_eq!((live.status, live.json()), (200, json!({ "status": "ok" })));
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({ "status": "ready" }))
    );
}

fn a_huge_declared_body_is_refused_at_once_with_a_json_413(api: &TestApp) {
    // "At once": before any body comes (the client sends one byte of it and waits), so
    // no clock is needed to tell.
    let response = api.raw(
        b"POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{",
    );

    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("{\"detail\":\"Request body too large"),
        "{response}"
    );
}

fn an_authorization_header_that_is_not_text_is_401(api: &TestApp) {
    let response = api.raw(b"GET /auth/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\r\n\r\n");

    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(
        response.contains("{\"detail\":\"Not authenticated\"}"),
        "{response}"
    );
}

fn nul_characters_anywhere_in_the_text_are_422(api: &TestApp) {
    let token = api.new_user();
    let chat = api.new_chat(&token);

    api.request("POST", "/auth/register")
        .json(&credentials("a\u{0}@b.io", "password1"))
        .send()
        .assert_invalid(json!(["body", "email"]), "value_error");
    api.post("/chats", &token, json!({ "title": "a\u{0}b" }))
        .assert_invalid(json!(["body", "title"]), "value_error");
    api.request("PATCH", &format!("/chats/{chat}"))
        .token(&token)
        .json(&json!({ "title": "\u{0}" }))
        .send()
        .assert_invalid(json!(["body", "title"]), "value_error");
}
