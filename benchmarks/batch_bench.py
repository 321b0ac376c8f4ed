"""Benchmark of LLMCall.map against a rate-limited server (issue 6).

The test server answers after 0.2 s and accepts 20 requests per sliding second (429 beyond).
200 rows cannot finish faster than 10 s; the target is within 1.2x of that with at most 10
rejected requests. For comparison: the same rows with no RPM configured (concurrency alone),
and plain sequential ``call.call`` (50 rows, extrapolated to 200).

Each run starts after one warm-up call (the ``openai`` import and client set-up, ~0.5-1 s, are
paid once per process, not per batch) with an empty cache, so every row is a real request.

Run: ``python benchmarks/batch_bench.py`` (about 40 s).
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llmkit
from llmkit import LLMCall, Result
from llmkit.clients import limiter
from tests.openai_server import OpenAITestServer

__all__ = ["main"]

LATENCY, RPS, ROWS, SEQUENTIAL_ROWS = 0.2, 20, 200, 50
BOUND = ROWS / RPS  # seconds


def measure(server: OpenAITestServer, label: str, run: Callable[[list[dict[str, str]]], list[object]],
            rows: int, tag: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.environ["LLMKIT_CACHE_DIR"] = folder
        LLMCall("warm up").call()
        server.reset()
        limiter._reset()
        started = time.perf_counter()
        results = run([{"i": f"{tag}-{i}"} for i in range(rows)])
        elapsed = time.perf_counter() - started
    ok = sum(isinstance(r, Result) for r in results)
    scaled = elapsed * ROWS / rows
    times = [r.time for r in server.requests]
    gap = statistics.median(b - a for a, b in itertools.pairwise(times)) * 1000
    extra = "" if rows == ROWS else f" (extrapolated from {rows} rows: {elapsed:.2f} s)"
    print(f"{label:<34} {scaled:6.2f} s{extra}, ratio to the {BOUND:.0f} s bound {scaled / BOUND:.2f}, "
          f"429s {server.rejected}, peak concurrency {server.peak_concurrency}, "
          f"median gap {gap:.1f} ms, {ok}/{rows} ok")


def main() -> None:
    call = LLMCall("Be brief.", "Question {{ i }}")
    with OpenAITestServer(latency=LATENCY, rate_limit_rps=RPS) as server:
        os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="bench")
        print(f"{ROWS} rows, server latency {LATENCY} s, limit {RPS} requests/s")
        llmkit.force_default_value("rpm", RPS * 60)
        measure(server, "map, RPM=1200, concurrency 8", lambda r: call.map(r, progress=False), ROWS, "a")
        llmkit.force_default_value("rpm", None)
        measure(server, "map, no RPM, concurrency 8", lambda r: call.map(r, progress=False), ROWS, "b")
        measure(server, "sequential call.call", lambda r: [call.call(**row) for row in r],
                SEQUENTIAL_ROWS, "c")


if __name__ == "__main__":
    main()
