//! `/auth`: register, login, me.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::api_tests;
use crate::support::{SECRET, TestApp, credentials, messages_path};

api_tests!(
    registering_answers_201_with_exactly_a_bearer_token,
    registering_normalises_the_email,
    registering_a_taken_email_in_another_case_is_409,
    registering_with_an_invalid_email_is_422_at_body_email,
    registering_with_a_short_password_is_422_at_body_password,
    a_password_of_72_bytes_is_accepted_and_73_bytes_is_422,
    registering_with_missing_fields_reports_each_missing_field,
    logging_in_answers_200_with_a_token_that_works,
    logging_in_with_a_wrong_password_or_unknown_email_is_the_same_401,
    logging_in_ignores_email_case_and_surrounding_space,
    me_answers_exactly_id_email_created_at_and_role,
    me_without_a_token_is_401_with_www_authenticate,
    a_garbage_or_wrongly_signed_token_is_401,
    an_expired_token_is_401,
    a_token_of_a_deleted_user_is_401_on_every_route,
    forged_and_malformed_tokens_are_all_401,
);

fn with_registration_closed_register_is_403_and_existing_accounts_log_in(
    db: memlayer_testkit::TestDatabase,
) {
    let open = TestApp::start_with(db, &[]);
    open.register("ada@example.com", "password1");
    let closed = TestApp::start_with(open.stop(), &[("REGISTRATION", "closed")]);

    let refused = closed
        .request("POST", "/auth/register")
        .json(&credentials("bob@example.com", "password1"))
        .send();
    let login = closed
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", "password1"))
        .send();

    refused.assert_detail(403, "Registration is closed");
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(closed.count("users", "email = 'bob@example.com'"), 0);
}

#[test]
fn with_registration_closed_register_is_403_on_sqlite() {
    with_registration_closed_register_is_403_and_existing_accounts_log_in(
        memlayer_testkit::TestDatabase::sqlite(),
    );
}

#[test]
fn with_registration_closed_register_is_403_on_postgres() {
    if let Some(db) = memlayer_testkit::TestDatabase::postgres() {
        with_registration_closed_register_is_403_and_existing_accounts_log_in(db);
    }
}

#[test]
fn credential_routes_are_rate_limited_per_client_with_a_json_429() {
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[("AUTH_RATE_LIMIT_PER_MINUTE", "3")],
    );
    let token = api.register("ada@example.com", "password1");
    for _ in 0..2 {
        let reply = api
            .request("POST", "/auth/login")
            .json(&credentials("ada@example.com", "wrong password"))
            .send();
        assert_eq!(reply.status, 401);
    }

    let refused = api
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", "password1"))
        .send();
    let also_register = api
        .request("POST", "/auth/register")
        .json(&credentials("bob@example.com", "password1"))
        .send();

    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("Too many attempts")
    );
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(also_register.status, 429);
    assert_eq!(
        api.get("/auth/me", &token).status,
        200,
        "other routes are not limited"
    );
}

fn registering_answers_201_with_exactly_a_bearer_token(api: &TestApp) {
    let reply = api
        .request("POST", "/auth/register")
        .json(&credentials("ada@example.com", "password1"))
        .send();

    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "token_type"]);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
}

fn registering_normalises_the_email(api: &TestApp) {
    let token = api.register("  Ada.Lovelace@Example.COM ", "password1");

    assert_eq!(
        api.get("/auth/me", &token).json()["email"],
        "ada.lovelace@example.com"
    );
}

fn registering_a_taken_email_in_another_case_is_409(api: &TestApp) {
    api.register("ada@example.com", "password1");

    let reply = api
        .request("POST", "/auth/register")
        .json(&credentials("ADA@example.com", "password2"))
        .send();

    reply.assert_detail(409, "Email already registered");
}

fn registering_with_an_invalid_email_is_422_at_body_email(api: &TestApp) {
    let reply = api
        .request("POST", "/auth/register")
        .json(&credentials("not-an-email", "password1"))
        .send();

    reply.assert_invalid(json!(["body", "email"]), "value_error");
}

fn registering_with_a_short_password_is_422_at_body_password(api: &TestApp) {
    let reply = api
        .request("POST", "/auth/register")
        .json(&credentials("ada@example.com", "1234567"))
        .send();

    reply.assert_invalid(json!(["body", "password"]), "string_too_short");
}

fn a_password_of_72_bytes_is_accepted_and_73_bytes_is_422(api: &TestApp) {
    let ok = api
        .request("POST", "/auth/register")
        .json(&credentials("a@example.com", &"p".repeat(72)))
        .send();
    let too_long = api
        .request("POST", "/auth/register")
        .json(&credentials("b@example.com", &"p".repeat(73)))
        .send();
    // 36 two-byte characters: 36 characters but 72 bytes, then 37: 74 bytes.
    let multibyte = api
        .request("POST", "/auth/register")
        .json(&credentials("c@example.com", &"é".repeat(37)))
        .send();

    assert_eq!(ok.status, 201, "{}", ok.text);
    too_long.assert_invalid(json!(["body", "password"]), "string_too_long");
    multibyte.assert_invalid(json!(["body", "password"]), "string_too_long");
}

fn registering_with_missing_fields_reports_each_missing_field(api: &TestApp) {
    let reply = api
        .request("POST", "/auth/register")
        .json(&json!({}))
        .send();

    reply.assert_invalid(json!(["body", "email"]), "missing");
}

fn logging_in_answers_200_with_a_token_that_works(api: &TestApp) {
    api.register("ada@example.com", "password1");

    let reply = api
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", "password1"))
        .send();

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["token_type"], "bearer");
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/auth/me", &token).status, 200);
}

fn logging_in_with_a_wrong_password_or_unknown_email_is_the_same_401(api: &TestApp) {
    api.register("ada@example.com", "password1");

    let wrong_password = api
        .request("POST", "/auth/login")
        .json(&credentials("ada@example.com", "password2"))
        .send();
    let unknown_email = api
        .request("POST", "/auth/login")
        .json(&credentials("bob@example.com", "password1"))
        .send();

    wrong_password.assert_detail(401, "Incorrect email or password");
    unknown_email.assert_detail(401, "Incorrect email or password");
    assert_eq!(wrong_password.header("www-authenticate"), Some("Bearer"));
    assert_eq!(unknown_email.header("www-authenticate"), Some("Bearer"));
}

fn logging_in_ignores_email_case_and_surrounding_space(api: &TestApp) {
    api.register("ada@example.com", "password1");

    let reply = api
        .request("POST", "/auth/login")
        .json(&credentials(" ADA@Example.com", "password1"))
        .send();

    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn me_answers_exactly_id_email_created_at_and_role(api: &TestApp) {
    let before = Utc::now();
    let token = api.register("ada@example.com", "password1");

    let reply = api.get("/auth/me", &token);

    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    // The SPA's three fields, and the role (issue 19: "GET /auth/me says which").
    assert_eq!(keys, ["created_at", "email", "id", "role"]);
    assert_eq!(body["role"], "user");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    let created_at = body["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'), "{created_at}");
    let created_at: DateTime<Utc> = created_at.parse().unwrap();
    assert!(created_at >= before - chrono::TimeDelta::seconds(1) && created_at <= Utc::now());
}

fn me_without_a_token_is_401_with_www_authenticate(api: &TestApp) {
    let reply = api.request("GET", "/auth/me").send();

    reply.assert_detail(401, "Not authenticated");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
}

fn a_garbage_or_wrongly_signed_token_is_401(api: &TestApp) {
    let other_secret = sign(
        &json!({ "sub": uuid::Uuid::now_v7().to_string(), "iat": now(), "exp": now() + 600 }),
        b"another-secret-of-at-least-32-bytes!!",
    );

    for token in ["garbage", "a.b.c", other_secret.as_str()] {
        let reply = api.get("/auth/me", token);
        reply.assert_detail(401, "Could not validate credentials");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
}

fn an_expired_token_is_401(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    let id = api.get("/auth/me", &token).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expired = sign(
        &json!({ "sub": id, "iat": now() - 3600, "exp": now() - 1 }),
        SECRET.as_bytes(),
    );

    api.get("/auth/me", &expired)
        .assert_detail(401, "Could not validate credentials");
}

fn a_token_of_a_deleted_user_is_401_on_every_route(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    let chat = api.new_chat(&token);
    let someone_elses_chat = api.new_chat(&api.new_user());
    api.db()
        .execute("DELETE FROM users WHERE email = 'ada@example.com'");

    let missing = uuid::Uuid::now_v7();
    let title = Some(json!({ "title": "t" }));
    let content = Some(json!({ "content": "c" }));
    for (method, path, body) in [
        ("GET", "/auth/me".to_owned(), None),
        ("GET", "/chats".to_owned(), None),
        ("POST", "/chats".to_owned(), title.clone()),
        ("GET", format!("/chats/{chat}"), None),
        ("GET", format!("/chats/{someone_elses_chat}"), None),
        ("GET", format!("/chats/{missing}"), None),
        ("PATCH", format!("/chats/{missing}"), title.clone()),
        ("DELETE", format!("/chats/{missing}"), None),
        ("GET", messages_path(&missing.to_string()), None),
        ("POST", messages_path(&missing.to_string()), content.clone()),
    ] {
        api.call(method, &path, &token, body.as_ref())
            .assert_detail(401, "Could not validate credentials");
    }
}

fn forged_and_malformed_tokens_are_all_401(api: &TestApp) {
    let token = api.register("ada@example.com", "password1");
    let id = api.get("/auth/me", &token).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let [header, _, signature] = token.split('.').collect::<Vec<_>>()[..] else {
        panic!("{token}")
    };
    let encode = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let hmac_sign = |header: Value, claims: Value| {
        let unsigned = format!("{}.{}", encode(header), encode(claims));
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(unsigned.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{unsigned}.{signature}")
    };
    let valid_claims = json!({ "sub": id, "iat": now(), "exp": now() + 600 });

    let forged = [
        (
            "alg none",
            format!(
                "{}.{}.",
                encode(json!({ "alg": "none", "typ": "JWT" })),
                encode(valid_claims.clone())
            ),
        ),
        (
            "HS/RS confusion: RS256 header, HMAC signature",
            hmac_sign(
                json!({ "alg": "RS256", "typ": "JWT" }),
                valid_claims.clone(),
            ),
        ),
        (
            "HS512",
            hmac_sign(
                json!({ "alg": "HS512", "typ": "JWT" }),
                valid_claims.clone(),
            ),
        ),
        (
            "tampered payload",
            format!(
                "{header}.{}.{signature}",
                encode(
                    json!({ "sub": uuid::Uuid::now_v7().to_string(), "iat": now(), "exp": now() + 600 })
                )
            ),
        ),
        (
            "missing sub",
            sign(
                &json!({ "iat": now(), "exp": now() + 600 }),
                SECRET.as_bytes(),
            ),
        ),
        (
            "sub not a user id",
            sign(
                &json!({ "sub": "admin", "iat": now(), "exp": now() + 600 }),
                SECRET.as_bytes(),
            ),
        ),
        (
            "missing exp",
            sign(&json!({ "sub": id, "iat": now() }), SECRET.as_bytes()),
        ),
        (
            "exp as a string",
            sign(
                &json!({ "sub": id, "iat": now(), "exp": (now() + 600).to_string() }),
                SECRET.as_bytes(),
            ),
        ),
        (
            "unsigned",
            format!("{header}.{}", encode(valid_claims.clone())),
        ),
    ];

    assert_eq!(
        api.get(
            "/auth/me",
            &hmac_sign(json!({ "alg": "HS256", "typ": "JWT" }), valid_claims)
        )
        .status,
        200
    );
    for (attack, token) in forged {
        let reply = api.get("/auth/me", &token);
        assert_eq!(reply.status, 401, "{attack}: {}", reply.text);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{attack}");
    }
}

/// Wall-clock, so opt-in: a busy shared machine makes timing noise. CI runs it in its own
/// step (`cargo test -p memlayer-server --test api -- --ignored`).
#[test]
#[ignore = "wall-clock: run with --ignored on a quiet machine (CI does)"]
fn logging_in_costs_the_same_time_whether_or_not_the_email_exists() {
    // bcrypt cost 10: tens of milliseconds a check. Skipping the check for an unknown
    // email would make its login about 100 times faster; the bound below allows 3x noise.
    let api = TestApp::start_with(
        memlayer_testkit::TestDatabase::sqlite(),
        &[("BCRYPT_COST", "10")],
    );
    api.register("ada@example.com", "password1");
    let time = |email: &str| {
        let started = std::time::Instant::now();
        let reply = api
            .request("POST", "/auth/login")
            .json(&credentials(email, "wrong password"))
            .send();
        assert_eq!(reply.status, 401);
        started.elapsed().as_secs_f64()
    };
    let (mut known, mut unknown) = (vec![], vec![]);
    for _ in 0..7 {
        known.push(time("ada@example.com"));
        unknown.push(time("nobody@example.com"));
    }
    let median = |mut samples: Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };

    let ratio = median(unknown) / median(known);

    assert!(
        (1.0 / 3.0..=3.0).contains(&ratio),
        "unknown/known login time ratio {ratio:.2}"
    );
}

fn now() -> i64 {
    Utc::now().timestamp()
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}
