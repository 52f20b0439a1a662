"""The embedded-database scenarios of bench/run.py: the service on SQLite (its zero-setup mode).

1. The chat scenarios of the PostgreSQL run (list messages, list chats, post message,
   create chat) at the same concurrency, on a fresh SQLite file seeded like the
   PostgreSQL database, reported next to PostgreSQL's numbers from the same run.
2. Post message at WRITERS connections (every request a write, and SQLite takes one
   writer at a time), then the service's peak resident memory (VmHWM) over its whole
   life: start-up, seeding, every scenario above and this one.

The service runs with its default settings, as `cargo run` starts it (only the port, the
signing secret and the per-client connection cap are set, as in the PostgreSQL run).
"""

from __future__ import annotations

import datetime
import sqlite3
import tempfile
import uuid
from pathlib import Path

WRITERS = 64  # concurrent connections posting messages for the peak-memory run
SCENARIO_NAMES = ("list messages", "list chats", "post message", "create chat")


def _bench():
    """bench/run.py's helpers (Service, seeding constants, wrk): imported on use, as run.py imports this module."""
    import run

    return run


def _stamp(at: datetime.datetime) -> str:
    """A timestamp as the service stores it on SQLite: fixed-width RFC 3339 UTC, microseconds."""
    return at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seed(path: Path, users: int) -> None:
    """What run.py's seed() puts in PostgreSQL, written with SQLite's own client while the
    service runs (WAL: the service's connections see it at their next read): users
    1..users with the template's password hash, each with a post chat, a history chat of
    HISTORY messages, a short chat of SHORT messages and EXTRA_CHATS more chats."""
    bench = _bench()
    status, _ = bench.http("POST", "/auth/register", {"email": "template@bench.example", "password": "correct horse"})
    assert status == 201, status
    now = datetime.datetime.now(datetime.timezone.utc)
    second = datetime.timedelta(seconds=1)
    with sqlite3.connect(path, timeout=30) as db:
        (password_hash,) = db.execute("SELECT password_hash FROM users WHERE email = 'template@bench.example'").fetchone()
        for k in range(1, users + 1):
            user = bench.USER_ID.format(k)
            db.execute(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (user, f"user{k}@bench.example", password_hash, _stamp(now)),
            )
            histories = [(bench.HISTORY_CHAT_ID.format(k), "History", bench.HISTORY), (bench.SHORT_CHAT_ID.format(k), "Short", bench.SHORT)]
            chats = [(bench.POST_CHAT_ID.format(k), "Post here", now)] + [(chat, title, now) for chat, title, _ in histories]
            chats += [(str(uuid.uuid4()), f"Chat {j}", now - j * 60 * second) for j in range(1, bench.EXTRA_CHATS + 1)]
            db.executemany(
                "INSERT INTO chats (id, user_id, title, created_at) VALUES (?, ?, ?, ?)",
                [(chat, user, title, _stamp(at)) for chat, title, at in chats],
            )
            db.executemany(
                "INSERT INTO messages (id, chat_id, user_id, role, content, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        str(uuid.uuid4()),
                        chat,
                        user,
                        "user" if i % 2 == 0 else "assistant",
                        f"A question about the trip, number {i}" if i % 2 == 0 else "Message received",
                        _stamp(now - 3600 * second + i * second),
                    )
                    for chat, _, length in histories
                    for i in range(length)
                ],
            )
        db.executescript(bench.TREE_SQL)
        db.execute("ANALYZE")
    db.close()


def run(binary: Path, connections: int, seconds: int, smoke: bool, env: dict[str, str]) -> dict:
    """The scenarios on a fresh SQLite file; the results as a dict (see render())."""
    bench = _bench()
    writers = WRITERS if not smoke else 2 * connections
    users = max(connections, writers)
    scenarios = [scenario for scenario in bench.SCENARIOS if scenario.name.startswith(SCENARIO_NAMES)]
    results: dict = {"connections": connections, "writers": writers, "seconds": seconds, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = directory / "data" / "memlayer.db"
        service = bench.Service(binary, f"sqlite://{path}", env)
        results["ready_s"] = service.start()
        try:
            results["idle_rss_kib"] = bench.rss_kib(service.pid)
            seed(path, users)
            for scenario in scenarios:
                script = bench.lua_script(scenario, users, directory)
                bench.wrk(script, connections, 1)  # warm up
                before = bench.snapshot(service.pid)
                served = bench.measured(bench.wrk(script, connections, seconds), before, bench.snapshot(service.pid))
                results["rows"].append((scenario.name, served))
                print(f"SQLite {scenario.name}: {served.throughput:.0f}/s p50 {served.p50_ms:.2f} ms "
                      f"p99 {served.p99_ms:.2f} ms errors {served.errors}", flush=True)
            post = next(scenario for scenario in scenarios if scenario.name == "post message")
            results["writers_result"] = bench.wrk(bench.lua_script(post, users, directory), writers, seconds)
            results["peak_rss_kib"] = bench.rss_kib(service.pid, "VmHWM")
            results["threads"] = len(list(Path(f"/proc/{service.pid}/task").iterdir()))
            crowd = results["writers_result"]
            print(f"SQLite post message at {writers} connections: {crowd.throughput:.0f}/s p99 {crowd.p99_ms:.2f} ms "
                  f"errors {crowd.errors}; peak RSS {results['peak_rss_kib'] / 1024:.1f} MiB", flush=True)
        finally:
            service.stop()
    return results


def problems(results: dict) -> list[str]:
    """Scenarios that served nothing or answered an error."""
    runs = [(f"SQLite {name}", result) for name, result in results["rows"]]
    runs.append((f"SQLite post message at {results['writers']} connections", results["writers_result"]))
    return [name for name, result in runs if result.requests == 0 or result.errors]


def _post_p99(results: dict) -> float:
    return next(result.p99_ms for name, result in results["rows"] if name == "post message")


def render(results: dict, postgres_rows) -> str:
    """The section comparing SQLite with PostgreSQL. `postgres_rows`: run.py's rows, each
    starting with (scenario, the service's result)."""
    postgres = {row[0].name: row[1] for row in postgres_rows}
    crowd = results["writers_result"]
    lines = [
        "",
        "## The embedded database (SQLite)",
        "",
        f"The same service on a fresh SQLite file (`DATABASE_URL=sqlite://…`, what `cargo run` uses), seeded like the "
        f"PostgreSQL database, default settings, wrk at {results['connections']} connections, {results['seconds']} s "
        "per run after a 1 s warm-up; next to the PostgreSQL run's numbers above (same binary, same load).",
        "",
        "| scenario | SQLite req/s | p50 ms | p99 ms | PostgreSQL req/s | p50 ms | p99 ms | SQLite / PostgreSQL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, served in results["rows"]:
        other = postgres.get(name)
        theirs = (
            f"{other.throughput:,.0f} | {other.p50_ms:.2f} | {other.p99_ms:.2f} | "
            f"{served.throughput / other.throughput if other.throughput else 0.0:.2f}"
            if other
            else "– | – | – | –"
        )
        lines.append(f"| {name} | {served.throughput:,.0f} | {served.p50_ms:.2f} | {served.p99_ms:.2f} | {theirs} |")
    lines += [
        "",
        "| measure (SQLite) | value |",
        "|---|---:|",
        f"| start-up to ready, empty database (migrations applied) | {results['ready_s'] * 1000:.0f} ms |",
        f"| resident memory, idle after start-up | {results['idle_rss_kib'] / 1024:.1f} MiB |",
        f"| post message at {results['writers']} connections | {crowd.throughput:,.0f} req/s, p50 {crowd.p50_ms:.2f} ms, "
        f"p99 {crowd.p99_ms:.2f} ms |",
        f"| resident memory, peak (whole run, ending with {results['writers']} writers) | "
        f"{results['peak_rss_kib'] / 1024:.1f} MiB |",
        f"| threads after the run | {results['threads']} |",
        "",
    ]
    return "\n".join(lines)


def targets(results: dict, postgres_peak_rss_kib: int) -> list[tuple[str, str, bool]]:
    """Rows for the "Against the targets" table: (target, measured, met)."""
    peak = results["peak_rss_kib"] / 1024
    p99 = _post_p99(results)
    postgres_peak = postgres_peak_rss_kib / 1024
    return [
        (f"SQLite: peak memory under {results['writers']} writers ≤ 48 MiB", f"{peak:.1f} MiB", peak <= 48),
        (f"SQLite: post message p99 at {results['connections']} connections ≤ 50 ms", f"{p99:.2f} ms", p99 <= 50),
        ("PostgreSQL: peak memory under load ≤ 32 MiB", f"{postgres_peak:.1f} MiB", postgres_peak <= 32),
    ]


def with_targets(report: str, rows: list[tuple[str, str, bool]]) -> str:
    """`report` with `rows` appended to its "Against the targets" table (the table that
    follows that heading; it ends at the first blank line after its rows)."""
    lines = report.split("\n")
    heading = lines.index("## Against the targets")
    end = heading + 1
    while end < len(lines) and not lines[end].startswith("|"):
        end += 1
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    added = [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in rows]
    return "\n".join(lines[:end] + added + lines[end:])


def main() -> None:
    """Only these scenarios, on an already built binary (no PostgreSQL needed): for
    trying settings, e.g. `DATABASE_POOL_SIZE=4 python3 bench/embedded.py`."""
    import argparse

    bench = _bench()
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--smoke", action="store_true", help="1 s runs, 4 connections")
    parser.add_argument("--profile", choices=["release", "dev"], default="release")
    parser.add_argument("--seconds", type=int)
    parser.add_argument("--connections", type=int)
    args = parser.parse_args()
    binary = bench.ROOT / "target" / ("release" if args.profile == "release" else "debug") / "memlayer"
    env = {"BCRYPT_COST": "4"}  # the service inherits this environment too
    results = run(binary, args.connections or (4 if args.smoke else 32), args.seconds or (1 if args.smoke else 10),
                  args.smoke, env)
    print(render(results, []))
    print("\n".join(f"{name}: {value} ({'met' if met else 'NOT met'})" for name, value, met in targets(results, 0)[:2]))


if __name__ == "__main__":
    main()
