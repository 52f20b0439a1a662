"""The streaming scenarios of bench/run.py: streamed replies through MemLayer.

1. Against a real model (llama-server, BENCH_MODEL=host:port): time to the first piece of
   text and pieces per second, through MemLayer and straight from llama-server, the two
   interleaved request by request in one run, so the difference is what MemLayer adds.
2. Against a fast scripted upstream (in this process): many concurrent streams at once;
   every one must end with `done`, and the service's peak memory is reported.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import time
import urllib.request
from dataclasses import dataclass, field

PROMPT = "Write two sentences about the sea."


@dataclass
class Stream:
    """One streamed answer, as a client saw it."""

    status: int
    ended: str = ""  # "done", "error", or "" when the stream stopped without either
    question_s: float = 0.0  # MemLayer only: until the stored question (`event: message`) arrived
    times: list[float] = field(default_factory=list)  # when each non-empty piece arrived, from the request

    @property
    def pieces(self) -> int:
        return len(self.times)

    @property
    def first_piece_s(self) -> float:
        return self.times[0] if self.times else 0.0

    @property
    def pieces_per_s(self) -> float:
        """The model's pace once the answer flows: over the second half of the pieces, so
        a burst of pieces that queued up behind the first one does not count as speed."""
        steady = self.times[len(self.times) // 2:]
        span = steady[-1] - steady[0] if len(steady) > 1 else 0.0
        return (len(steady) - 1) / span if span > 0 else 0.0


def raise_file_limit() -> None:
    """Hundreds of streams need more than the usual 1,024 descriptors (inherited by the service)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _read_response(reader: asyncio.StreamReader, started: float, memlayer: bool) -> Stream:
    """Reads an HTTP/1.1 response with a chunked or close-delimited SSE body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    chunked = b"transfer-encoding: chunked" in head.lower()
    result = Stream(status)
    buffer = b""

    async def body_parts():
        if not chunked:
            while data := await reader.read(65536):
                yield data
            return
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]

    name = ""
    async for data in body_parts():
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            line = line.rstrip(b"\r").decode()
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                payload = line[6:]
                if memlayer:
                    if name == "delta":
                        text = json.loads(payload)["content"]
                    else:
                        if name in ("done", "error"):
                            result.ended = name
                        if name == "message":
                            result.question_s = time.perf_counter() - started
                        continue
                else:
                    if payload == "[DONE]":
                        result.ended = "done"
                        continue
                    choices = json.loads(payload).get("choices") or [{}]
                    text = (choices[0].get("delta") or {}).get("content") or ""
                if text:
                    result.times.append(time.perf_counter() - started)
        if result.ended:
            break
    return result


async def stream(host: str, port: int, path: str, body: dict, headers: dict[str, str], memlayer: bool) -> Stream:
    reader, writer = await asyncio.open_connection(host, port)
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
             "accept: text/event-stream", f"content-length: {len(data)}", "connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    started = time.perf_counter()
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()
    try:
        return await _read_response(reader, started, memlayer)
    finally:
        writer.close()


def compare_with_model(model: str, memlayer_port: int, token: str, chat_ids: list[str], samples: int) -> dict:
    """Time to first piece and pieces/s: straight from the model vs through MemLayer, interleaved."""
    host, port = model.rsplit(":", 1)
    direct, through = [], []
    for i in range(samples):
        direct.append(asyncio.run(stream(host, int(port), "/v1/chat/completions",
                                         {"model": "bench", "stream": True, "messages": [{"role": "user", "content": PROMPT}]},
                                         {}, memlayer=False)))
        through.append(asyncio.run(stream("127.0.0.1", memlayer_port, f"/chats/{chat_ids[i]}/messages",
                                          {"content": PROMPT}, {"authorization": f"Bearer {token}"}, memlayer=True)))
    bad = [s for s in direct + through if s.status != 200 or s.ended != "done" or s.pieces == 0]
    ttft = lambda streams: statistics.median(s.first_piece_s for s in streams) * 1000  # noqa: E731
    rate = lambda streams: statistics.median(s.pieces_per_s for s in streams if s.pieces > 3) if any(s.pieces > 3 for s in streams) else 0.0  # noqa: E731
    return {
        "samples": samples,
        "direct_ttft_ms": ttft(direct),
        "through_ttft_ms": ttft(through),
        "direct_rate": rate(direct),
        "through_rate": rate(through),
        "pieces": statistics.median(s.pieces for s in through),
        "question_ms": statistics.median(s.question_s for s in through) * 1000,
        "errors": len(bad),
    }


STALL = "stall after one piece"


async def _fake_upstream(pieces: int, pause_s: float, closed: list[float]) -> asyncio.base_events.Server:
    """An OpenAI-compatible server that streams `pieces` pieces, `pause_s` apart; asked
    `STALL`, it sends one piece, then waits for the client to close the connection and
    notes the time in `closed`."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            if STALL.encode() in body:
                writer.write(f"data: {json.dumps({'choices': [{'delta': {'content': 'one'}}]})}\n\n".encode())
                await writer.drain()
                await reader.read(1)  # returns when MemLayer closes the connection
                closed.append(time.perf_counter())
                return
            for i in range(pieces):
                chunk = {"choices": [{"index": 0, "delta": {"content": f"piece{i} "}}]}
                writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
                await writer.drain()
                await asyncio.sleep(pause_s)
            writer.write(b"data: [DONE]\n\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, backlog=4096)


class FakeUpstream:
    """The scripted upstream, served by its own event loop on a thread."""

    def __init__(self, pieces: int = 20, pause_s: float = 0.02):
        import threading

        self.loop = asyncio.new_event_loop()
        self.closed: list[float] = []
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(_fake_upstream(pieces, pause_s, self.closed))
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait()
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def concurrent_streams(memlayer_port: int, targets: list[tuple[str, str]]) -> dict:
    """One stream per (token, chat) in `targets`, all at once."""

    async def all_at_once() -> list[Stream | BaseException]:
        return await asyncio.gather(
            *(stream("127.0.0.1", memlayer_port, f"/chats/{chat}/messages", {"content": "hello"},
                     {"authorization": f"Bearer {token}"}, memlayer=True) for token, chat in targets),
            return_exceptions=True,
        )

    started = time.perf_counter()
    results = asyncio.run(all_at_once())
    took = time.perf_counter() - started
    completed = [r for r in results if isinstance(r, Stream) and r.status == 200 and r.ended == "done"]
    return {"streams": len(targets), "completed": len(completed), "seconds": took,
            "failures": sorted({repr(r) if isinstance(r, BaseException) else f"status {r.status} ended {r.ended!r}"
                                for r in results if r not in completed})[:5]}


def stop_latency(memlayer_port: int, token: str, chat: str, upstream: FakeUpstream, samples: int) -> list[float]:
    """Milliseconds from a stop request (sent after the first piece, on its own
    connection) to MemLayer closing its connection to the stalled model."""

    def stop(reply: str) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{memlayer_port}/chats/{chat}/messages/{reply}/stop", method="POST",
            headers={"authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()

    async def once() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", memlayer_port)
        data = json.dumps({"content": STALL}).encode()
        writer.write((f"POST /chats/{chat}/messages HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                      f"accept: text/event-stream\r\nauthorization: Bearer {token}\r\ncontent-length: {len(data)}\r\n\r\n").encode() + data)
        await writer.drain()
        seen = b""
        while b"event: delta" not in seen:
            seen += await reader.read(65536)
        reply = json.loads(seen.split(b"event: reply\ndata: ", 1)[1].split(b"\n", 1)[0])["id"]
        before = len(upstream.closed)
        asked = time.perf_counter()
        stopping = asyncio.create_task(asyncio.to_thread(stop, reply))
        while len(upstream.closed) == before:
            await asyncio.sleep(0.001)
        await stopping
        writer.close()
        return (upstream.closed[-1] - asked) * 1000

    return [asyncio.run(once()) for _ in range(samples)]
