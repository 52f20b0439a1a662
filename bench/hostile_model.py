#!/usr/bin/env python3
"""A model server that never stops, and what it costs MemLayer: its memory before and
after, and whether it hangs up.

    cargo build -p memlayer-server
    python3 bench/hostile_model.py                      # every attack, target/debug/memlayer
    python3 bench/hostile_model.py --binary target/release/memlayer --attack endless

Attacks (each answers every request to /v1/chat/completions the same way, forever):
  endless  a streamed reply whose deltas never end (and no [DONE])
  line     one server-sent event line that never ends (no newline)
  error    a 500 whose body never ends

For each, MemLayer runs on a fresh SQLite database in a temporary folder; ten JSON posts
and ten streamed posts go to one chat at once. Printed: the answers' statuses and sizes,
the service's resident memory (VmRSS, and its peak VmHWM) before and after, the size of
the chat's message list, and how many connections to the model are still open.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def hostile_server(attack: str) -> socket.socket:
    """Serves `attack` on a free port of 127.0.0.1 from a background thread."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    delta = "data: " + json.dumps({"choices": [{"delta": {"content": "x" * 1000}}]}) + "\n\n"
    heads = {
        "endless": (b"200 OK", b"text/event-stream", (delta * 64).encode()),
        "line": (b"200 OK", b"text/event-stream", b"x" * 65536),
        "error": (b"500 Scripted", b"text/plain", b"e" * 65536),
    }
    status, kind, block = heads[attack]

    def answer(connection: socket.socket) -> None:
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            connection.sendall(b"HTTP/1.1 " + status + b"\r\ncontent-type: " + kind
                               + b"\r\nconnection: close\r\n\r\n")
            if attack == "line":
                connection.sendall(b"data: ")
            while True:
                connection.sendall(block)
        except OSError:
            pass
        finally:
            connection.close()

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def call(base: str, method: str, path: str, token: str | None = None,
         body: dict | None = None, accept: str = "application/json") -> tuple[int, int]:
    """Status and body size of one request."""
    headers = {"content-type": "application/json", "accept": accept}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, len(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, len(error.read())


def json_call(base: str, method: str, path: str, token: str | None = None,
              body: dict | None = None) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=json.dumps(body or {}).encode(),
                                     method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def memory(pid: int) -> str:
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return f"VmRSS {fields['VmRSS'].strip()}, peak VmHWM {fields['VmHWM'].strip()}"


def open_connections_to(port: int) -> int:
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    return len([line for line in out.splitlines() if line.strip()])


def run(attack: str, binary: str, port: int) -> None:
    listener = hostile_server(attack)
    model_port = listener.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        env = {
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": f"sqlite://{folder}/memlayer.db",
            "JWT_SECRET": "a-benchmark-secret-of-at-least-32-bytes",
            "PORT": str(port), "BCRYPT_COST": "4", "RUST_LOG": "error",
            "ASSISTANT_URL": f"http://127.0.0.1:{model_port}/v1", "ASSISTANT_MODEL": "m",
        }
        service = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if call(base, "GET", "/health")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            token = json_call(base, "POST", "/auth/register", body={
                "email": "attacked@example.com", "password": "password1"})["access_token"]
            chat = json_call(base, "POST", "/chats", token)["id"]
            before = memory(service.pid)
            path = f"/chats/{chat}/messages"
            with ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(
                    lambda accept: call(base, "POST", path, token, {"content": "go"}, accept),
                    ["application/json", "text/event-stream"] * 10))
            after = memory(service.pid)
            listed = call(base, "GET", path, token)
            print(f"== {attack}")
            print(f"  answers (status, bytes): {sorted(set(answers))}")
            print(f"  memory before: {before}")
            print(f"  memory after:  {after}")
            print(f"  GET messages: status {listed[0]}, {listed[1]} bytes")
            print(f"  connections to the model still open: {open_connections_to(model_port)}")
        finally:
            service.terminate()
            service.wait(timeout=30)
            listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/debug/memlayer")
    parser.add_argument("--attack", choices=["endless", "line", "error"], action="append")
    parser.add_argument("--port", type=int, default=8095, help="the service's port")
    args = parser.parse_args()
    for attack in args.attack or ["endless", "line", "error"]:
        run(attack, args.binary, args.port)


if __name__ == "__main__":
    main()
