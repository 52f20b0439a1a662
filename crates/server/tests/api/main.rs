//! Black-box API tests: the real service over HTTP, on a fresh database per test, run
//! against PostgreSQL and SQLite alike. They assert the exact
//! contract that docs/api.md summarises (routes, bodies, statuses, FastAPI's error shapes).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod abuse;
mod account_control;
mod accounts;
mod assistant;
mod chats;
mod flow;
mod folders;
mod generations;
mod messages;
mod model;
mod model_limits;

mod observability;
mod operators;
mod process;
mod protocol;
mod proxy;
mod resilience;
mod scale_out;
mod search;
mod support;
mod tree;
mod upstream;
mod zero_setup;
