//! Faults: the database going away under load and coming back, and the same account
//! registered many times at once.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use memlayer_testkit::PgCluster;
use serde_json::json;

use crate::api_tests;
use crate::support::{SPA_ORIGIN, TestApp, credentials, messages_path, wait_until};

api_tests!(registering_one_email_many_times_at_once_makes_exactly_one_account);

fn registering_one_email_many_times_at_once_makes_exactly_one_account(api: &TestApp) {
    let statuses = Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let reply = api
                    .request("POST", "/auth/register")
                    .json(&credentials("race@example.com", "password1"))
                    .send();
                statuses.lock().unwrap().push(reply.status);
            });
        }
    });

    let mut statuses = statuses.into_inner().unwrap();
    statuses.sort_unstable();
    assert_eq!(statuses, [[201].as_slice(), &[409; 15]].concat());
    assert_eq!(api.count("users", "email = 'race@example.com'"), 1);
}

/// One post's outcome under the outage.
struct Outcome {
    content: String,
    status: u16,
    took: Duration,
    json_detail: bool,
}

#[test]
fn a_database_outage_gives_503s_and_the_service_recovers_by_itself_losing_nothing_acknowledged() {
    database_outage(false);
}

/// The same outage, also asserting that every 503 came within 3 s (the 1 s checkout
/// timeout plus slack). Wall-clock, so opt-in: CI runs it in its own step
/// (`cargo test -p memlayer-server --test api -- --ignored`).
#[test]
#[ignore = "wall-clock: run with --ignored on a quiet machine (CI does)"]
fn a_database_outage_gives_fast_503s() {
    database_outage(true);
}

fn database_outage(check_latency: bool) {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    cluster.create_database("memlayer");
    let api = TestApp::start_on(
        &cluster.url("memlayer"),
        &[("DATABASE_TIMEOUT_MS", "1000"), ("DATABASE_POOL_SIZE", "4")],
    );
    let token = api.new_user();
    let chat = api.new_chat(&token);
    let path = messages_path(&chat);
    let stop = AtomicBool::new(false);
    let outcomes = Mutex::new(Vec::<Outcome>::new());

    let (ready_during_outage, recovered_after) = std::thread::scope(|scope| {
        for worker in 0..4 {
            let (api, token, path, stop, outcomes) = (&api, &token, &path, &stop, &outcomes);
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let content = format!("w{worker}-{i}");
                    let started = Instant::now();
                    let reply = api.post(path, token, json!({ "content": content }));
                    let json_detail = serde_json::from_str::<serde_json::Value>(&reply.text)
                        .is_ok_and(|body| body["detail"].is_string());
                    outcomes.lock().unwrap().push(Outcome {
                        content,
                        status: reply.status,
                        took: started.elapsed(),
                        json_detail,
                    });
                    i += 1;
                    // Pacing, not waiting for anything: keeps the outcome list short.
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }

        let count = |status: u16| {
            outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|o| o.status == status)
                .count()
        };
        wait_until(
            "posts acknowledged before the outage",
            Duration::from_secs(60),
            || count(201) >= 8,
        );
        cluster.stop_server();
        wait_until("the outage felt by posts", Duration::from_secs(60), || {
            count(503) + count(500) >= 4
        });
        let ready = api.request("GET", "/health/ready").send();
        cluster.start_server();
        let restarted = Instant::now();
        wait_until("the service recovered", Duration::from_secs(60), || {
            api.request("GET", "/health/ready").send().status == 200
        });
        let recovered_after = restarted.elapsed();
        wait_until("posts acknowledged again", Duration::from_secs(60), || {
            let outcomes = outcomes.lock().unwrap();
            outcomes.len() >= 8
                && outcomes[outcomes.len() - 8..]
                    .iter()
                    .all(|o| o.status == 201)
        });
        stop.store(true, Ordering::Relaxed);
        (ready, recovered_after)
    });

    let outcomes = outcomes.into_inner().unwrap();
    assert_eq!(
        ready_during_outage.status, 503,
        "{}",
        ready_during_outage.text
    );
    assert!(ready_during_outage.json()["detail"].is_string());

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 201).collect();
    assert!(!failed.is_empty(), "the outage was not felt");
    for outcome in &failed {
        assert_eq!(
            outcome.status, 503,
            "{} got {}",
            outcome.content, outcome.status
        );
        assert!(
            outcome.json_detail,
            "{} had no JSON detail",
            outcome.content
        );
        assert!(
            !check_latency || outcome.took < Duration::from_secs(3),
            "{} took {:?}",
            outcome.content,
            outcome.took
        );
    }
    let tail = &outcomes[outcomes.len().saturating_sub(8)..];
    assert!(
        tail.iter().all(|o| o.status == 201),
        "posts succeed again after the restart"
    );

    let acknowledged: HashSet<&str> = outcomes
        .iter()
        .filter(|o| o.status == 201)
        .map(|o| o.content.as_str())
        .collect();
    let mut db = PgConnection::establish(&cluster.url("memlayer")).unwrap();
    let stored: Vec<String> = diesel::sql_query("SELECT content FROM messages WHERE role = 'user'")
        .load::<Content>(&mut db)
        .unwrap()
        .into_iter()
        .map(|row| row.content)
        .collect();
    let stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
    let lost: Vec<&&str> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!(
        "outage: {} posts, {} acknowledged, {} refused with 503 (slowest {:?}), recovered {:?} after the restart",
        outcomes.len(),
        acknowledged.len(),
        failed.len(),
        failed.iter().map(|o| o.took).max().unwrap_or_default(),
        recovered_after
    );
}

#[derive(QueryableByName)]
struct Content {
    #[diesel(sql_type = diesel::sql_types::Text)]
    content: String,
}

#[test]
fn the_credential_rate_limit_answers_a_json_503_while_the_database_is_down() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    cluster.create_database("memlayer");
    let api = TestApp::start_on(
        &cluster.url("memlayer"),
        &[
            ("AUTH_RATE_LIMIT_PER_MINUTE", "20"),
            ("DATABASE_TIMEOUT_MS", "1000"),
        ],
    );
    api.register("ada@example.com", "password1");
    let login = || {
        api.request("POST", "/auth/login")
            .header("origin", SPA_ORIGIN)
            .json(&credentials("ada@example.com", "password1"))
            .send()
    };

    cluster.stop_server();
    // The budget is spent first, in the database: that is what fails.
    let during = login();
    cluster.start_server();
    wait_until("the service recovered", Duration::from_secs(60), || {
        api.request("GET", "/health/ready").send().status == 200
    });
    let after = login();

    during.assert_detail(503, "Service temporarily unavailable");
    assert_eq!(during.header("retry-after"), Some("5"));
    assert_eq!(
        during.header("access-control-allow-origin"),
        Some(SPA_ORIGIN),
        "the refusal passes through CORS"
    );
    assert_eq!(after.status, 200, "{}", after.text);
}
