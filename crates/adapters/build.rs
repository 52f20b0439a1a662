//! The migrations are embedded at compile time (`embed_migrations!` in
//! `src/db/lifecycle.rs`), but the macro does not tell Cargo which files it read: without
//! this, an edited migration would leave the build, and the tests, on the old one.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
