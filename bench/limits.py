#!/usr/bin/env python3
"""Posting with the operator's limits on and off (issue 19), in one run.

    python3 bench/limits.py                 # release build of this checkout
    python3 bench/limits.py --smoke         # a few seconds
    python3 bench/limits.py --write         # also puts the section into docs/benchmarks.md

It builds nothing: the binary (--binary, default target/release/memlayer) is built
beforehand. Posting a message with a model behind it (`POST /chats/{id}/messages`, JSON,
a scripted model in this process answering three pieces at once) is measured with wrk,
8 connections, each request as one of 200 users in their own chat, on a fresh
PostgreSQL database and on a fresh SQLite file:

- off: no daily token limit, `USER_MAX_GENERATIONS=1000`;
- on: `USER_TOKENS_PER_DAY=1000000000` and `USER_MAX_GENERATIONS=3` (checked on every
  post, never reached).

The two alternate, a fresh instance each round on the same database (off, on, off, on,
...), so drift on a noisy machine falls on both; the median of each is reported, and
the ratio on / off. Every post records its usage and adds it to the ledger either way:
that cost is the release's, not the limits'.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generations  # noqa: E402  (the scripted model and an instance of the service)
import run  # noqa: E402  (psql, database_url, machine, write_section)

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Posting with limits on (issue 19)"
USERS = 200
CONNECTIONS = 8
OFF = {"USER_MAX_GENERATIONS": "1000", "USER_TOKENS_PER_DAY": "", "MAX_GENERATIONS": "1000"}
ON = {"USER_MAX_GENERATIONS": "3", "USER_TOKENS_PER_DAY": "1000000000", "MAX_GENERATIONS": "1000"}

LUA = """
local items = {items}
local counter = 0
thread_id = 0
local threads = 0

function setup(thread)
    thread:set("thread_id", threads)
    threads = threads + 1
end

-- Each thread walks its own half of the users, so no two requests in flight share a chat.
function request()
    counter = counter + 1
    local half = math.floor(#items / 2)
    local item = items[(counter % half) + thread_id * half + 1]
    return wrk.format("POST", item[1], {{["Authorization"] = "Bearer " .. item[2], ["Content-Type"] = "application/json"}}, item[3])
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format('RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}}\\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def prepare(instance: generations.Instance, directory: Path) -> Path:
    """USERS accounts, each with a chat; the wrk script posting as each in turn."""
    items = []
    body = json.dumps({"content": "pieces=3 pause=0"})
    for n in range(USERS):
        token = generations.register(instance, f"limits{n}")
        chat = generations.new_chat(instance, token)
        items.append("{" + ", ".join(json.dumps(value) for value in (f"/chats/{chat}/messages", token, body)) + "}")
    script = directory / "post.lua"
    script.write_text(LUA.format(items="{" + ", ".join(items) + "}"))
    return script


def load(script: Path, port: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"],
        check=True, text=True, capture_output=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    data = json.loads(line[len("RESULT "):])
    return {"per_second": data["requests"] / (data["duration_us"] / 1e6), "p50_ms": data["p50_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000, "errors": data["errors"]}


def measure(binary: Path, url: str, port: int, model: generations.Model, rounds: int, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        first = generations.Instance(binary, url, port, model, OFF)
        try:
            script = prepare(first, Path(folder))
            load(script, port, 2)  # warm-up: caches, the database's buffers
        finally:
            first.stop()
        results: dict[str, list[dict]] = {"off": [], "on": []}
        for _ in range(rounds):
            for name, settings in (("off", OFF), ("on", ON)):
                instance = generations.Instance(binary, url, port, model, settings)
                try:
                    results[name].append(load(script, port, seconds))
                finally:
                    instance.stop()
                print(f"  {name}: {results[name][-1]}", flush=True)
    summary = {
        name: {
            "per_second": statistics.median(r["per_second"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "rounds": [round(r["per_second"]) for r in runs],
        }
        for name, runs in results.items()
    }
    summary["ratio"] = summary["on"]["per_second"] / summary["off"]["per_second"]
    return summary


def render(report: dict) -> str:
    lines = [
        SECTION,
        "",
        f"`python3 bench/limits.py` ({report['when']}; {report['machine']}); release build; posting a message "
        f"with a scripted model (three pieces, at once) behind it, JSON, wrk with {CONNECTIONS} connections "
        f"over {USERS} users each in their own chat; {report['rounds']} rounds of {report['seconds']} s each way, "
        "alternating, a fresh instance each round; medians. Off: no daily token limit and "
        "`USER_MAX_GENERATIONS=1000`; on: `USER_TOKENS_PER_DAY=1000000000`, `USER_MAX_GENERATIONS=3` "
        "(checked, never reached). Usage is recorded and added to the ledger either way.",
        "",
        "| database | off: posts/s | on: posts/s | on ÷ off (target ≥ 0.95) | p50 off / on | p99 off / on | errors | rounds off / on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in report["backends"].items():
        off, on = result["off"], result["on"]
        lines.append(
            f"| {name} | {off['per_second']:.0f} | {on['per_second']:.0f} | {result['ratio']:.3f} | "
            f"{off['p50_ms']:.1f} / {on['p50_ms']:.1f} ms | {off['p99_ms']:.1f} / {on['p99_ms']:.1f} ms | "
            f"{off['errors'] + on['errors']} | {off['rounds']} / {on['rounds']} |"
        )
    lines += [
        "",
        "What a post costs for the limits: the per-user checks ride on the read the post made already "
        "(the replies generating, now with the account's own limit and the day's tokens, one statement), "
        "and on the start's transaction (the statement that locks the user's row, there already, now also "
        "reads its own limit, whether it is disabled and, as a subquery, the day's tokens), so a post makes "
        "the same statements with the limits on or off. No `GET` route reads anything more. (A first version "
        "read the day's tokens in a statement of its own when a limit applied: 0.969 on PostgreSQL and 0.916 "
        "on SQLite, where the start's transaction holds the one writer.)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "memlayer")
    parser.add_argument("--port", type=int, default=8121)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} is missing: cargo build --release -p memlayer-server")
    rounds, seconds = (1, 2) if args.smoke else (3, 10)
    admin = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database = "memlayer_limits_bench"
    run.psql(admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    run.psql(admin, f"CREATE DATABASE {database}")
    model = generations.Model()
    report: dict = {"when": time.strftime("%Y-%m-%d"), "machine": run.machine(), "rounds": rounds,
                    "seconds": seconds, "backends": {}}
    try:
        print("PostgreSQL:", flush=True)
        report["backends"]["PostgreSQL"] = measure(
            args.binary, run.database_url(admin, database), args.port, model, rounds, seconds)
        with tempfile.TemporaryDirectory() as folder:
            print("SQLite:", flush=True)
            report["backends"]["SQLite"] = measure(
                args.binary, f"sqlite://{folder}/bench.db", args.port, model, rounds, seconds)
    finally:
        model.stop()
        run.psql(admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    text = render(report)
    print(text)
    if args.write:
        run.write_section(ROOT / "docs" / "benchmarks.md", SECTION, text)


if __name__ == "__main__":
    main()
