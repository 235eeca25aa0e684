"""The web viewer (`ledger serve`) through uvicorn and a real HTTP client (httpx). Run:

    python benchmarks/bench_web.py [--runs 20]

It builds a store in a temporary folder: a 1,000-version article (one paragraph rewritten per
version), a 50 KB article in two versions (3% of its words changed, a paragraph moved, one
rewritten, an update block added) and the bundled examples. Then it starts `ledger serve` as a
process on a free loopback port twice. The first server is the store's first reader: its first
request of each page also folds what no one read before (the views' snapshots, the text index)
once for the store. The second is a cold server over a store in use: its first request of each
page pays only what a new process pays (with the CPU time the server spent on it, which does not
grow with the machine's load as the time does); then the median and maximum of `--runs` more.
Times are to the first byte (until the response's headers arrive). Pages: an article, the history page of
the 1,000-version article (its newest 100 rows), the diff of the 50 KB article, the blame of the
1,000-version article and a search for a phrase over all versions. Last, 20 clients (threads,
one connection each) send 10 requests each at once over a mix of pages: 200 concurrent
requests, every one of which must answer 200.
Targets (issue 12): under 100 ms each; no error under the concurrent load.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import ledger

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["harbour", "bridge", "cable", "engineers", "ferry", "council", "mayor", "traffic", "repairs", "closure", "weather", "storm", "port", "authority",
         "commuters", "district", "statement", "officials", "tonight", "morning", "inspection", "contract", "budget", "week"]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + f" {rng.randint(1, 99)}."


def build(root: Path) -> None:
    rng = random.Random(12)
    with ledger.open(root, create=True) as led, led.bulk():
        paragraphs = [" ".join(_sentence(rng, 12) for _ in range(4)) for _ in range(12)]
        led.append([{"type": "ArticleCreated", "article": "long-history", "data": {"title": "A story edited a thousand times", "body": "\n\n".join(paragraphs)}, "occurred_at": "2024-01-01T00:00:00Z"}])
        for version in range(2, 1001):
            index = rng.randrange(len(paragraphs))
            paragraphs[index] = " ".join(_sentence(rng, 12) for _ in range(4))
            when = f"2024-01-01T{version // 3600:02d}:{version // 60 % 60:02d}:{version % 60:02d}Z"
            led.append([{"type": "ArticleEdited", "article": "long-history", "data": {"body": "\n\n".join(paragraphs)}, "occurred_at": when, "actor": "Desk", "reason": f"edit {version}"}])
        big = [" ".join(_sentence(rng, 14) for _ in range(5)) for _ in range(100)]
        body = "\n\n".join(big)
        assert 45_000 < len(body.encode()) < 60_000, len(body.encode())
        led.append([{"type": "ArticleCreated", "article": "fifty-kb", "data": {"title": "A 50 KB article", "body": body}, "occurred_at": "2024-02-01T00:00:00Z"}])
        edited = list(big)
        for index in range(0, 100, 7):  # ~3% of the words
            words = edited[index].split()
            for _ in range(10):
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            edited[index] = " ".join(words)
        edited.insert(80, edited.pop(10))
        edited[50] = " ".join(_sentence(rng, 14) for _ in range(5))
        led.append([{"type": "ArticleEdited", "article": "fifty-kb", "data": {"body": "\n\n".join(edited)}, "occurred_at": "2024-02-02T00:00:00Z"}])
        led.append([{"type": "UpdateBlockAdded", "article": "fifty-kb", "data": {"heading": "Update from the Port Authority:", "text": _sentence(rng, 20)}, "occurred_at": "2024-02-03T00:00:00Z"}])
        revisions = ROOT / "examples" / "revisions" / "harbour-bridge-closure"
        for n in (1, 2, 3):
            ledger.ingest(led, [revisions / f"v{n}.txt"], article="harbour-bridge-closure", at=f"2024-03-0{n}T09:00Z", actor="City desk")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ttfb(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    with client.stream("GET", path) as response:
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (path, response.status_code)
        response.read()
    return elapsed * 1000


PAGES = {
    "article page": "/a/fifty-kb",
    "history, 1,000 versions": "/a/long-history/history",
    "diff of a 50 KB article": "/a/fifty-kb/diff/1..2",
    "blame, 1,000 versions": "/a/long-history/blame",
    "search, all versions": "/search?q=harbour+bridge",
}
MIX = ["/", "/feed", "/a/harbour-bridge-closure", "/a/harbour-bridge-closure/history", "/a/harbour-bridge-closure/diff/1..3",
       "/a/fifty-kb/diff/1..2?view=side", "/a/long-history/v/500", "/categories", "/c/transport", "/a/long-history/diff/998..1000.json",
       "/a/harbour-bridge-closure/blame", "/a/long-history/v/500/blame", "/search?q=ferry", "/search?q=storm+damage&article=long-history"]


def server_cpu(pid: int) -> float | None:
    """Milliseconds of CPU the process's threads have run so far (Linux: /proc/PID/task/*/schedstat,
    in nanoseconds), or None where that is not to be read. Unlike the time to first byte, it
    does not grow with the other work on the machine."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[0])
    except OSError:
        return None
    return total / 1e6


def serve(store: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """`ledger serve` over `store` on a free port: the process, its address, and the seconds
    from the start of the process until it answered."""
    port = _free_port()
    script = Path(sys.executable).with_name("ledger")
    started = time.perf_counter()
    server = subprocess.Popen([str(script), "--store", str(store), "serve", "--port", str(port)], stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/favicon.ico", timeout=5).status_code == 200:
                return server, base, time.perf_counter() - started
        except httpx.TransportError:
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.02)


def load(base: str) -> None:
    """20 clients, 10 requests each, all at once, over `MIX`."""
    errors: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()
    gate = threading.Barrier(20)

    def client_run(number: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            gate.wait()
            for n in range(10):
                path = MIX[(number + n) % len(MIX)]
                t0 = time.perf_counter()
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError as exc:
                    status = 0
                    with lock:
                        errors.append(f"{path}: {exc!r}")
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if status != 200 and status != 0:
                        errors.append(f"{path}: {status}")

    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(20)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    print(f"200 requests from 20 clients: {len(latencies)} answered, {len(errors)} errors, {wall:.2f} s wall, "
          f"{len(latencies) / wall:.0f} requests/s, latency median {statistics.median(latencies):.0f} ms, p95 {latencies[int(len(latencies) * 0.95)]:.0f} ms")
    for error in errors[:10]:
        print("  error:", error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        started = time.perf_counter()
        build(store)
        print(f"store built in {time.perf_counter() - started:.1f} s")
        server, base, up = serve(store)
        try:
            print(f"server answering {up * 1000:.0f} ms after its start; its first request of each page, the store's first reader:")
            with httpx.Client(base_url=base, timeout=60) as client:
                for name, path in PAGES.items():
                    print(f"  {name:<26} {ttfb(client, path):>8.1f} ms")
        finally:
            server.terminate()
            server.wait(30)
        server, base, up = serve(store)
        try:
            print(f"a cold server over the store in use, answering {up * 1000:.0f} ms after its start:")
            print(f"{'page':<26} {'first (ms)':>10} {'server CPU':>10} {'median (ms)':>12} {'max (ms)':>9}  target 100 ms")
            with httpx.Client(base_url=base, timeout=60) as client:
                for name, path in PAGES.items():
                    before = server_cpu(server.pid)
                    first = ttfb(client, path)
                    after = server_cpu(server.pid)
                    cpu = f"{after - before:.1f}" if before is not None and after is not None else "-"
                    times = [ttfb(client, path) for _ in range(args.runs)]
                    print(f"{name:<26} {first:>10.1f} {cpu:>10} {statistics.median(times):>12.1f} {max(times):>9.1f}")
            load(base)
        finally:
            server.terminate()
            server.wait(30)
    print(f"load average now: {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
