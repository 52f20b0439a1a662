#!/usr/bin/env python3
"""Conversation trees (issue 17): the release with message trees against the one before it.

    python3 bench/tree.py --prev-bin /work/bench-target-prev/release/memlayer \\
                          --cur-bin  /work/bench-target-cur/release/memlayer
    python3 bench/tree.py --prev-bin ... --cur-bin ... --smoke    # seconds, tiny sizes
    python3 bench/tree.py ... --write    # also puts the section into docs/benchmarks.md

Both binaries are built beforehand (this script builds nothing): the previous release
from a worktree at the last commit before the tree (75ed29f), the current one from a
worktree of main. Each runs on its own fresh database of one PostgreSQL server
(BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres), both at once,
on --prev-port / --cur-port, without ASSISTANT_URL (the fixed reply "Message received").

Seeded with SQL matching each schema (the current one: each message's parent is the one
before it, the chat's active leaf its last message):
- chat A: a chat of --messages messages (user, assistant, ...) that never branched, on both;
- chat B (current only): the same, then --regenerations regenerations through the API on
  assistant messages spread evenly along it, then `PUT /chats/B/active` back to its
  original last message: the listed path is again the whole chat, with siblings off it;
- one post chat per user (--connections users), and one more chat of user 1.

Scenarios (wrk; the previous and the current release alternate, the order swapped each
round; the median round of each is reported; ratio = current ÷ previous req/s):
  a. GET chat A's messages (default limit: the latest 1,000), both releases;
  b. GET chat B's messages (current) against the previous release's (a);
  c. POST a message, the fixed reply: one wrk thread per connection, each posting to a
     chat of its own (of as many users), as users do; c'. every connection posting to
     one chat (--threads threads).
Then the plans: auto_explain (ANALYZE, nested statements too) on both databases, each
route exercised once, the plans read back from the server's log (--pg-log).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: token_for, Result, snapshot, psql, machine, ...)

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Conversation trees (issue 17)"
USER = "b0000000-0000-7000-8000-{:012d}"  # run.USER_ID: run.token_for(k) signs for it
POST_CHAT = "c1000000-0000-7000-8000-{:012d}"
CHAT_A = "c7000000-0000-7000-8000-000000000001"
CHAT_B = "c7000000-0000-7000-8000-000000000002"
ONE_CHAT = "c7000000-0000-7000-8000-000000000003"
CHAT_D = "c7000000-0000-7000-8000-000000000004"  # deleted at the end, timed
MESSAGE_A = "e7000000-0000-7000-8000-{:012d}"
MESSAGE_B = "e8000000-0000-7000-8000-{:012d}"
MESSAGE_D = "e9000000-0000-7000-8000-{:012d}"
QUESTION = "Remember that I prefer window seats."


@dataclass
class Release:
    name: str  # "previous" / "current"
    binary: Path
    port: int
    database: str
    url: str = ""
    process: subprocess.Popen | None = None
    tree: bool = False  # whether its schema has parent_id / active_message_id

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "DATABASE_URL": self.url,
            "JWT_SECRET": run.SECRET,
            "PORT": str(self.port),
            "BCRYPT_COST": "4",
            "AUTH_RATE_LIMIT_PER_MINUTE": "0",
            "MAX_CONNECTIONS_PER_CLIENT": "0",  # wrk is one client with many connections
            "RUST_LOG": "warn",
        }
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                sys.exit(f"port {self.port} is in use: pick another with --{self.name[:4]}-port")
        self.process = subprocess.Popen([str(self.binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.perf_counter()
        while time.perf_counter() - started < 60:
            if self.process.poll() is not None:
                sys.exit(f"the {self.name} release exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.01)
        sys.exit(f"the {self.name} release did not become ready in 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.process = None

    def http(self, method: str, path: str, body: dict | None = None, user: int = 1) -> tuple[int, object, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {run.token_for(user)}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null"), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def seed(release: Release, users: int, messages: int, doomed: int) -> None:
    """Users 1..users (each with a post chat), user 1 with chat A (and B on the current
    release) of `messages` messages in one line, chat D of `doomed` messages, and the one
    chat all connections post to."""
    tree = release.tree
    chats = [f"SELECT '{POST_CHAT[:24]}' || lpad(k::text, 12, '0'), '{USER[:24]}' || lpad(k::text, 12, '0'), 'Post here', now() "
             f"FROM generate_series(1, {users}) AS k",
             f"SELECT '{CHAT_A}', '{USER.format(1)}', 'Long A', now() - interval '2 days'",
             f"SELECT '{ONE_CHAT}', '{USER.format(1)}', 'One chat', now()",
             f"SELECT '{CHAT_D}', '{USER.format(1)}', 'Doomed', now() - interval '3 days'"]
    lines = [(CHAT_A, MESSAGE_A, messages), (CHAT_D, MESSAGE_D, doomed)]
    if tree:
        chats.append(f"SELECT '{CHAT_B}', '{USER.format(1)}', 'Long B', now() - interval '2 days'")
        lines.append((CHAT_B, MESSAGE_B, messages))
    sql = [
        # No scenario logs in (tokens are signed here, run.token_for): no usable hash needed.
        "INSERT INTO users (id, email, password_hash, created_at) "
        f"SELECT ('{USER[:24]}' || lpad(k::text, 12, '0'))::uuid, 'user' || k || '@tree.example', "
        f"'not a password hash', now() FROM generate_series(1, {users}) AS k;",
        "INSERT INTO chats (id, user_id, title, created_at) SELECT id::uuid, owner::uuid, title, at FROM ("
        + " UNION ALL ".join(chats) + ") AS c(id, owner, title, at);",
    ]
    for chat, ids, count in lines:
        message = f"('{ids[:24]}' || lpad(i::text, 12, '0'))::uuid"
        parent = f"CASE WHEN i = 0 THEN NULL ELSE ('{ids[:24]}' || lpad((i - 1)::text, 12, '0'))::uuid END"
        columns = "id, chat_id, user_id, role, content, created_at" + (", parent_id" if tree else "")
        sql.append(
            f"INSERT INTO messages ({columns}) SELECT {message}, '{chat}', '{USER.format(1)}', "
            "CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, "
            "CASE WHEN i % 2 = 0 THEN 'A question about the trip, number ' || i ELSE 'Message received' END, "
            "now() - interval '1 day' + i * interval '1 second'" + (f", {parent}" if tree else "")
            + f" FROM generate_series(0, {count - 1}) AS i;"
        )
        if tree:
            sql.append(f"UPDATE chats SET active_message_id = '{ids.format(count - 1)}' WHERE id = '{chat}';")
    sql.append("ANALYZE;")
    run.psql(release.url, "\n".join(sql))


def spread(messages: int, count: int) -> list[int]:
    """`count` assistant messages (odd positions) spread evenly along the chat, the last included."""
    step = messages // count
    return [position if position % 2 else position - 1 for position in range(step - 1, messages, step)][:count]


def branch(release: Release, messages: int, regenerations: int) -> None:
    """Chat B: regenerations on assistant messages spread along it, then its original last
    message made active again."""
    for position in spread(messages, regenerations):
        status, body, _ = release.http("POST", f"/chats/{CHAT_B}/messages/{MESSAGE_B.format(position)}/regenerate")
        assert status == 201, (status, body)
    status, body, _ = release.http("PUT", f"/chats/{CHAT_B}/active", {"message_id": MESSAGE_B.format(messages - 1)})
    assert status == 200 and body["active_message_id"] == MESSAGE_B.format(messages - 1), (status, body)
    run.psql(release.url, "ANALYZE;")


def check_page(release: Release, chat: str, path_query: str, messages: int, page: int) -> dict:
    """What GET messages lists: its length, its last message, and how many carry two siblings."""
    status, body, _ = release.http("GET", f"/chats/{chat}/messages{path_query}")
    assert status == 200, (status, body)
    ids = MESSAGE_A if chat == CHAT_A else MESSAGE_B
    expected = [ids.format(i) for i in range(messages - min(page, messages), messages)]
    listed = [message["id"] for message in body]
    assert listed == expected, f"{release.name}: {chat} lists {len(listed)} messages, not the {len(expected)} expected"
    siblings = [len(message.get("sibling_ids", [message["id"]])) for message in body]
    return {"length": len(body), "with_2_siblings": siblings.count(2), "max_siblings": max(siblings)}


LUA = """
local items = {items}
local method = "{method}"
local counter = 0
thread_id = 0  -- global: setup() sets it per thread with thread:set (a local would hide it)
local threads = 0
local per = 0

function setup(thread)
    thread:set("thread_id", threads)
    threads = threads + 1
end

function init(args)
    -- Each thread sends to its own share of the items, in turn.
    per = math.max(1, math.floor(#items / {threads}))
end

function request()
    counter = counter + 1
    local index = ((thread_id * per + (counter % per)) % #items) + 1
    local item = items[index]
    return wrk.format(method, item[1], {{["Authorization"] = "Bearer " .. item[2], ["Content-Type"] = "application/json"}}, item[3])
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format('RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}}\\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def lua(directory: Path, name: str, method: str, items: list[tuple[str, int, str]], threads: int) -> Path:
    script = directory / f"{name}.lua"
    rows = ", ".join("{" + ", ".join(json.dumps(v) for v in (path, run.token_for(user), body)) + "}" for path, user, body in items)
    script.write_text(LUA.format(items="{" + rows + "}", method=method, threads=threads))
    return script


def wrk(port: int, script: Path, connections: int, threads: int, seconds: int) -> run.Result:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"],
        check=True, text=True, capture_output=True,
    ).stdout
    data = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return run.Result(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000, data["errors"])


def measure(release: Release, script: Path, connections: int, threads: int, seconds: int) -> run.Result:
    wrk(release.port, script, connections, threads, 1)  # warm-up: connections, caches, prepared statements
    before = run.snapshot(release.process.pid)
    return run.measured(wrk(release.port, script, connections, threads, seconds), before, run.snapshot(release.process.pid))


# ---------------------------------------------------------------------------- plans

PLAN_START = re.compile(r"^(\S+ \S+ \S+) \[(\d+)\] (\S*)@(\S+) LOG:  duration: ([\d.]+) ms  plan:$")


def log_file(given: str | None) -> Path | None:
    if given:
        return Path(given)
    logs = sorted(glob.glob("/var/log/postgresql/postgresql-*.log"), key=os.path.getmtime)
    return Path(logs[-1]) if logs else None


def plans_since(log: Path, offset: int, database: str) -> list[tuple[str, str, list[str]]]:
    """(query text, duration, plan lines) of each auto_explain entry of `database` after `offset`."""
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    entries: list[tuple[str, str, list[str]]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        start = PLAN_START.match(line)
        if start:
            current = [] if start.group(4) == database else None
            if current is not None:
                entries.append(("", start.group(5), current))
            continue
        if current is not None and line.startswith("\t"):
            current.append(line[1:])
        else:
            current = None
    result = []
    for _, duration, lines in entries:
        query = " ".join(lines[0].removeprefix("Query Text: ").split()) if lines and lines[0].startswith("Query Text:") else ""
        rest = lines[1:]
        # Multi-line query texts: the plan starts at its first node (no leading spaces, a cost).
        while rest and "(cost=" not in rest[0]:
            query += " " + " ".join(rest[0].split())
            rest = rest[1:]
        result.append((query, duration, rest))
    return result


def trim(line: str) -> str:
    """A plan line without its estimates and buffers: the node, its conditions, actual rows and time."""
    line = re.sub(r"\s*\(cost=[^)]*\)", "", line)
    return line if len(line) <= 300 else line[:240] + " … " + line[-40:]  # id lists of a thousand


KEEP = re.compile(r"Scan|Join|Loop|Limit|Sort|Insert|Update|Delete|Append|Result|Aggregate|Hash|Materialize|Index Cond|Filter|Recheck Cond|Sort Key|Rows Removed|Heap Fetches|Subquery|SubPlan|InitPlan|Unique|Trigger|Execution|Planning|Gather|Memoize|Cond")


def capture_plans(release: Release, log: Path, routes: list[tuple[str, callable]]) -> dict[str, list[tuple[str, str, list[str]]]]:
    """Each route run once with auto_explain on the release's database; its plans."""
    admin_url = release.url
    settings = {
        "session_preload_libraries": "'auto_explain'",
        "auto_explain.log_min_duration": "0",
        "auto_explain.log_analyze": "on",
        "auto_explain.log_nested_statements": "on",  # the foreign-key checks too
        "auto_explain.log_timing": "on",
    }
    for name, value in settings.items():
        run.psql(admin_url, f"ALTER DATABASE {release.database} SET {name} = {value}")
    release.stop()
    release.start()  # new pool connections: they load auto_explain
    found: dict[str, list] = {}
    try:
        for route, call in routes:
            time.sleep(0.3)
            offset = log.stat().st_size
            call()
            time.sleep(0.5)  # the backends' log lines reach the file
            found[route] = plans_since(log, offset, release.database)
    finally:
        for name in settings:
            run.psql(admin_url, f"ALTER DATABASE {release.database} RESET {name}")
        release.stop()
        release.start()
    return found


def touches_messages(query: str) -> bool:
    return bool(re.search(r'\bmessages\b|"messages"', query))


def render_plans(plans: dict[str, list[tuple[str, str, list[str]]]], only_messages: bool = True) -> list[str]:
    lines = []
    for route, entries in plans.items():
        shown = [entry for entry in entries if not only_messages or touches_messages(entry[0])]
        statements = [entry for entry in entries if not entry[0].startswith("SELECT 1 FROM ONLY")]
        checks = len(entries) - len(statements)
        lines += [f"**{route}**: {len(statements)} statement(s) (+{checks} foreign-key checks); on `messages`:", "", "```"]
        for query, duration, plan in shown:
            short = query if len(query) <= 400 else query[:300] + " … " + query[-100:]
            lines.append(f"-- {short}")
            lines += ["   " + trim(line) for line in plan if KEEP.search(line)]
        lines += ["```", ""]
    return lines


def seq_scans(plans: dict[str, list[tuple[str, str, list[str]]]]) -> list[tuple[str, str, list[str]]]:
    return [(route, query, plan) for route, entries in plans.items() for query, _, plan in entries
            if any("Seq Scan on messages" in line for line in plan)]


# ---------------------------------------------------------------------------- main

def median(results: list[run.Result]) -> run.Result:
    return sorted(results, key=lambda result: result.throughput)[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prev-bin", type=Path, required=True, help="memlayer binary of the previous release (75ed29f)")
    parser.add_argument("--cur-bin", type=Path, required=True, help="memlayer binary of the release with trees")
    parser.add_argument("--prev-port", type=run.port_number, default=8131)
    parser.add_argument("--cur-port", type=run.port_number, default=8132)
    parser.add_argument("--prev-database", type=run.database_name, default="memlayer_tree_prev")
    parser.add_argument("--cur-database", type=run.database_name, default="memlayer_tree_cur")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 s runs, one round; writes nothing")
    parser.add_argument("--seconds", type=int, help="each wrk run (default 10; smoke 1)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 32; smoke 4)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--rounds", type=int, help="rounds of every scenario, median reported (default 3; smoke 1)")
    parser.add_argument("--messages", type=int, help="messages in the long chat (default 10000; smoke 200)")
    parser.add_argument("--regenerations", type=int, help="regenerations spread along chat B (default 50; smoke 5)")
    parser.add_argument("--delete-messages", type=int, help="messages of the chat whose DELETE is timed (default 1000; smoke 50)")
    parser.add_argument("--page", type=int, help="?limit= of the listed page (default: none, the service's 1000; smoke 50)")
    parser.add_argument("--pg-log", help="PostgreSQL's log file, for the plans (default: newest /var/log/postgresql/postgresql-*.log)")
    parser.add_argument("--no-plans", action="store_true", help="skip the auto_explain plans")
    parser.add_argument("--write", action="store_true", help=f"put the section '{SECTION}' into docs/benchmarks.md")
    parser.add_argument("--commits", default="", help="'PREV CUR' commit hashes, for the report")
    args = parser.parse_args()
    smoke = args.smoke
    seconds = args.seconds or (1 if smoke else 10)
    connections = args.connections or (4 if smoke else 32)
    threads = min(args.threads, connections)
    rounds = args.rounds or (1 if smoke else 3)
    messages = args.messages or (200 if smoke else 10_000)
    regenerations = args.regenerations or (5 if smoke else 50)
    page = args.page or (50 if smoke else None)
    doomed = args.delete_messages or (50 if smoke else 1000)
    query = f"?limit={page}" if page else ""
    page_length = page or 1000
    if regenerations > messages // 2:
        sys.exit("--regenerations: at most half the messages")
    for tool in ("wrk", "psql"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing")
    for binary in (args.prev_bin, args.cur_bin):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary}: not an executable (build it first: cargo build --release -p memlayer-server)")

    admin = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    args.pg_version = run.psql(admin, "SHOW server_version")
    prev = Release("previous", args.prev_bin, args.prev_port, args.prev_database)
    cur = Release("current", args.cur_bin, args.cur_port, args.cur_database, tree=True)
    for release in (prev, cur):
        release.url = run.database_url(admin, release.database)
        run.psql(admin, f"DROP DATABASE IF EXISTS {release.database} WITH (FORCE)")
        run.psql(admin, f"CREATE DATABASE {release.database}")
    rows: list[tuple[str, str, run.Result, run.Result, float]] = []
    checks: dict[str, dict] = {}
    plans: dict[str, dict] = {}
    deletes: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for release in (prev, cur):
            release.start()  # applies the migrations
            seed(release, connections, messages, doomed)
        branch(cur, messages, regenerations)
        checks["a previous"] = check_page(prev, CHAT_A, query, messages, page_length)
        checks["a current"] = check_page(cur, CHAT_A, query, messages, page_length)
        checks["b current"] = check_page(cur, CHAT_B, query, messages, page_length)
        print(f"pages: {checks}", flush=True)
        assert checks["b current"]["with_2_siblings"] > 0, "chat B's page shows no branch"

        body = json.dumps({"content": QUESTION})
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            read_a = lua(directory, "read_a", "GET", [(f"/chats/{CHAT_A}/messages{query}", 1, "")], threads)
            read_b = lua(directory, "read_b", "GET", [(f"/chats/{CHAT_B}/messages{query}", 1, "")], threads)
            # One connection per wrk thread, each thread on its own chat: every connection
            # keeps to one chat, as a user does (wrk has no per-connection state).
            post = lua(directory, "post", "POST", [(f"/chats/{POST_CHAT.format(k)}/messages", k, body) for k in range(1, connections + 1)], connections)
            post_one = lua(directory, "post_one", "POST", [(f"/chats/{ONE_CHAT}/messages", 1, body)], threads)
            runs: dict[tuple[str, str], list[run.Result]] = {}
            plan = [("a", read_a, read_a, threads), ("b", None, read_b, threads), ("c", post, post, connections),
                    ("c1", post_one, post_one, threads)]
            for round_ in range(rounds):
                for key, prev_script, cur_script, wrk_threads in plan:
                    order = [(prev, prev_script), (cur, cur_script)]
                    if round_ % 2:
                        order.reverse()
                    for release, script in order:
                        if script is None:
                            continue
                        result = measure(release, script, connections, wrk_threads, seconds)
                        runs.setdefault((key, release.name), []).append(result)
                        print(f"round {round_ + 1} {key} {release.name}: {result.throughput:,.0f} req/s p50 {result.p50_ms:.2f} ms "
                              f"p99 {result.p99_ms:.2f} ms errors {result.errors}", flush=True)
        names = {
            "a": f"a. GET messages, {messages:,}-message chat, never branched",
            "b": f"b. GET messages, the same after {regenerations} regenerations (vs previous a)",
            "c": "c. POST message (fixed reply), a chat per connection",
            "c1": "c'. POST message (fixed reply), all connections on one chat",
        }
        targets = {"a": 0.8, "b": 0.7, "c": 0.9, "c1": None}
        for key in ("a", "b", "c", "c1"):
            previous = median(runs[("a" if key == "b" else key, "previous")])
            current = median(runs[(key, "current")])
            rows.append((key, names[key], previous, current, targets[key]))

        if not args.no_plans:
            log = log_file(args.pg_log)
            if log is None or not os.access(log, os.R_OK):
                print(f"PostgreSQL's log is not readable ({log}): no plans (--pg-log, or --no-plans)", flush=True)
            else:
                plans = collect_plans(prev, cur, log, messages, query)
        args.table_rows = {}
        for release in (prev, cur):
            args.table_rows[release.name] = f"{int(run.psql(release.url, 'SELECT count(*) FROM messages')):,}"
            begun = time.perf_counter()
            status, body, _ = release.http("DELETE", f"/chats/{CHAT_D}")
            deletes[release.name] = time.perf_counter() - begun
            assert status == 204, (status, body)
            print(f"DELETE a chat of {doomed} messages, {release.name}: {deletes[release.name] * 1000:.0f} ms", flush=True)
    finally:
        for release in (prev, cur):
            release.stop()

    report = render(args, rows, checks, plans, deletes, doomed, seconds, connections, threads, rounds, messages, regenerations, page_length)
    print(report)
    errors = [f"{key} {side}" for key, _, p, c, _ in rows for side, r in (("previous", p), ("current", c)) if r.errors or not r.requests]
    print(f"({time.perf_counter() - started:.0f} s)")
    if errors:
        sys.exit(f"runs with errors or no requests: {errors}")
    if args.write and not smoke:
        run.write_section(ROOT / "docs" / "benchmarks.md", SECTION, report)


def collect_plans(prev: Release, cur: Release, log: Path, messages: int, query: str) -> dict[str, dict]:
    marker = {}

    def post(release: Release, chat: str) -> None:
        status, body, _ = release.http("POST", f"/chats/{chat}/messages", {"content": QUESTION})
        assert status == 201, (status, body)

    def regenerate() -> None:
        status, body, _ = cur.http("POST", f"/chats/{CHAT_B}/messages/{MESSAGE_B.format(messages // 2 + 1)}/regenerate")
        assert status == 201, (status, body)

    def edit() -> None:
        status, body, _ = cur.http("POST", f"/chats/{CHAT_B}/messages/{MESSAGE_B.format(messages // 2)}/edit", {"content": "Aisle, in fact."})
        assert status == 201, (status, body)
        marker["edited"] = body["parent_id"]  # the new user message, parent of the reply

    def activate() -> None:
        status, body, _ = cur.http("PUT", f"/chats/{CHAT_B}/active", {"message_id": MESSAGE_B.format(messages - 1)})
        assert status == 200, (status, body)

    def tree() -> None:
        status, body, _ = cur.http("GET", f"/chats/{CHAT_B}/tree")
        assert status == 200, (status, body)
        marker["tree"] = len(body)

    def delete() -> None:
        status, body, _ = cur.http("DELETE", f"/chats/{CHAT_B}/messages/{marker['edited']}")
        assert status == 204, (status, body)

    def get(release: Release, chat: str) -> callable:
        def call() -> None:
            status, body, _ = release.http("GET", f"/chats/{chat}/messages{query}")
            assert status == 200, (status, body)
        return call

    result = {
        "previous": capture_plans(prev, log, [
            ("a. GET /chats/A/messages", get(prev, CHAT_A)),
            ("c. POST /chats/{id}/messages", lambda: post(prev, POST_CHAT.format(1))),
        ]),
        "current": capture_plans(cur, log, [
            ("a. GET /chats/A/messages", get(cur, CHAT_A)),
            ("b. GET /chats/B/messages (branched)", get(cur, CHAT_B)),
            ("c. POST /chats/{id}/messages", lambda: post(cur, POST_CHAT.format(1))),
            ("POST /chats/B/messages/{mid}/regenerate", regenerate),
            ("POST /chats/B/messages/{mid}/edit", edit),
            ("PUT /chats/B/active", activate),
            ("GET /chats/B/tree", tree),
            ("DELETE /chats/B/messages/{mid} (the edited branch)", delete),
        ]),
    }
    run.psql(cur.url, "ANALYZE;")
    return result


def render(args, rows, checks, plans, deletes, doomed, seconds, connections, threads, rounds, messages, regenerations, page_length) -> str:
    commits = args.commits.split() if args.commits else ["?", "?"]
    lines = [
        SECTION,
        "",
        "The release with message trees (4556006 \"Conversations as a tree\" and after) against the one before it, "
        "side by side on one PostgreSQL, in one run of",
        "",
        "```sh",
        "python3 bench/tree.py --prev-bin /work/bench-target-prev/release/memlayer --cur-bin /work/bench-target-cur/release/memlayer",
        "```",
        "",
        f"- Previous release: `{commits[0]}`; current: `{commits[-1]}`; both `cargo build --release -p memlayer-server --locked`.",
        f"- Run on {datetime.date.today().isoformat()}: {run.machine()}; PostgreSQL "
        f"{args.pg_version} "
        "on the same machine (shared with other builds: ratios, not absolute numbers, are the result).",
        f"- Each release on its own fresh database, both running at once (pool of 10, no ASSISTANT_URL: the fixed reply). "
        f"wrk at {connections} connections, {threads} threads, {seconds} s per run after a 1 s warm-up; {rounds} rounds, "
        "the two releases alternating (order swapped each round); the median round of each is shown.",
        f"- Chat A: {messages:,} messages seeded with SQL (on the current schema each one's parent is the one before it, "
        f"the last the active leaf). Chat B (current only): the same, then {regenerations} `POST …/regenerate` on assistant "
        f"messages spread evenly along it and `PUT /chats/B/active` back to its original last message. "
        f"GET lists the default page (the latest {page_length:,}): checked: previous A {checks['a previous']['length']} messages; "
        f"current A {checks['a current']['length']} (largest sibling group {checks['a current']['max_siblings']}); "
        f"current B {checks['b current']['length']}, of which {checks['b current']['with_2_siblings']} carry `sibling_ids` of length 2.",
        f"- POST: c runs {connections} wrk threads of one connection each, each posting to a chat of its own (of as many users); "
        f"c' puts every connection ({threads} threads) on one chat (the current release serializes posts to a chat on its row: "
        "`UPDATE chats SET active_message_id`, held to the commit).",
        "",
        "| scenario | previous req/s | p50 / p99 ms | current req/s | p50 / p99 ms | current ÷ previous | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for key, name, previous, current, target in rows:
        ratio = current.throughput / previous.throughput if previous.throughput else 0.0
        met = "—" if target is None else ("yes" if ratio >= target else "**no**")
        lines.append(
            f"| {name} | {previous.throughput:,.0f} | {previous.p50_ms:.2f} / {previous.p99_ms:.2f} | {current.throughput:,.0f} | "
            f"{current.p50_ms:.2f} / {current.p99_ms:.2f} | {ratio:.2f} | {'—' if target is None else f'≥ {target}'} | {met} |"
        )
    lines += [
        "",
        "Service CPU per request (from `/proc`, same runs): "
        + "; ".join(f"{key} {previous.service_cpu_us:.0f} → {current.service_cpu_us:.0f} µs" for key, _, previous, current, _ in rows)
        + " (previous → current; b against previous a).",
        "",
    ]
    if deletes:
        lines += [
            f"`DELETE /chats/{{id}}` of a chat of {doomed:,} messages (one request, after the runs; messages in the table: "
            f"previous {args.table_rows.get('previous', '?')}, current {args.table_rows.get('current', '?')}): previous "
            f"{deletes['previous'] * 1000:,.0f} ms, current {deletes['current'] * 1000:,.0f} ms.",
            "",
        ]
    analysis = Path(__file__).resolve().parent / "tree-analysis.md"  # the hand-written part
    if analysis.exists():
        lines += [analysis.read_text().rstrip("\n"), ""]
    if plans:
        scans = seq_scans(plans.get("current", {}))
        lines += [
            "### Plans",
            "",
            "auto_explain (`log_analyze`, nested statements: the foreign-key checks too) on each database, every route run "
            "once after the load (ANALYZE after seeding), the statements touching `messages` trimmed to their nodes, "
            "conditions and actual rows. "
            + ("**Sequential scans of `messages`: " + "; ".join(
                f"{route} (`{query[:90]}…`)" for route, query, _ in scans) + ".**" if scans
               else "No sequential scan of `messages` in any of them."),
            "",
            "Current release:",
            "",
            *render_plans(plans.get("current", {})),
            "Previous release, for comparison:",
            "",
            *render_plans(plans.get("previous", {})),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
