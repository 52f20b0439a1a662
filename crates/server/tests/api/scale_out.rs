//! Several instances on one PostgreSQL database are one service: two `memlayer`
//! processes over the same database, started together, driven over HTTP in turn.
//! PostgreSQL only (SQLite is one process's file); without a server these say
//! `SKIPPED`, and under CI (`CI=true`, `MEMLAYER_REQUIRE_POSTGRES=1`) they fail instead.

use memlayer_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::process::{Service, agent, memlayer};
use crate::support::{credentials, messages_path};

/// The signing secret every instance shares (that is all a token needs to be accepted).
const SECRET: &str = "one-secret-shared-by-every-instance-of-the-service";

/// Two instances over one fresh PostgreSQL database. Fields drop in order: the
/// instances stop before their database is dropped.
struct TwoInstances {
    instances: [Service; 2],
    _db: TestDatabase,
}

impl TwoInstances {
    /// Both instances, with `vars` on top of the test settings, started at once on an
    /// empty database (they migrate it together); `None` when no PostgreSQL server is
    /// reachable and none is required.
    fn start(vars: &[(&str, &str)]) -> Option<Self> {
        let db = TestDatabase::postgres()?;
        let start = || {
            let mut all = vec![
                ("DATABASE_URL", db.url()),
                ("JWT_SECRET", SECRET),
                ("BCRYPT_COST", "4"),
                ("WORKERS", "1"),
                ("DATABASE_POOL_SIZE", "2"),
                ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
            ];
            all.extend_from_slice(vars);
            Service::spawn(memlayer(&all))
        };
        let instances = std::thread::scope(|scope| {
            let first = scope.spawn(start);
            let second = scope.spawn(start);
            [first.join().unwrap(), second.join().unwrap()]
        });
        assert_ne!(instances[0].base, instances[1].base);
        Some(Self { instances, _db: db })
    }

    fn a(&self) -> &Service {
        &self.instances[0]
    }

    fn b(&self) -> &Service {
        &self.instances[1]
    }
}

/// A whole reply.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn token(&self) -> String {
        self.body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {self:?}"))
            .to_owned()
    }
}

/// `method path` on `on`, with `headers` and a JSON body if one is given.
fn call(
    on: &Service,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", on.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map(Value::to_string).unwrap_or_default())
        .unwrap();
    let mut response = agent()
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// `method path` on `on` as `token`'s user.
fn as_user(on: &Service, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
    let bearer = format!("Bearer {token}");
    call(
        on,
        method,
        path,
        &[("authorization", &bearer)],
        body.as_ref(),
    )
}

fn register(on: &Service, email: &str, password: &str) -> String {
    let reply = call(
        on,
        "POST",
        "/auth/register",
        &[],
        Some(&credentials(email, password)),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.token()
}

fn login(on: &Service, email: &str, password: &str) -> Reply {
    call(
        on,
        "POST",
        "/auth/login",
        &[],
        Some(&credentials(email, password)),
    )
}

#[test]
fn a_token_issued_by_one_instance_is_accepted_by_the_other() {
    let Some(service) = TwoInstances::start(&[]) else {
        return;
    };
    let (a, b) = (service.a(), service.b());

    let registered_on_a = register(a, "ada@example.com", "password1");
    let me_on_b = as_user(b, "GET", "/auth/me", &registered_on_a, None);
    let chat_on_b = as_user(b, "POST", "/chats", &registered_on_a, Some(json!({})));
    let chat = chat_on_b.body["id"].as_str().unwrap().to_owned();
    let chat_on_a = as_user(a, "GET", &format!("/chats/{chat}"), &registered_on_a, None);
    let logged_in_on_b = login(b, "ada@example.com", "password1").token();
    let me_on_a = as_user(a, "GET", "/auth/me", &logged_in_on_b, None);

    assert_eq!(me_on_b.status, 200, "{me_on_b:?}");
    assert_eq!(me_on_b.body["email"], "ada@example.com");
    assert_eq!(chat_on_b.status, 201, "{chat_on_b:?}");
    assert_eq!(chat_on_a.status, 200, "{chat_on_a:?}");
    assert_eq!(me_on_a.status, 200, "{me_on_a:?}");
    assert_eq!(me_on_a.body["id"], me_on_b.body["id"]);
}

#[test]
fn revoking_tokens_on_one_instance_is_seen_at_once_by_the_other() {
    let Some(service) = TwoInstances::start(&[]) else {
        return;
    };
    let (a, b) = (service.a(), service.b());
    let me = |on, token: &str| as_user(on, "GET", "/auth/me", token, None).status;

    // Log out everywhere on A: B refuses both tokens on the very next request.
    let first = register(a, "ada@example.com", "password1");
    let second = login(b, "ada@example.com", "password1").token();
    let logged_out = as_user(a, "POST", "/auth/logout-all", &first, None);
    assert_eq!(logged_out.status, 204, "{logged_out:?}");
    assert_eq!((me(b, &first), me(b, &second)), (401, 401));

    // Change the password on B: A refuses the old token and the old password, and
    // accepts the fresh token and the new password.
    let third = login(a, "ada@example.com", "password1").token();
    let changed = as_user(
        b,
        "POST",
        "/auth/password",
        &third,
        Some(json!({ "current_password": "password1", "new_password": "password2" })),
    );
    assert_eq!(changed.status, 200, "{changed:?}");
    let fresh = changed.token();
    assert_eq!((me(a, &third), me(a, &fresh)), (401, 200));
    assert_eq!(login(a, "ada@example.com", "password1").status, 401);
    let fourth = login(a, "ada@example.com", "password2").token();

    // Delete the account on A: B refuses its tokens, and the email is free there.
    let deleted = as_user(
        a,
        "DELETE",
        "/auth/me",
        &fresh,
        Some(json!({ "password": "password2" })),
    );
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!((me(b, &fresh), me(b, &fourth)), (401, 401));
    register(b, "ada@example.com", "password3");
}

#[test]
fn posts_alternating_between_instances_list_in_one_order_from_either() {
    let Some(service) = TwoInstances::start(&[]) else {
        return;
    };
    let (a, b) = (service.a(), service.b());
    let token = register(a, "ada@example.com", "password1");
    let chat = as_user(b, "POST", "/chats", &token, Some(json!({}))).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = messages_path(&chat);

    for i in 0..10 {
        let on = [a, b][i % 2];
        let posted = as_user(
            on,
            "POST",
            &path,
            &token,
            Some(json!({ "content": i.to_string() })),
        );
        assert_eq!(posted.status, 201, "{posted:?}");
    }
    let from_a = as_user(a, "GET", &path, &token, None);
    let from_b = as_user(b, "GET", &path, &token, None);
    // The latest 7 from A, then the 13 before them from B with A's cursor.
    let latest = as_user(a, "GET", &format!("{path}?limit=7"), &token, None);
    let cursor = latest.header("x-next-cursor").unwrap().to_owned();
    let earlier = as_user(
        b,
        "GET",
        &format!("{path}?limit=100&cursor={cursor}"),
        &token,
        None,
    );

    assert_eq!(from_a.status, 200, "{from_a:?}");
    assert_eq!(from_a.body, from_b.body, "both instances list one order");
    let contents: Vec<&str> = from_a
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..10)
        .flat_map(|i| [i.to_string(), "Message received".to_owned()])
        .collect();
    assert_eq!(contents, expected, "in the order they were posted");
    let paged: Vec<Value> = [earlier.body, latest.body]
        .iter()
        .flat_map(|page| page.as_array().unwrap().clone())
        .collect();
    assert_eq!(
        Value::Array(paged),
        from_a.body,
        "a cursor of one serves on the other"
    );
}

#[test]
fn the_auth_rate_limit_is_one_budget_across_instances() {
    let Some(service) = TwoInstances::start(&[
        ("AUTH_RATE_LIMIT_PER_MINUTE", "4"),
        ("TRUST_FORWARDED_FOR", "true"),
    ]) else {
        return;
    };
    let attempt = |on: &Service, client: &str| {
        call(
            on,
            "POST",
            "/auth/login",
            &[
                ("x-forwarded-for", client),
                ("origin", "http://localhost:5173"),
            ],
            Some(&credentials("nobody@example.com", "password1")),
        )
    };

    // Turn about: with a budget per instance, all six would be admitted (4 + 4).
    let replies: Vec<Reply> = (0..6)
        .map(|i| attempt(&service.instances[i % 2], "203.0.113.7"))
        .collect();
    let another_client = attempt(service.a(), "203.0.113.8");

    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    for refused in &replies[4..] {
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap()
                .starts_with("Too many attempts"),
            "{refused:?}"
        );
        // One attempt every 15 s refills the budget.
        let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=15).contains(&wait), "{refused:?}");
        assert_eq!(
            refused.header("access-control-allow-origin"),
            Some("http://localhost:5173"),
            "a refusal passes through CORS"
        );
    }
    assert_eq!(
        another_client.status, 401,
        "another client has its own budget"
    );
}
