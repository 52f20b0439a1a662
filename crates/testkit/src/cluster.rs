//! A PostgreSQL server of the test's own, that the test may stop and start (outage
//! tests cannot stop the shared server other tests use).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::postgres_required;

/// A private PostgreSQL server on a free port, in a temporary folder, removed on drop.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run the server binaries as the `postgres` user (they refuse to run as root).
    as_postgres: bool,
}

impl PgCluster {
    /// Creates and starts a server, or `None` when PostgreSQL's server binaries are
    /// not installed and PostgreSQL is not required (see [`crate::postgres_required`]).
    pub fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            assert!(
                !postgres_required(),
                "PostgreSQL is required, but initdb/pg_ctl are not installed"
            );
            crate::skipped(
                "a test needing its own PostgreSQL server (no initdb/pg_ctl under /usr/lib/postgresql).",
            );
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "memlayer-cluster-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the cluster folder");
        let as_postgres = is_root();
        if as_postgres {
            run(
                "chown",
                &["-R", "postgres:postgres", &dir.display().to_string()],
                false,
            );
        }
        let port = free_port();
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_server();
        Some(cluster)
    }

    /// The URL of database `name` on this server (`postgres` exists from the start).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`.
    pub fn create_database(&self, name: &str) {
        self.pg(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ],
        );
    }

    /// Stops the server as an operator would (`pg_ctl stop -m fast`): open connections
    /// are closed, new ones refused.
    pub fn stop_server(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the (stopped) server again and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program).display().to_string();
        if self.as_postgres {
            let mut all = vec!["-u", "postgres", "--", program.as_str()];
            all.extend_from_slice(args);
            run("runuser", &all, true);
        } else {
            run(&program, args, true);
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl").display().to_string();
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--", &program])
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            Some((
                entry.file_name().to_str()?.parse().ok()?,
                entry.path().join("bin"),
            ))
        })
        .filter(|(_, bin): &(u32, PathBuf)| {
            bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn run(program: &str, args: &[&str], must_succeed: bool) {
    let output = Command::new(program)
        .args(args)
        .current_dir(Path::new("/"))
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    if must_succeed && !output.status.success() {
        panic!(
            "{program} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
