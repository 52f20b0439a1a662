#!/usr/bin/env python3
"""Search at scale: GET /search over ~1,000,000 messages of 1,000 users, on PostgreSQL and SQLite.

    python3 bench/search.py                      # full run (release build); writes its section of docs/benchmarks.md
    python3 bench/search.py --smoke              # seconds: small data, checks every step runs
    python3 bench/search.py --backend sqlite     # one backend only

For each backend, on a fresh database:
1. seeds one heavy user (100,000 messages in 1,000 chats) with each database's bulk
   loading (PostgreSQL: COPY, the GIN index built after; SQLite: one transaction of
   prepared inserts, the FTS5 table filled by the migration's triggers), sentences
   generated from a word list (a few hundred English words and a long tail of made-up
   ones, drawn with Zipf frequencies);
2. measures search latency (p50/p99) at 8 connections for a word with few hits (<= 10)
   and one with many (>= 1,000) in the heavy user's messages, newest first and by
   relevance;
3. adds 999 other users with 900 messages each (899,100), and measures the same again:
   a search's cost should follow the caller's data (p50 with the others <= 1.5x alone);
4. records the size of the search index next to the messages table, and the plans;
5. measures posting a message (POST /chats/{id}/messages, 8 connections) with the index,
   then drops the index (PostgreSQL: the trigger and the column; SQLite: the insert trigger)
   and measures it again: with >= 0.85x without.

The load generator is 8 Python processes, each with one keep-alive connection (no wrk
needed); its own cost per request is included in the latencies.

Needs: cargo (or --binary), psql, a PostgreSQL server at BENCH_POSTGRES_URL (default
postgres://postgres@127.0.0.1:5432/postgres) on which it may drop and create the database
named by --database (default memlayer_search_bench). The service listens on 127.0.0.1 at
--port (default 8300), which must be free.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import datetime
import hashlib
import hmac
import http.client
import itertools
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "search-benchmark-secret-of-at-least-32-bytes"
BEGIN = "<!-- search benchmark: written by bench/search.py -->"
END = "<!-- end of search benchmark -->"

COMMON = """the be to of and a in that have I it for not on with he as you do at this but his by from they we
say her she or an will my one all would there their what so up out if about who get which go me when make can like time
no just him know take people into year your good some could them see other than then now look only come its over think
also back after use two how our work first well way even new want because any these give day most us trip train hotel
flight ticket museum beach dinner lunch breakfast coffee tea wine bread cheese market street city river bridge castle
tower garden park station airport bus tram taxi car road map guide book price money euro card cash bank phone battery
charger photo camera picture window seat room bed shower key door floor lift stairs morning evening night today tomorrow
yesterday week month weekend holiday summer winter spring autumn rain sun wind snow cold warm hot weather forecast
jacket shoes umbrella bag passport visa border language word sentence question answer help please thanks sorry
recipe pasta sauce tomato garlic onion pepper salt sugar butter oil oven pan pot knife fork spoon plate glass cup
code bug test build deploy server client database query index table column row file folder branch commit merge review
meeting email calendar project deadline budget report slide team manager client contract invoice payment plan goal
memory chat message reply model prompt context answer search find organise pin archive remember note list idea""".split()


def tail_words(count: int, rng: random.Random) -> list[str]:
    """Made-up words (a long tail of rare ones, as real text has): syllables joined."""
    onsets = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "ch", "st", "tr", "pl"]
    vowels = ["a", "e", "i", "o", "u", "ou", "ai", "ée", "ö", "ia"]
    seen: set[str] = set(COMMON)
    words = []
    while len(words) < count:
        word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Corpus:
    """Sentences from a vocabulary drawn with Zipf frequencies (rank r has weight 1/r)."""

    def __init__(self, seed: int = 20):
        self.rng = random.Random(seed)
        self.vocabulary = COMMON + tail_words(40_000, self.rng)
        self.cumulative = list(itertools.accumulate(1.0 / rank for rank in range(1, len(self.vocabulary) + 1)))
        self.total = self.cumulative[-1]

    def words(self, n: int) -> list[str]:
        return self.rng.choices(self.vocabulary, cum_weights=self.cumulative, k=n)

    def message(self) -> str:
        sentences = []
        for _ in range(self.rng.randint(1, 3)):
            words = self.words(self.rng.randint(5, 18))
            sentences.append(words[0].capitalize() + " " + " ".join(words[1:]) + self.rng.choice([".", ".", "?", "!"]))
        return " ".join(sentences)


def token_for(user: str) -> str:
    def encode(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()

    now = int(time.time())
    unsigned = encode({"alg": "HS256", "typ": "JWT"}) + "." + encode({"sub": user, "iat": now, "exp": now + 86400 * 7})
    signature = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).digest()
    return unsigned + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def stamp(at: datetime.datetime) -> str:
    return at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the data -------------------------------------------------------------------------


class Plan:
    """Who has what: the heavy user, and the others."""

    def __init__(self, smoke: bool):
        self.heavy_chats, self.heavy_per_chat = (20, 50) if smoke else (1_000, 100)
        self.others, self.other_chats, self.other_per_chat = (9, 2, 50) if smoke else (999, 10, 90)
        self.start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

    @property
    def heavy_messages(self) -> int:
        return self.heavy_chats * self.heavy_per_chat

    @property
    def other_messages(self) -> int:
        return self.others * self.other_chats * self.other_per_chat


def user_rows(ids: list[str], password_hash: str, plan: Plan) -> list[tuple]:
    return [(user, f"{user}@search.example", password_hash, stamp(plan.start)) for user in ids]


def chat_rows(user: str, chats: int, corpus: Corpus, plan: Plan) -> list[tuple]:
    rows = []
    for j in range(chats):
        at = plan.start + datetime.timedelta(minutes=j)
        rows.append((str(uuid.uuid4()), user, "Chat about " + " ".join(corpus.words(2)), stamp(at)))
    return rows


def message_rows(user: str, chats: list[tuple], per_chat: int, corpus: Corpus, plan: Plan):
    """Each chat's messages, alternating user and assistant, a minute apart per chat."""
    for c, (chat, _, _, _) in enumerate(chats):
        base = plan.start + datetime.timedelta(seconds=c)
        for i in range(per_chat):
            at = base + datetime.timedelta(minutes=i, microseconds=c)
            yield (str(uuid.uuid4()), chat, user, "user" if i % 2 == 0 else "assistant", corpus.message(), stamp(at))


# --- the service and the load ---------------------------------------------------------


class Service:
    def __init__(self, binary: Path, url: str, port: int):
        self.binary, self.url, self.port = binary, url, port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "JWT_SECRET": SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "RUST_LOG": "warn",
            "AUTH_RATE_LIMIT_PER_MINUTE": "0",
            "MAX_CONNECTIONS_PER_CLIENT": "0",
            "BCRYPT_COST": "4",
        }
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                sys.exit(f"port {self.port} is already in use")
        self.process = subprocess.Popen([str(self.binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600  # a migration over a big table may take a while
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"the service exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)
        sys.exit("the service did not become ready")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def call(port: int, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, object, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    text = response.read()
    connection.close()
    return response.status, json.loads(text) if text else None, dict(response.getheaders())


def _worker(args: tuple) -> tuple[list[float], int]:
    port, requests, seconds, offset = args
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds
    for n in itertools.count(offset):
        if time.perf_counter() >= deadline:
            break
        method, path, token, body = requests[n % len(requests)]
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        if response.status >= 300:
            errors += 1
    connection.close()
    return latencies, errors


def load(port: int, requests: list[tuple], connections: int, seconds: float) -> dict:
    """`connections` processes send `requests` in turn for `seconds`: throughput, p50, p99 (ms)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(connections) as pool:
        pool.map(_worker, [(port, requests, min(1.0, seconds), k) for k in range(connections)])  # warm up
        started = time.perf_counter()
        results = pool.map(_worker, [(port, requests, seconds, k * 7) for k in range(connections)])
        elapsed = time.perf_counter() - started
    latencies = sorted(itertools.chain.from_iterable(r[0] for r in results))
    errors = sum(r[1] for r in results)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0] if latencies else 0] * 99
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": errors,
    }


# --- the two backends ------------------------------------------------------------------


def psql(url: str, sql: str, stdin: str | None = None) -> str:
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql], input=stdin,
                          capture_output=True, text=True, check=True).stdout.strip()


class Postgres:
    name = "PostgreSQL"

    def __init__(self, admin: str, database: str):
        self.admin = admin
        self.url = admin.rsplit("/", 1)[0] + "/" + database
        self.database = database

    def fresh(self) -> None:
        psql(self.admin, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        psql(self.admin, f"CREATE DATABASE {self.database}")

    def seed(self, users: list[tuple], chats: list[tuple], messages, service: Service) -> float:
        """COPY, with the search index dropped during the load and built after."""
        started = time.perf_counter()
        psql(self.url, "DROP INDEX IF EXISTS messages_search_tsv_idx")
        for table, columns, rows in (("users", "id, email, password_hash, created_at", users),
                                     ("chats", "id, user_id, title, created_at", chats),
                                     ("messages", "id, chat_id, user_id, role, content, created_at", messages)):
            process = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-c",
                                        f"COPY {table} ({columns}) FROM STDIN"], stdin=subprocess.PIPE, text=True)
            assert process.stdin
            for row in rows:
                process.stdin.write("\t".join(row) + "\n")
            process.stdin.close()
            assert process.wait() == 0, table
        psql(self.url, "CREATE INDEX messages_search_tsv_idx ON messages USING gin (search_tsv)")
        psql(self.url, "VACUUM ANALYZE")
        return time.perf_counter() - started

    def sizes(self) -> dict:
        row = psql(self.url, """SELECT pg_relation_size('messages'), pg_total_relation_size('messages'),
            pg_relation_size('messages_search_tsv_idx'), (SELECT sum(pg_column_size(search_tsv)) FROM messages),
            (SELECT sum(pg_column_size(content)) FROM messages), pg_relation_size('chats_search_tsv_idx')""")
        heap, total, gin, tsv, content, chats_gin = (int(v or 0) for v in row.split("|"))
        return {"messages table (heap, with the tsvector column)": heap, "messages total (heap, TOAST, all indexes)": total,
                "GIN index on messages.search_tsv": gin, "tsvector column values (inside the heap and TOAST)": tsv,
                "message text values": content, "GIN index on chats.search_tsv": chats_gin}

    def explain(self, user: str, word: str) -> str:
        """The plan of the messages half of the service's search query (the titles half
        reads a few rows of the user's chats)."""
        query = f"memlayer_search_query('{user}', $w${word}$w$)"
        plans = []
        for label, rank, order in (("newest first", "0::real", ""), ("relevance", f"ts_rank(m.search_tsv, {query})", "rank DESC, ")):
            sql = f"""EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF)
            SELECT m.chat_id, c.title, m.id, m.role, m.created_at, m.content, {rank} AS rank
            FROM messages m JOIN chats c ON c.id = m.chat_id AND c.user_id = '{user}'
            WHERE m.search_tsv @@ {query}
            ORDER BY {order}m.created_at DESC, m.id DESC LIMIT 51"""
            plans.append(f"-- {label}, q={word}\n" + psql(self.url, sql))
        return "\n\n".join(plans)

    def drop_index(self) -> None:
        # The trigger that computes the vector, then the column (and its GIN index).
        psql(self.url, "DROP TRIGGER messages_search_tsv ON messages")
        psql(self.url, "ALTER TABLE messages DROP COLUMN search_tsv")


class Sqlite:
    name = "SQLite"

    def __init__(self, directory: Path):
        self.path = directory / "memlayer.db"
        self.url = f"sqlite://{self.path}"

    def fresh(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def seed(self, users: list[tuple], chats: list[tuple], messages, service: Service) -> float:
        """One transaction of prepared inserts (the triggers index each message), service stopped."""
        service.stop()
        started = time.perf_counter()
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("BEGIN")
        db.executemany("INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)", users)
        db.executemany("INSERT INTO chats (id, user_id, title, created_at) VALUES (?, ?, ?, ?)", chats)
        db.executemany("INSERT INTO messages (id, chat_id, user_id, role, content, created_at) VALUES (?, ?, ?, ?, ?, ?)", messages)
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.close()
        elapsed = time.perf_counter() - started
        service.start()
        return elapsed

    def sizes(self) -> dict:
        db = sqlite3.connect(self.path)
        rows = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        db.close()
        fts = sum(size for name, size in rows.items() if name.startswith("search_fts"))
        docs = sum(size for name, size in rows.items() if name.startswith("search_docs") or name.startswith("sqlite_autoindex_search_docs"))
        messages = sum(size for name, size in rows.items() if name.startswith("messages") or name.startswith("sqlite_autoindex_messages"))
        return {"messages table with its indexes": messages, "FTS5 index (search_fts and its shadow tables)": fts,
                "search_docs (stable keys, chat, time)": docs}

    def explain(self, user: str, word: str) -> str:
        db = sqlite3.connect(self.path)
        match = f'owner : "{user.replace("-", "")}" AND (body : "{word}"*)'
        plans = []
        for label, score, order in (("newest first", "0.0", "d.created_at DESC, d.item_id DESC"),
                                    ("relevance", "bm25(search_fts, 1.0, 0.0)", "score, d.created_at DESC, d.item_id DESC")):
            sql = f"""EXPLAIN QUERY PLAN
            SELECT c.id, c.title, m.id, m.role, page.created_at, COALESCE(m.content, c.title)
            FROM (SELECT d.item_id, d.chat_id, d.is_title, d.created_at, {score} AS score
                  FROM search_fts JOIN search_docs d ON d.doc = search_fts.rowid
                  WHERE search_fts MATCH ? ORDER BY {order} LIMIT 51) AS page
            JOIN chats c ON c.id = page.chat_id
            LEFT JOIN messages m ON NOT page.is_title AND m.id = page.item_id
            WHERE c.user_id = ? ORDER BY page.created_at DESC"""
            lines = [f"{'  ' * 0}{row[3]}" for row in db.execute(sql, (match, user))]
            plans.append(f"-- {label}, q={word}\n" + "\n".join(lines))
        db.close()
        return "\n\n".join(plans)

    def drop_index(self) -> None:
        db = sqlite3.connect(self.path)
        db.execute("DROP TRIGGER messages_search_insert")
        db.commit()
        db.close()


# --- the run ---------------------------------------------------------------------------


def pick_queries(heavy_texts: list[str], smoke: bool) -> tuple[str, str]:
    """A word with few hits (<= 10 messages start a word with it) and one with many
    (>= 1,000; smoke: >= 20) in the heavy user's messages."""
    counts: dict[str, int] = {}
    for text in heavy_texts:
        for word in set(re.findall(r"\w+", text.lower())):
            counts[word] = counts.get(word, 0) + 1
    vocabulary = sorted(counts)

    def prefix_hits(prefix: str) -> int:
        start = bisect.bisect_left(vocabulary, prefix)
        total = 0
        # Messages holding any word with this prefix: bounded above by the sum.
        for word in vocabulary[start:]:
            if not word.startswith(prefix):
                break
            total += counts[word]
        return total

    few = next(w for w in vocabulary if len(w) >= 8 and 3 <= prefix_hits(w) <= 8 and w.isalpha())
    target = 20 if smoke else 1_000
    many = min((w for w in COMMON if w.isalpha() and len(w) >= 4 and prefix_hits(w) >= target * 2), key=prefix_hits)
    return few, many


def search_requests(user: str, token: str, word: str, sort: str) -> list[tuple]:
    query = urllib.parse.urlencode({"q": word, "limit": 50, **({"sort": sort} if sort == "relevance" else {})})
    return [("GET", f"/search?{query}", token, None)]


def run_backend(backend, binary: Path, port: int, smoke: bool, seconds: float, connections: int) -> dict:
    plan = Plan(smoke)
    corpus = Corpus()
    backend.fresh()
    service = Service(binary, backend.url, port)
    service.start()
    status, _, _ = call(port, "POST", "/auth/register", body={"email": "template@search.example", "password": "correct horse"})
    assert status == 201, status
    if isinstance(backend, Postgres):
        password_hash = psql(backend.url, "SELECT password_hash FROM users LIMIT 1")
    else:
        db = sqlite3.connect(backend.path)
        (password_hash,) = db.execute("SELECT password_hash FROM users LIMIT 1").fetchone()
        db.close()
    result: dict = {"backend": backend.name, "plan": {"heavy": plan.heavy_messages, "others": plan.other_messages, "other_users": plan.others}}
    try:
        heavy = str(uuid.uuid4())
        heavy_chats = chat_rows(heavy, plan.heavy_chats, corpus, plan)
        heavy_messages = list(message_rows(heavy, heavy_chats, plan.heavy_per_chat, corpus, plan))
        result["load_heavy_s"] = backend.seed(user_rows([heavy], password_hash, plan), heavy_chats, heavy_messages, service)
        few, many = pick_queries([row[4] for row in heavy_messages], smoke)
        token = token_for(heavy)
        hits = {}
        for word in (few, many):
            status, body, _ = call(port, "GET", "/search?" + urllib.parse.urlencode({"q": word, "limit": 1000}), token)
            assert status == 200, (status, body)
            hits[word] = len(body)
        result["queries"] = {"few": few, "many": many, "hits": hits}
        print(f"{backend.name}: heavy user seeded ({plan.heavy_messages} messages, {result['load_heavy_s']:.1f} s); "
              f"few={few} ({hits[few]} hits), many={many} ({hits[many]}+ hits)", flush=True)

        def measure(label: str) -> dict:
            out = {}
            for kind, word in (("few", few), ("many", many)):
                for sort in ("newest", "relevance"):
                    numbers = load(port, search_requests(heavy, token, word, sort), connections, seconds)
                    out[f"{kind} {sort}"] = numbers
                    print(f"  {label} {kind}-hit {sort}: p50 {numbers['p50_ms']:.2f} ms p99 {numbers['p99_ms']:.2f} ms "
                          f"{numbers['per_second']:.0f}/s errors {numbers['errors']}", flush=True)
            return out

        result["alone"] = measure("alone")
        others = [str(uuid.uuid4()) for _ in range(plan.others)]
        other_chats = [row for user in others for row in chat_rows(user, plan.other_chats, corpus, plan)]

        def other_messages():
            for start in range(0, len(other_chats), plan.other_chats):
                chats = other_chats[start:start + plan.other_chats]
                yield from message_rows(chats[0][1], chats, plan.other_per_chat, corpus, plan)

        result["load_others_s"] = backend.seed(user_rows(others, password_hash, plan), other_chats, other_messages(), service)
        print(f"{backend.name}: {plan.others} other users seeded ({plan.other_messages} messages, {result['load_others_s']:.1f} s)", flush=True)
        result["with_others"] = measure("with others")
        result["sizes"] = backend.sizes()
        result["plans"] = backend.explain(heavy, few) + "\n\n" + backend.explain(heavy, many)

        # Posting: each of 8 users (the heavy one and others) posts to one of their chats.
        posters = [(heavy, heavy_chats[0][0])] + [(row[1], row[0]) for row in other_chats[:: plan.other_chats][: connections * 4]]
        posts = [("POST", f"/chats/{chat}/messages", token_for(user), json.dumps({"content": corpus.message()})) for user, chat in posters]
        result["post_with"] = load(port, posts, connections, seconds)
        service.stop()
        backend.drop_index()
        service.start()
        result["post_without"] = load(port, posts, connections, seconds)
        print(f"  posting: {result['post_with']['per_second']:.0f}/s with the index, "
              f"{result['post_without']['per_second']:.0f}/s without", flush=True)
    finally:
        service.stop()
    return result


def mib(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MiB"


def render(results: list[dict], seconds: float, connections: int, profile: str) -> str:
    lines = [BEGIN, "## Search at scale", "",
             f"`python3 bench/search.py` ({profile} build, {connections} connections, {seconds:g} s per run, "
             f"8 Python load processes with keep-alive connections, on the same {os.cpu_count()}-CPU machine as the service "
             "and the database). One heavy user with 100,000 messages in 1,000 chats, then 999 other users with 900 "
             "messages each (899,100): about 1,000,000 messages. Sentences are drawn from a vocabulary of a few hundred "
             "English words and 40,000 made-up ones with Zipf frequencies. The few-hit word has at most 10 hits in the "
             "heavy user's messages, the many-hit word at least 1,000 (it is a prefix match too). Latencies in ms.", ""]
    for result in results:
        q = result["queries"]
        lines += [f"### {result['backend']}", "",
                  f"Loading: heavy user {result['load_heavy_s']:.0f} s, the others {result['load_others_s']:.0f} s "
                  f"({'COPY, GIN index built after' if result['backend'] == 'PostgreSQL' else 'one transaction of prepared inserts, indexed by the triggers'}). "
                  f"Few-hit query `{q['few']}` ({q['hits'][q['few']]} hits), many-hit query `{q['many']}` "
                  f"({q['hits'][q['many']]}{'+' if q['hits'][q['many']] >= 1000 else ''} hits; a page is 50).", "",
                  "| query | order | p50 alone | p99 alone | p50 with 900k others | p99 with others | ratio of p50s (target ≤ 1.5) |",
                  "|---|---|---|---|---|---|---|"]
        for key in ("few newest", "few relevance", "many newest", "many relevance"):
            alone, loaded = result["alone"][key], result["with_others"][key]
            kind, order = key.split()
            lines.append(f"| {kind} hits | {order} | {alone['p50_ms']:.2f} | {alone['p99_ms']:.2f} | {loaded['p50_ms']:.2f} | "
                         f"{loaded['p99_ms']:.2f} | {loaded['p50_ms'] / alone['p50_ms']:.2f} |")
        with_index, without = result["post_with"], result["post_without"]
        lines += ["", f"Posting a message: {with_index['per_second']:.0f}/s with the search index, {without['per_second']:.0f}/s "
                  f"without it (same run): **{with_index['per_second'] / without['per_second']:.2f}×** (target ≥ 0.85); "
                  f"p50 {with_index['p50_ms']:.2f} / {without['p50_ms']:.2f} ms.", "",
                  "| storage | size |", "|---|---|"]
        lines += [f"| {name} | {mib(size)} |" for name, size in result["sizes"].items()]
        lines += ["", "<details><summary>Query plans (heavy user)</summary>", "", "```", result["plans"], "```", "", "</details>", ""]
    analysis = Path(__file__).resolve().parent / "search-analysis.md"  # the hand-written part
    if analysis.exists():
        lines += [analysis.read_text().rstrip("\n"), ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def kept_section(output: Path) -> str:
    """The search section of an existing report, for bench/run.py, which rewrites the rest."""
    text = output.read_text() if output.exists() else ""
    if BEGIN in text and END in text:
        return "\n" + text[text.index(BEGIN): text.index(END) + len(END)] + "\n"
    return ""


def write_section(output: Path, section: str) -> None:
    text = output.read_text() if output.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    output.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--database", default="memlayer_search_bench")
    parser.add_argument("--binary", type=Path)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--save", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--keep", type=Path, action="append", default=[],
                        help="a --save file of an earlier run whose backends are reported as they were")
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.database):
        sys.exit("--database: lower-case letters, digits and _")
    seconds = args.seconds or (1 if args.smoke else 10)
    profile = "dev" if args.smoke else "release"
    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "-q", "-p", "memlayer-server"] + ([] if args.smoke else ["--release"]), cwd=ROOT, check=True)
        binary = ROOT / "target" / ("debug" if args.smoke else "release") / "memlayer"
    else:
        profile = binary.parent.name
    admin = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("postgres", "both"):
            results.append(run_backend(Postgres(admin, args.database), binary, args.port, args.smoke, seconds, args.connections))
        if args.backend in ("sqlite", "both"):
            results.append(run_backend(Sqlite(Path(tmp)), binary, args.port, args.smoke, seconds, args.connections))
    if args.save:
        args.save.write_text(json.dumps(results))
    ran = {result["backend"] for result in results}
    kept = [result for path in args.keep for result in json.loads(path.read_text()) if result["backend"] not in ran]
    results = sorted(results + kept, key=lambda result: result["backend"] != "PostgreSQL")
    section = render(results, seconds, args.connections, profile)
    print(section)
    problems = [f"{r['backend']} {phase} {key}" for r in results for phase in ("alone", "with_others")
                for key, numbers in r[phase].items() if numbers["errors"] or not numbers["requests"]]
    problems += [f"{r['backend']} {phase}" for r in results for phase in ("post_with", "post_without") if r[phase]["errors"]]
    if problems:
        sys.exit(f"runs with errors or no requests: {problems}")
    if not args.smoke:
        write_section(args.output, section)
        print(f"wrote the search section of {args.output}")


if __name__ == "__main__":
    main()
