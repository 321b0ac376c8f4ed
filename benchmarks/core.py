"""Core benchmark: import time, cache hit/miss at 200 vs 5,000 entries, token counting throughput,
and a cache hit through the whole client (key, lookup, Completion), against the test server.

Run: ``make bench`` or ``python benchmarks/core.py`` (about 15 s). Targets (issue #2): a miss at
5,000 entries within 1.5x of one at 200; a hit under 1 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import cache_bench  # noqa: E402
import tokens_bench  # noqa: E402


def import_time(runs: int = 7) -> float:
    """Median seconds for ``import llmkit`` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import llmkit; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True, cwd=ROOT).stdout) for _ in range(runs)]
    return statistics.median(times)


def client_hit_and_miss(n: int = 300) -> dict[str, float]:
    """Median ms of a full OpenAIClient.complete() cache hit, and of a miss to the loopback server."""
    import llmkit
    from tests.openai_server import OpenAITestServer
    with OpenAITestServer() as server, tempfile.TemporaryDirectory() as folder:
        os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="bench", LLMKIT_CACHE_DIR=folder)
        client = llmkit.OpenAIClient()
        messages = [{"role": "user", "content": "benchmark question"}]
        client.complete(messages)
        hits, misses = [], []
        for i in range(n):
            t = time.perf_counter()
            client.complete(messages)
            hits.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.complete([{"role": "user", "content": f"question {i}"}])
            misses.append(time.perf_counter() - t)
    return {"client_hit_ms": round(statistics.median(hits) * 1000, 3),
            "client_miss_loopback_ms": round(statistics.median(misses) * 1000, 3)}


def main() -> None:
    print(f"import llmkit: {import_time() * 1000:.1f} ms (median of 7 fresh interpreters)")
    cache = cache_bench.run()
    for key, value in cache.items():
        print(f"cache {key}: {value}")
    for model in ("gpt-4o", "gpt-4"):
        tok = tokens_bench.run(model)
        print(f"tokens {model}: " + ", ".join(f"{k}={v}" for k, v in tok.items()))
    for key, value in client_hit_and_miss().items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
