"""Benchmark of llmkit.base.cache.ResponseCache: hit and miss+write latency at 200 vs 5,000 entries.

Target: a miss+write at 5,000 entries within 1.5x of one at 200, and a hit under 1 ms.
For scale it also times TinyTroupe's approach (pickle the whole dict to a file on every
miss) and one ResponseCache with SQLite ``synchronous=NORMAL`` (diskcache's default, no
fsync per commit) against llmkit's ``FULL``.

Run: ``python benchmarks/cache_bench.py``  (about 5-10 s).
"""

from __future__ import annotations

import pickle
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

try:
    import llmkit.base.cache as llmkit_cache
except ImportError:  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import llmkit.base.cache as llmkit_cache

from llmkit.base.cache import ResponseCache, cache_key

__all__ = ["run"]

SIZES = (200, 5_000)
ROUNDS = 300


def _answer(i: int) -> dict[str, Any]:
    """A realistic chat-completion answer, about 1.5 KB as JSON."""
    words = " ".join(random.choice(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
                     for _ in range(170))
    return {
        "id": f"chatcmpl-{i:012d}", "object": "chat.completion", "created": 1_700_000_000 + i,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0123456789",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": words, "refusal": None}}],
        "usage": {"prompt_tokens": 512, "completion_tokens": 230, "total_tokens": 742},
    }


def _key(i: int) -> str:
    return cache_key({"model": "gpt-4o-mini", "temperature": 0.7,
                      "messages": [{"role": "user", "content": f"question {i}"}]})


def _ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1e3, 4)


def _prefill(folder: str, n: int) -> ResponseCache:
    cache = ResponseCache(folder)
    with cache._cache.transact():  # bulk load, not what is being measured
        for i in range(n):
            cache.set(_key(i), _answer(i))
    return cache


def _measure(tmp: str, sizes: tuple[int, ...], tag: str = "") -> dict[str, float]:
    """Median hit and miss+write latency per size; the caches take turns, round by round,
    so that disk and scheduler noise falls on every size alike."""
    caches = {n: _prefill(f"{tmp}/c{n}{tag}", n) for n in sizes}
    hits: dict[int, list[float]] = {n: [] for n in sizes}
    writes: dict[int, list[float]] = {n: [] for n in sizes}
    old_keys = {n: [_key(random.randrange(n)) for _ in range(ROUNDS)] for n in sizes}
    new = [(_key(10**6 + r), _answer(10**6 + r)) for r in range(ROUNDS)]
    for r in range(ROUNDS):
        for n, cache in caches.items():
            start = time.perf_counter()
            found = cache.get(old_keys[n][r])
            hits[n].append(time.perf_counter() - start)
            key, answer = new[r]
            start = time.perf_counter()
            if cache.get(key) is None:
                cache.set(key, answer)
            writes[n].append(time.perf_counter() - start)
            assert found is not None
    result: dict[str, float] = {}
    for n, cache in caches.items():
        assert (cache.hits, cache.misses, len(cache)) == (ROUNDS, ROUNDS, n + ROUNDS)
        cache.close()
        result[f"hit_ms_{n}{tag}"] = _ms(hits[n])
        result[f"miss_write_ms_{n}{tag}"] = _ms(writes[n])
    return result


def _pickle_rewrite_ms(folder: str, n: int, rounds: int = 15) -> float:
    """TinyTroupe's scheme: add an entry to a dict, then pickle the whole dict to disk."""
    data = {_key(i): _answer(i) for i in range(n)}
    path = Path(folder) / "cache.pickle"

    times = []
    for i in range(n, n + rounds):
        key, answer = _key(i), _answer(i)
        start = time.perf_counter()
        data[key] = answer
        with open(path, "wb") as f:
            pickle.dump(data, f)
        times.append(time.perf_counter() - start)
    return _ms(times)


def run() -> dict[str, Any]:
    """Return median latencies in ms and the 5000/200 miss+write ratio."""
    random.seed(0)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="llmkit-cache-bench-") as tmp:
        result.update(_measure(tmp, SIZES))
        result["miss_write_ratio_5000_200"] = round(
            result["miss_write_ms_5000"] / result["miss_write_ms_200"], 3)
        normal = {**llmkit_cache._SETTINGS, "sqlite_synchronous": 1}
        with mock.patch.object(llmkit_cache, "_SETTINGS", normal):
            figures = _measure(tmp, (5_000,), tag="_sync_normal")
        result["miss_write_ms_5000_sync_normal"] = figures["miss_write_ms_5000_sync_normal"]
        result["tinytroupe_pickle_rewrite_ms_5000"] = _pickle_rewrite_ms(tmp, 5_000)
    result["target_met"] = (result["miss_write_ratio_5000_200"] <= 1.5
                            and max(result["hit_ms_200"], result["hit_ms_5000"]) < 1.0)
    return result


if __name__ == "__main__":
    start = time.perf_counter()
    figures = run()
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    print(f"{'(benchmark took)':<{width}}  {time.perf_counter() - start:.1f} s")
