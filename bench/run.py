#!/usr/bin/env python3
"""MemLayer's benchmark: the service under load, next to what PostgreSQL alone can do.

    python3 bench/run.py            # full run (release build, ~3 minutes); writes docs/benchmarks.md
    python3 bench/run.py --smoke    # seconds: checks that every scenario runs and yields numbers
    python3 bench/run.py --port 8200 --database memlayer_bench2   # another port / database

With BENCH_MODEL=host:port of a llama-server (scripts/model-server start 8089), it also
compares streamed replies through MemLayer with the same requests straight to the model.

For each scenario it seeds a fresh PostgreSQL database, drives the service over HTTP with
wrk (a separate process) and reports throughput and p50/p99 latency; then it runs, at the
same concurrency, pgbench executing the same SQL statements the service issues for that
scenario: the ceiling. It also measures start-up time to ready, idle and loaded memory,
and chat latency under a storm of logins.

Needs: cargo, wrk, pgbench and psql, and a PostgreSQL server at BENCH_POSTGRES_URL
(default postgres://postgres@127.0.0.1:5432/postgres) on which it may drop and create the
database named by --database (default memlayer_bench). The service listens on
127.0.0.1 at --port (default 8100), which must be free.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import platform
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

import embedded
import search
import streaming

ROOT = Path(__file__).resolve().parent.parent
ANALYSIS = Path(__file__).resolve().parent / "analysis.md"  # the hand-written part of the report
SECRET = "benchmark-secret-of-at-least-32-bytes!"
PORT = 8100  # the service's port on 127.0.0.1; --port
DATABASE = "memlayer_bench"  # dropped and re-created on BENCH_POSTGRES_URL's server; --database
HISTORY = 50  # messages in the chat the long "list messages" scenario reads
SHORT = 20  # messages in the chat the short one reads
EXTRA_CHATS = 17  # with the post, history and short chats: 20 chats per user for "list chats"

# Deterministic ids, so pgbench can address the seeded rows from its client number.
USER_ID = "b0000000-0000-7000-8000-{:012d}"
POST_CHAT_ID = "c1000000-0000-7000-8000-{:012d}"
HISTORY_CHAT_ID = "c2000000-0000-7000-8000-{:012d}"
SHORT_CHAT_ID = "c3000000-0000-7000-8000-{:012d}"


@dataclass
class Result:
    """One load run's numbers."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    machine_cpu_us: float = 0.0  # CPU time of the whole machine per request
    service_cpu_us: float = 0.0  # of which the service's
    switches: float = 0.0  # the service's context switches per request

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


TICK = os.sysconf("SC_CLK_TCK")


def snapshot(pid: int | None) -> tuple[float, float, float]:
    """(machine busy seconds, service CPU seconds, service context switches) so far."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / TICK  # all but idle and iowait
    if pid is None:
        return busy, 0.0, 0.0
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    switches = sum(
        int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir()
        for line in (task / "status").read_text().splitlines()
        if "ctxt_switches" in line
    )
    return busy, (int(stat[11]) + int(stat[12])) / TICK, float(switches)


def measured(result: Result, before: tuple[float, float, float], after: tuple[float, float, float]) -> Result:
    """`result` with the CPU and context switches spent between two snapshots."""
    if result.requests:
        result.machine_cpu_us = (after[0] - before[0]) / result.requests * 1e6
        result.service_cpu_us = (after[1] - before[1]) / result.requests * 1e6
        result.switches = (after[2] - before[2]) / result.requests
    return result


@dataclass
class Scenario:
    """A request the service serves, the SQL it issues for it, and the SQL the original
    FastAPI backend issued for the same request."""

    name: str
    method: str
    path: str  # with {post_chat} / {history_chat} / {short_chat} placeholders
    body: str | None
    sql: str  # pgbench script; :k is the user number (client_id + 1)
    original: str = ""  # the same, as the original backend asked for it


ID = "('{prefix}' || lpad(:k::text, 12, '0'))::uuid"
USER = ID.format(prefix=USER_ID[:24])
POST_CHAT = ID.format(prefix=POST_CHAT_ID[:24])
HISTORY_CHAT = ID.format(prefix=HISTORY_CHAT_ID[:24])
SHORT_CHAT = ID.format(prefix=SHORT_CHAT_ID[:24])
PROLOGUE = "\\set k :client_id + 1\n"
MESSAGE_COLUMNS = '"messages"."id", "messages"."chat_id", "messages"."user_id", "messages"."role", "messages"."content", "messages"."created_at"'
# The seeded chats as the service keeps them (and as its migration turns a list into):
# each message follows the one before it, the last is the chat's active leaf. Valid SQL
# for PostgreSQL and SQLite alike.
TREE_SQL = """
        UPDATE messages SET parent_id = ordered.previous
        FROM (SELECT id, lag(id) OVER (PARTITION BY chat_id ORDER BY created_at, id) AS previous FROM messages) AS ordered
        WHERE messages.id = ordered.id AND ordered.previous IS NOT NULL;
        UPDATE chats SET active_message_id = (
            SELECT id FROM messages WHERE messages.chat_id = chats.id ORDER BY created_at DESC, id DESC LIMIT 1);
"""


def original(*statements: str) -> str:
    """The original backend's statements for a request: one transaction (SQLAlchemy's
    session), which loads the token's user by id first, as every authenticated route
    did, then does the route's work."""
    user = f'SELECT "users"."id", "users"."email", "users"."password_hash", "users"."created_at" FROM "users" WHERE "users"."id" = {USER};\n'
    return PROLOGUE + "BEGIN;\n" + user + "".join(statements) + "COMMIT;\n"


def original_chat(chat: str) -> str:
    """The original's ownership check: the chat by id (then compared in Python)."""
    return f'SELECT "chats"."id", "chats"."user_id", "chats"."title", "chats"."created_at" FROM "chats" WHERE "chats"."id" = {chat};\n'


def original_history(chat: str) -> str:
    """The original's message list: the whole chat, oldest first."""
    return f'SELECT {MESSAGE_COLUMNS} FROM "messages" WHERE "messages"."chat_id" = {chat} ORDER BY "messages"."created_at", "messages"."id";\n'


def owned(chat: str) -> str:
    """The ownership and revocation check the service folds into its statements: the chat
    joined to its owner, the token's user, in the token's generation."""
    return (
        f'SELECT "chats"."id", "chats"."user_id" FROM ("chats" INNER JOIN "users" ON ("chats"."user_id" = "users"."id")) '
        f'WHERE ((("chats"."id" = {chat}) AND ("chats"."user_id" = {USER})) AND ("users"."token_generation" = 0))'
    )


def own_history(chat: str) -> str:
    """The service's first read of a chat's active path: the chat's newest messages with
    the chat's active leaf, the ownership and revocation check joined in (a page of
    1,000 and the walk's two extra rows)."""
    return (
        PROLOGUE
        + f'SELECT {MESSAGE_COLUMNS}, "messages"."parent_id", "messages"."status", "chats"."active_message_id" '
        + 'FROM ("messages" INNER JOIN ("chats" INNER JOIN "users" ON ("chats"."user_id" = "users"."id")) '
        + 'ON ("messages"."chat_id" = "chats"."id")) '
        + f'WHERE ((("messages"."chat_id" = {chat}) AND ("chats"."user_id" = {USER})) AND ("users"."token_generation" = 0)) '
        + 'ORDER BY "messages"."created_at" DESC, "messages"."id" DESC LIMIT 1003;\n'
    )


QUESTION = "Remember that I prefer window seats."
INSERT_QUESTION = f"INSERT INTO \"messages\" (\"id\", \"chat_id\", \"user_id\", \"role\", \"content\", \"created_at\") VALUES (gen_random_uuid(), {POST_CHAT}, {USER}, 'user', '{QUESTION}', now());\n"
INSERT_REPLY = f"INSERT INTO \"messages\" (\"id\", \"chat_id\", \"user_id\", \"role\", \"content\", \"created_at\") VALUES (gen_random_uuid(), {POST_CHAT}, {USER}, 'assistant', 'Message received', now() + interval '1 microsecond');\n"
# The service's post with the fixed reply on PostgreSQL: one statement that stores the
# question after the chat's active leaf, the reply after the question, and makes the
# reply the active leaf (crates/adapters/src/db/messages.rs, EXCHANGE_POSTGRES).
INSERT_EXCHANGE = (
    f"WITH chat AS (SELECT chats.id, chats.active_message_id FROM chats JOIN users ON users.id = chats.user_id "
    f"WHERE chats.id = {POST_CHAT} AND chats.user_id = {USER} AND users.token_generation = 0), "
    "question AS (INSERT INTO messages (id, chat_id, user_id, role, content, created_at, parent_id, status) "
    f"SELECT gen_random_uuid(), chat.id, {USER}, 'user', '{QUESTION}', now(), chat.active_message_id, 'complete' FROM chat RETURNING id), "
    "reply AS (INSERT INTO messages (id, chat_id, user_id, role, content, created_at, parent_id, status) "
    f"SELECT gen_random_uuid(), {POST_CHAT}, {USER}, 'assistant', 'Message received', now() + interval '1 microsecond', question.id, 'complete' "
    "FROM question RETURNING id) "
    f"UPDATE chats SET active_message_id = reply.id FROM reply WHERE chats.id = {POST_CHAT};\n"
)

SCENARIOS = [
    Scenario(
        f"list messages ({SHORT}-message chat)",
        "GET",
        "/chats/{short_chat}/messages",
        None,
        own_history(SHORT_CHAT),
        original(original_chat(SHORT_CHAT), original_history(SHORT_CHAT)),
    ),
    Scenario(
        f"list messages ({HISTORY}-message chat)",
        "GET",
        "/chats/{history_chat}/messages",
        None,
        own_history(HISTORY_CHAT),
        original(original_chat(HISTORY_CHAT), original_history(HISTORY_CHAT)),
    ),
    Scenario(
        "list chats (20 chats)",
        "GET",
        "/chats",
        None,
        PROLOGUE
        + f'SELECT "chats"."id", "chats"."user_id", "chats"."title", "chats"."created_at" FROM ("chats" INNER JOIN "users" ON ("chats"."user_id" = "users"."id")) WHERE (("chats"."user_id" = {USER}) AND ("users"."token_generation" = 0)) ORDER BY "chats"."created_at" DESC, "chats"."id" DESC LIMIT 201;\n',
        original(f'SELECT "chats"."id", "chats"."user_id", "chats"."title", "chats"."created_at" FROM "chats" WHERE "chats"."user_id" = {USER} ORDER BY "chats"."created_at" DESC;\n'),
    ),
    Scenario(
        "post message",
        "POST",
        "/chats/{post_chat}/messages",
        json.dumps({"content": QUESTION}),
        PROLOGUE + INSERT_EXCHANGE,
        original(original_chat(POST_CHAT), INSERT_QUESTION, INSERT_REPLY),
    ),
    Scenario(
        "create chat",
        "POST",
        "/chats",
        '{"title": "Benchmark chat"}',
        PROLOGUE
        + f"INSERT INTO \"chats\" (\"id\", \"user_id\", \"title\", \"created_at\") SELECT gen_random_uuid(), \"users\".\"id\", 'Benchmark chat', now() FROM \"users\" WHERE ((\"users\".\"id\" = {USER}) AND (\"users\".\"token_generation\" = 0));\n",
        original(f"INSERT INTO \"chats\" (\"id\", \"user_id\", \"title\", \"created_at\") VALUES (gen_random_uuid(), {USER}, 'Benchmark chat', now());\n"),
    ),
    Scenario(
        "login (bcrypt)",
        "POST",
        "/auth/login",
        None,  # per user, see lua_script
        PROLOGUE
        + "SELECT \"users\".\"id\", \"users\".\"email\", \"users\".\"password_hash\", \"users\".\"created_at\", \"users\".\"token_generation\" FROM \"users\" WHERE \"users\".\"email\" = 'user' || :k || '@bench.example' LIMIT 1;\n",
        PROLOGUE
        + "SELECT \"users\".\"id\", \"users\".\"email\", \"users\".\"password_hash\", \"users\".\"created_at\" FROM \"users\" WHERE \"users\".\"email\" = 'user' || :k || '@bench.example';\n",
    ),
]
SCENARIO = {scenario.name: scenario for scenario in SCENARIOS}


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs)


def psql(url: str, sql: str) -> str:
    return run("psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql).stdout.strip()


def database_url(admin: str, name: str) -> str:
    """The URL of database `name` on the admin URL's server, without TLS: on loopback it
    only adds encryption work to both sides (the service's libpq and pgbench's alike)."""
    return admin.split("?", 1)[0].rsplit("/", 1)[0] + "/" + name + "?sslmode=disable"


def port_number(text: str) -> int:
    """--port: a TCP port number."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def database_name(name: str) -> str:
    """--database: a plain identifier, as it goes unquoted into DROP/CREATE DATABASE."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise argparse.ArgumentTypeError(f"{name!r}: use lower-case letters, digits and _ (a plain PostgreSQL identifier)")
    return name


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def http(method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Service:
    """The memlayer binary, started on the benchmark database."""

    def __init__(self, binary: Path, url: str, env: dict[str, str]):
        self.binary, self.url, self.env = binary, url, env
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Starts it and returns the seconds until /health/ready answered 200."""
        env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "JWT_SECRET": SECRET,
            "PORT": str(PORT),
            "RUST_LOG": "info",
            "AUTH_RATE_LIMIT_PER_MINUTE": "0",
            # The load generator is one client with hundreds of connections.
            "MAX_CONNECTIONS_PER_CLIENT": "0",
            **self.env,
        }
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PORT)) == 0:
                sys.exit(f"port {PORT} is already in use: stop whatever listens there first")
        started = time.perf_counter()
        self.process = subprocess.Popen([str(self.binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while time.perf_counter() - started < 60:
            if self.process.poll() is not None:
                sys.exit(f"the service exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health/ready", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.002)
        sys.exit("the service did not become ready in 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    @property
    def pid(self) -> int:
        assert self.process
        return self.process.pid


# The cost of checking that a token is not revoked, isolated: the chat lookup every chat
# and message request makes, as it was (the chat alone) and as it is (joined to its
# owner's token generation, which the use case compares with the token's claim). The
# check adds no statement and no round trip; this measures what the join adds to the one
# statement, at the same concurrency.
REVOCATION_CHECK = (
    Scenario(
        "chat lookup without the revocation check",
        "GET",
        "",
        None,
        PROLOGUE
        + f'SELECT "chats"."id", "chats"."user_id", "chats"."title", "chats"."created_at" FROM "chats" WHERE "chats"."id" = {HISTORY_CHAT} LIMIT 1;\n',
    ),
    Scenario(
        "chat lookup with the revocation check",
        "GET",
        "",
        None,
        PROLOGUE
        + f'SELECT "chats"."id", "chats"."user_id", "chats"."title", "chats"."created_at", "users"."token_generation" FROM ("chats" INNER JOIN "users" ON ("chats"."user_id" = "users"."id")) WHERE ("chats"."id" = {HISTORY_CHAT}) LIMIT 1;\n',
    ),
)


def revocation_cost(url: str, connections: int, seconds: int, directory: Path, rounds: int) -> list[tuple[Scenario, Result]]:
    """Each lookup `rounds` times, alternating, so drift in the machine's load falls on
    both alike; the median round of each."""
    runs: dict[str, list[Result]] = {scenario.name: [] for scenario in REVOCATION_CHECK}
    for _ in range(rounds):
        for scenario in REVOCATION_CHECK:
            before = snapshot(None)
            runs[scenario.name].append(measured(pgbench(url, scenario.sql, connections, seconds, directory), before, snapshot(None)))
    return [
        (scenario, sorted(runs[scenario.name], key=lambda result: result.throughput)[rounds // 2])
        for scenario in REVOCATION_CHECK
    ]


def token_for(user: int) -> str:
    """An access token for seeded user `user`, signed as the service signs them."""

    def encode(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()

    now = int(time.time())
    unsigned = encode({"alg": "HS256", "typ": "JWT"}) + "." + encode({"sub": USER_ID.format(user), "iat": now, "exp": now + 86400})
    signature = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).digest()
    return unsigned + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def seed(url: str, users: int) -> None:
    """Users 1..users (password "correct horse"), each with a post chat, a history chat
    of HISTORY messages, a short chat of SHORT messages and EXTRA_CHATS more chats."""
    status, _ = http("POST", "/auth/register", {"email": "template@bench.example", "password": "correct horse"})
    assert status == 201, status
    psql(
        url,
        f"""
        INSERT INTO users (id, email, password_hash, created_at)
            SELECT ('{USER_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, 'user' || k || '@bench.example',
                   (SELECT password_hash FROM users WHERE email = 'template@bench.example'), now()
            FROM generate_series(1, {users}) AS k;
        INSERT INTO chats (id, user_id, title, created_at)
            SELECT ('{POST_CHAT_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, ('{USER_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, 'Post here', now()
            FROM generate_series(1, {users}) AS k
            UNION ALL
            SELECT ('{HISTORY_CHAT_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, ('{USER_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, 'History', now()
            FROM generate_series(1, {users}) AS k
            UNION ALL
            SELECT ('{SHORT_CHAT_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, ('{USER_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, 'Short', now()
            FROM generate_series(1, {users}) AS k
            UNION ALL
            SELECT gen_random_uuid(), ('{USER_ID[:24]}' || lpad(k::text, 12, '0'))::uuid, 'Chat ' || j, now() - j * interval '1 minute'
            FROM generate_series(1, {users}) AS k, generate_series(1, {EXTRA_CHATS}) AS j;
        INSERT INTO messages (id, chat_id, user_id, role, content, created_at)
            SELECT gen_random_uuid(), ('{HISTORY_CHAT_ID[:24]}' || lpad(k::text, 12, '0'))::uuid,
                   ('{USER_ID[:24]}' || lpad(k::text, 12, '0'))::uuid,
                   CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,
                   CASE WHEN i % 2 = 0 THEN 'A question about the trip, number ' || i ELSE 'Message received' END,
                   now() - interval '1 hour' + i * interval '1 second'
            FROM generate_series(1, {users}) AS k, generate_series(0, {HISTORY - 1}) AS i;
        INSERT INTO messages (id, chat_id, user_id, role, content, created_at)
            SELECT gen_random_uuid(), ('{SHORT_CHAT_ID[:24]}' || lpad(k::text, 12, '0'))::uuid,
                   ('{USER_ID[:24]}' || lpad(k::text, 12, '0'))::uuid,
                   CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,
                   CASE WHEN i % 2 = 0 THEN 'A question about the trip, number ' || i ELSE 'Message received' END,
                   now() - interval '1 hour' + i * interval '1 second'
            FROM generate_series(1, {users}) AS k, generate_series(0, {SHORT - 1}) AS i;
        {TREE_SQL}
        ANALYZE;
        """,
    )


LUA = """
local items = {items}
local method = "{method}"
local counter = 0
thread_id = 0  -- global: setup() sets it per thread with thread:set (a local would hide it)
local threads = 0

function setup(thread)
    thread:set("thread_id", threads)
    threads = threads + 1
end

function request()
    counter = counter + 1
    local item = items[((counter + thread_id * 7) % #items) + 1]
    return wrk.format(method, item[1], {{["Authorization"] = "Bearer " .. item[2], ["Content-Type"] = "application/json"}}, item[3])
end

{pacing}
-- Non-2xx/3xx answers count as errors (summary.errors.status); no response() hook,
-- which would make wrk read every body and spend the CPUs the service needs.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format('RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}}\\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def lua_script(scenario: Scenario, users: int, directory: Path, pause_ms: int = 0) -> Path:
    """A wrk script sending `scenario`'s request as each user in turn; with `pause_ms`,
    each connection waits that long between requests (a paced, not saturating, load)."""
    items = []
    for user in range(1, users + 1):
        path = scenario.path.format(
            post_chat=POST_CHAT_ID.format(user), history_chat=HISTORY_CHAT_ID.format(user), short_chat=SHORT_CHAT_ID.format(user)
        )
        body = scenario.body or json.dumps({"email": f"user{user}@bench.example", "password": "correct horse"})
        body = body if scenario.method == "POST" else ""
        items.append("{" + ", ".join(json.dumps(value) for value in (path, token_for(user), body)) + "}")
    script = directory / f"{re.sub(r'[^a-z]+', '_', scenario.name)}{'_paced' if pause_ms else ''}.lua"
    pacing = f"function delay()\n    return {pause_ms}\nend\n" if pause_ms else ""
    script.write_text(LUA.format(items="{" + ", ".join(items) + "}", method=scenario.method, pacing=pacing))
    return script


def wrk(script: Path, connections: int, seconds: int) -> Result:
    out = run(
        "wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
        f"http://127.0.0.1:{PORT}",
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    data = json.loads(line[len("RESULT "):])
    return Result(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000, data["errors"])


def pgbench(url: str, sql: str, connections: int, seconds: int, directory: Path) -> Result:
    script = directory / "script.sql"
    script.write_text(sql)
    logs = directory / "pgbench-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    out = run(
        "pgbench", "-n", "-M", "prepared", "-c", str(connections), "-j", str(min(2, connections)), "-T", str(seconds),
        "-f", str(script), "-l", "--log-prefix", str(logs / "tx"), url,
    ).stdout
    latencies = [int(line.split()[2]) for log in logs.iterdir() for line in log.read_text().splitlines()]
    failed = int(re.search(r"number of failed transactions: (\d+)", out).group(1)) if "failed transactions" in out else 0
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Result(len(latencies), float(seconds), quantiles[49] / 1000, quantiles[98] / 1000, failed)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return f"{os.cpu_count()} CPUs ({cpu}), {int(memory) // 1024 // 1024} GiB, Linux {platform.release()}"


def main() -> None:
    global PORT, DATABASE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per scenario; writes no report")
    parser.add_argument("--seconds", type=int, help="length of each load run (default 10, smoke 1)")
    parser.add_argument("--connections", type=int, help="concurrent connections (default 32, smoke 4)")
    parser.add_argument("--profile", choices=["release", "dev"], help="cargo profile (default release; smoke: dev)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md", help="report to write (full runs)")
    parser.add_argument("--port", type=port_number, default=PORT,
                        help=f"port on 127.0.0.1 for the service under test; must be free (default {PORT})")
    parser.add_argument("--database", type=database_name, default=DATABASE,
                        help=f"PostgreSQL database to drop and re-create for the run (default {DATABASE})")
    args = parser.parse_args()
    # Module globals: Service, http() and wrk() (and embedded.py through `import run`) read them.
    PORT, DATABASE = args.port, args.database
    seconds = args.seconds or (1 if args.smoke else 10)
    connections = args.connections or (4 if args.smoke else 32)
    profile = args.profile or ("dev" if args.smoke else "release")
    users = connections
    bcrypt_cost = "4" if args.smoke else "12"
    admin = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    url = database_url(admin, DATABASE)

    for tool in ("cargo", "wrk", "pgbench", "psql"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (Debian: apt-get install wrk postgresql-client)")
    print(f"building ({profile})...", flush=True)
    subprocess.run(["cargo", "build", "--locked", "-q", "--profile", profile, "-p", "memlayer-server"], cwd=ROOT, check=True)
    binary = ROOT / "target" / ("release" if profile == "release" else "debug") / "memlayer"
    pg_version = psql(admin, "SHOW server_version")

    psql(admin, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql(admin, f"CREATE DATABASE {DATABASE}")
    # The login scenarios measure bcrypt's throughput and what a storm takes from chat, so
    # logins queue as long as they must here instead of being refused past the service's
    # queue bound (BCRYPT_QUEUE_LENGTH / BCRYPT_QUEUE_TIMEOUT_MS, 503 beyond).
    env = {"BCRYPT_COST": bcrypt_cost, "BCRYPT_QUEUE_LENGTH": "1000", "BCRYPT_QUEUE_TIMEOUT_MS": "600000"}
    service = Service(binary, url, env)
    fresh_start = service.start()
    service.stop()
    ready = service.start()
    idle_rss = rss_kib(service.pid)
    rows = []
    try:
        seed(url, users)
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            for scenario in SCENARIOS:
                script = lua_script(scenario, users, directory)
                # bcrypt allows a few logins a second: more connections would only queue.
                clients = min(4, connections) if scenario.name.startswith("login") else connections
                wrk(script, clients, 1)  # warm up: connections, caches, prepared statements
                before = snapshot(service.pid)
                served = measured(wrk(script, clients, seconds), before, snapshot(service.pid))
                before = snapshot(None)
                ceiling = measured(pgbench(url, scenario.sql, clients, seconds, directory), before, snapshot(None))
                before = snapshot(None)
                original = measured(pgbench(url, scenario.original, clients, seconds, directory), before, snapshot(None))
                rows.append((scenario, served, ceiling, original))
                print(f"{scenario.name}: {served.throughput:.0f}/s p50 {served.p50_ms:.2f} ms p99 {served.p99_ms:.2f} ms "
                      f"errors {served.errors}; pgbench {ceiling.throughput:.0f}/s, the original's SQL {original.throughput:.0f}/s",
                      flush=True)

            revocation = revocation_cost(url, connections, seconds, directory, 1 if args.smoke else 3)
            for scenario, result in revocation:
                print(f"{scenario.name}: {result.throughput:.0f}/s p50 {result.p50_ms:.3f} ms "
                      f"{result.machine_cpu_us:.0f} µs CPU per lookup", flush=True)

            # Chat at a steady pace (about half of what the service can serve), so its
            # latency shows what the storm takes from it, not a saturated queue.
            chat = lua_script(SCENARIO["post message"], users, directory, pause_ms=4)
            quiet = wrk(chat, max(1, connections // 2), seconds)
            storm = subprocess.Popen(
                ["wrk", "-t1", "-c4", f"-d{seconds + 2}s", "--timeout", "30s", "-s", str(lua_script(SCENARIO["login (bcrypt)"], users, directory)),
                 f"http://127.0.0.1:{PORT}"],
                stdout=subprocess.PIPE, text=True,
            )
            time.sleep(1)
            stormy = wrk(chat, max(1, connections // 2), seconds)
            storm_out = storm.communicate()[0]
            logins = json.loads(next(line for line in storm_out.splitlines() if line.startswith("RESULT "))[7:])
        loaded_rss = rss_kib(service.pid, "VmHWM")
    finally:
        service.stop()

    streamed = run_streaming(binary, url, users, args.smoke)
    sqlite = embedded.run(binary, connections, seconds, args.smoke, env)
    problems = [name for name, result in [(s.name, r) for s, r, _, _ in rows] + [("chat under login storm", stormy)] if result.requests == 0 or result.errors]
    if streamed.get("model", {}).get("errors"):
        problems.append("streamed replies from the model")
    if streamed["concurrent"]["completed"] != streamed["concurrent"]["streams"]:
        problems.append(f"concurrent streams: {streamed['concurrent']['failures']}")
    problems += [scenario.name for scenario, result in revocation if result.requests == 0 or result.errors]
    report = render(rows, quiet, stormy, logins, seconds, connections, fresh_start, ready, idle_rss, loaded_rss, pg_version, profile, revocation)
    report += render_streaming(streamed)
    report += embedded.render(sqlite, rows)
    report = embedded.with_targets(report, embedded.targets(sqlite, loaded_rss))
    problems += embedded.problems(sqlite)
    print(report)
    if problems:
        sys.exit(f"scenarios with errors or no requests: {problems}")
    if not args.smoke:
        # The sections other scripts write (bench/tree.py, bench/generations.py,
        # bench/search.py: minutes of seeding each) are kept as they were.
        args.output.write_text(report + kept_sections(args.output) + search.kept_section(args.output))
        print(f"wrote {args.output}")


def write_section(path: Path, heading: str, report: str) -> None:
    """Replaces the section under `heading` (up to the next '## ' heading, or the marker
    comment of another script's section) or appends it: for the scripts that write one
    section of the report each (bench/tree.py, bench/generations.py)."""
    text = path.read_text()
    bounds = section_bounds(text, heading)
    if bounds:
        start, end = bounds
        text = text[:start] + report.rstrip() + "\n" + text[end:]
    else:
        text = text.rstrip() + "\n\n" + report.rstrip() + "\n"
    path.write_text(text)
    print(f"wrote {heading!r} into {path}")


def section_bounds(text: str, heading: str) -> tuple[int, int] | None:
    """Where the section under `heading` starts and ends (at the next '## ' heading or
    marker comment, or the end), if the text has it."""
    start = text.find(heading)
    if start < 0:
        return None
    ends = [text.find(mark, start + len(heading)) for mark in ("\n## ", "\n<!-- ")]
    return start, min((end for end in ends if end >= 0), default=len(text))


# The headings of the sections bench/tree.py, bench/generations.py and bench/limits.py write.
OTHER_SECTIONS = (
    "## Conversation trees (issue 17)",
    "## Replies that outlive the connection (issue 18)",
    "## Posting with limits on (issue 19)",
)


def kept_sections(output: Path) -> str:
    """The sections of an existing report that other scripts wrote (each up to the next
    heading or marker comment), for the full run, which rewrites the rest."""
    text = output.read_text() if output.exists() else ""
    kept = ""
    for heading in OTHER_SECTIONS:
        if bounds := section_bounds(text, heading):
            kept += "\n" + text[bounds[0]:bounds[1]].rstrip() + "\n"
    return kept


def run_streaming(binary: Path, url: str, users: int, smoke: bool) -> dict:
    """Streamed replies: against the real model at BENCH_MODEL (if set), then many at once
    against a fast scripted upstream."""
    streaming.raise_file_limit()
    results: dict = {}
    model = os.environ.get("BENCH_MODEL")
    if model:
        service = Service(binary, url, {"ASSISTANT_URL": f"http://{model}/v1", "ASSISTANT_MODEL": "bench",
                                        "ASSISTANT_CONTEXT_MESSAGES": "0"})
        service.start()
        try:
            samples = 3 if smoke else 20
            token = token_for(1)
            chats = [http("POST", "/chats", {"title": f"stream {i}"}, token)[1]["id"] for i in range(samples)]
            results["model"] = streaming.compare_with_model(model, PORT, token, chats, samples)
        finally:
            service.stop()
        print(f"streaming from the model: {results['model']}", flush=True)
    else:
        print("BENCH_MODEL not set: the real-model streaming comparison is skipped", flush=True)
    upstream = streaming.FakeUpstream()
    service = Service(binary, url, {"ASSISTANT_URL": f"http://127.0.0.1:{upstream.port}/v1", "ASSISTANT_MODEL": "fake",
                                    "MAX_GENERATIONS": "1000", "USER_MAX_GENERATIONS": "1000"})
    service.start()
    try:
        count = 50 if smoke else 500
        # One chat per stream: a chat takes one reply at a time.
        owners = [token_for(u % users + 1) for u in range(count)]
        targets = [(token, http("POST", "/chats", {"title": f"concurrent {u}"}, token)[1]["id"])
                   for u, token in enumerate(owners)]
        results["concurrent"] = streaming.concurrent_streams(PORT, targets)
        results["concurrent"]["peak_rss_kib"] = rss_kib(service.pid, "VmHWM")
        results["stop_ms"] = streaming.stop_latency(PORT, token_for(1), POST_CHAT_ID.format(1), upstream,
                                                    3 if smoke else 20)
    finally:
        service.stop()
        upstream.stop()
    print(f"concurrent streams: {results['concurrent']}", flush=True)
    return results


def render_streaming(results: dict) -> str:
    lines = ["", "## Streamed replies", ""]
    model = results.get("model")
    if model:
        overhead = model["through_ttft_ms"] - model["direct_ttft_ms"]
        loss = 1 - model["through_rate"] / model["direct_rate"] if model["direct_rate"] else 0.0
        lines += [
            f"llama-server (SmolLM2-135M-Instruct, `scripts/model-server`) on the same machine; {model['samples']} "
            "requests with the same prompt straight to its `/v1/chat/completions` and through MemLayer "
            "(`Accept: text/event-stream`, a fresh chat each, so both send the model the same messages), "
            f"interleaved one by one; medians. About {model['pieces']:.0f} pieces per answer; pieces/s is the pace over "
            f"the second half of each answer. Through MemLayer the stored question reached the client after "
            f"{model['question_ms']:.1f} ms (its commit: the reply's first piece is never sent before it).",
            "",
            "| | time to first piece ms | pieces/s |",
            "|---|---:|---:|",
            f"| straight from llama-server | {model['direct_ttft_ms']:.1f} | {model['direct_rate']:.1f} |",
            f"| through MemLayer | {model['through_ttft_ms']:.1f} | {model['through_rate']:.1f} |",
            f"| MemLayer adds / loses | {overhead:+.1f} ms | {loss * 100:+.1f} % |",
            "",
        ]
    else:
        lines += ["(No model server given: set BENCH_MODEL to compare with a real model.)", ""]
    concurrent = results["concurrent"]
    lines += [
        f"{concurrent['streams']} streams at once against a scripted upstream (20 pieces, 20 ms apart): "
        f"{concurrent['completed']} ended with `done` in {concurrent['seconds']:.1f} s; the service's peak resident "
        f"memory {concurrent['peak_rss_kib'] / 1024:.1f} MiB.",
        "",
        f"A stop request (`POST …/stop`, on its own connection) after the first piece, while the model is silent: "
        f"MemLayer closes its connection to the model {statistics.median(results['stop_ms']):.0f} ms later (median of "
        f"{len(results['stop_ms'])}; slowest {max(results['stop_ms']):.0f} ms), and stores the piece `stopped`. "
        "(Until replies belonged to the service, this measured a client that closed its stream; a client that "
        "leaves no longer stops its reply.)",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    if model:
        lines += [
            f"| MemLayer adds ≤ 5 ms to the time to first piece | {overhead:+.1f} ms | {'yes' if overhead <= 5 else '**no**'} |",
            f"| MemLayer loses ≤ 2 % of the piece rate | {loss * 100:+.1f} % | {'yes' if loss <= 0.02 else '**no**'} |",
        ]
    lines += [
        f"| {concurrent['streams']} concurrent streams, no error | {concurrent['completed']} / {concurrent['streams']} | "
        f"{'yes' if concurrent['completed'] == concurrent['streams'] else '**no**'} |",
        f"| stop → model connection closed within 1 s | {max(results['stop_ms']):.0f} ms (slowest) | "
        f"{'yes' if max(results['stop_ms']) < 1000 else '**no**'} |",
        f"| peak memory under them < 64 MiB | {concurrent['peak_rss_kib'] / 1024:.1f} MiB | "
        f"{'yes' if concurrent['peak_rss_kib'] < 64 * 1024 else '**no**'} |",
        "",
    ]
    return "\n".join(lines)


def ratio(served: Result, ceiling: Result) -> float:
    return served.throughput / ceiling.throughput if ceiling.throughput else 0.0


def render(rows, quiet, stormy, logins, seconds, connections, fresh_start, ready, idle_rss, loaded_rss, pg_version, profile, revocation) -> str:
    lines = [
        "# Benchmarks",
        "",
        "This page is the output of one run of",
        "",
        "```sh",
        "python3 bench/run.py          # needs wrk (apt-get install wrk), pgbench and psql, and PostgreSQL on 127.0.0.1:5432",
        "```",
        "",
        "which builds the service in release mode, starts it on a fresh PostgreSQL database, seeds it and drives it "
        "with wrk from a separate process; `--smoke` runs the same in seconds (CI does, asserting only that every "
        "scenario produces numbers without errors).",
        "",
        f"- Run on {datetime.date.today().isoformat()}: {machine()}; PostgreSQL {pg_version} on the same machine, "
        "reached over loopback TCP without TLS by the service and pgbench alike.",
        f"- `{profile}` build with default settings (pool of 10, bcrypt cost {12 if profile == 'release' else 4}); "
        f"wrk and pgbench at {connections} connections ({min(4, connections)} for login), {seconds} s per run, after a 1 s warm-up.",
        f"- Data: {connections} users, each with 20 chats, two of which hold {SHORT} and {HISTORY} messages; every request "
        "is a different user's, in turn.",
        "- The service, PostgreSQL and the load generator share the CPUs, as pgbench and PostgreSQL do in the ceiling run.",
        "",
        "## Throughput and latency, against two ceilings",
        "",
        "Two ceilings, each pgbench at the same concurrency in the same run (statements prepared, as Diesel prepares "
        "them): **own**, the SQL statements the service issues for the scenario; **original**, the statements the "
        "original FastAPI backend issued for the same request, one transaction per request (the token's user by id, "
        "the chat by id on chat routes, then the work: the two inserts of a post, the ordered select of a list).",
        "",
        "| scenario | service req/s | p50 ms | p99 ms | own SQL tx/s | own p99 ms | service / own | original's SQL tx/s | original p99 ms | service / original |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, served, ceiling, original in rows:
        note = " (bcrypt-bound: not comparable)" if scenario.name.startswith("login") else ""
        lines.append(
            f"| {scenario.name} | {served.throughput:,.0f} | {served.p50_ms:.2f} | {served.p99_ms:.2f} | "
            f"{ceiling.throughput:,.0f} | {ceiling.p99_ms:.2f} | {ratio(served, ceiling):.2f}{note} | "
            f"{original.throughput:,.0f} | {original.p99_ms:.2f} | {ratio(served, original):.2f}{note} |"
        )
    lines += [
        "",
        "## Where the CPU goes",
        "",
        "The machine is CPU-bound in every scenario, so throughput is the CPUs divided by the CPU time each request "
        "costs the whole machine. Measured from `/proc` around the same runs.",
        "",
        "| scenario | machine CPU µs per request (service run) | of which the service | service context switches per request | machine CPU µs per transaction (own SQL) | machine CPU µs per transaction (original's SQL) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scenario, served, ceiling, original in rows:
        lines.append(
            f"| {scenario.name} | {served.machine_cpu_us:.0f} | {served.service_cpu_us:.0f} | {served.switches:.1f} | "
            f"{ceiling.machine_cpu_us:.0f} | {original.machine_cpu_us:.0f} |"
        )
    chat_connections = max(1, connections // 2)
    lines += [
        "",
        "## Chat traffic under a login storm",
        "",
        f"Post message at {chat_connections} connections, each pausing 4 ms between requests (a steady load, about half "
        f"of what the service serves flat out), alone and then while 4 connections log in without pause "
        f"(bcrypt at cost {12 if profile == 'release' else 4}: {logins['requests'] / (logins['duration_us'] / 1e6):.1f} logins/s during the storm).",
        "",
        "| | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| alone | {quiet.throughput:,.0f} | {quiet.p50_ms:.2f} | {quiet.p99_ms:.2f} |",
        f"| with the login storm | {stormy.throughput:,.0f} | {stormy.p50_ms:.2f} | {stormy.p99_ms:.2f} |",
        f"| ratio (storm / alone) | | | {stormy.p99_ms / quiet.p99_ms if quiet.p99_ms else 0:.2f} |",
        "",
        "## What the revocation check costs",
        "",
        "A token carries its account's token generation; a request is served only while the account's generation is "
        "still the token's. The check rides on the query each request makes anyway (the chat lookup joins its owner's "
        "generation; the chat list filters on it): no extra statement, no extra round trip. Isolated with pgbench at "
        f"{connections} connections, median of {3 if profile == 'release' else 1} alternating rounds:",
        "",
        "| statement | tx/s | p50 ms | p99 ms | machine CPU µs per statement |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {scenario.name} | {result.throughput:,.0f} | {result.p50_ms:.3f} | {result.p99_ms:.3f} | {result.machine_cpu_us:.0f} |"
            for scenario, result in revocation
        ],
        "",
        "## Memory and start-up",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| start-up to ready, empty database (migrations applied) | {fresh_start * 1000:.0f} ms |",
        f"| start-up to ready, migrated database | {ready * 1000:.0f} ms |",
        f"| resident memory, idle after start-up | {idle_rss / 1024:.1f} MiB |",
        f"| resident memory, peak under load | {loaded_rss / 1024:.1f} MiB |",
        "",
        "## Against the targets",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    own = {scenario.name: ratio(served, ceiling) for scenario, served, ceiling, _ in rows}
    versus_original = {scenario.name: ratio(served, original) for scenario, served, _, original in rows}
    storm_ratio = stormy.p99_ms / quiet.p99_ms if quiet.p99_ms else float("inf")
    chat_scenarios = [scenario.name for scenario, *_ in rows if not scenario.name.startswith("login")]
    targets = [
        (f"{name} ≥ {goal} × the original's SQL", f"{versus_original[name]:.2f}", versus_original[name] >= goal)
        for name in chat_scenarios
        for goal in [1.5 if name.startswith("list") else 1.0]
    ]
    targets += [(f"{name} ≥ 0.7 × its own SQL", f"{own[name]:.2f}", own[name] >= 0.7) for name in chat_scenarios]
    targets += [
        ("chat p99 under the login storm ≤ 2 × alone", f"{storm_ratio:.2f} ×", storm_ratio <= 2),
        ("idle memory < 30 MB", f"{idle_rss / 1024:.1f} MiB", idle_rss / 1024 < 30),
        ("ready < 1 s on a migrated database", f"{ready * 1000:.0f} ms", ready < 1),
    ]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in targets]
    lines += ["", ANALYSIS.read_text().strip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    # embedded.py reaches this script's helpers and settings with `import run`: make that
    # this very module, not a second copy with the default --port.
    sys.modules.setdefault("run", sys.modules[__name__])
    main()
