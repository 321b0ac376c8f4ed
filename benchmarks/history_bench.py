"""The run history's cost, printed against its targets:

- what recording costs a cache hit, at 200 and at 50,000 distinct 1 KB prompts (every prompt asked
  once, and recorded, before; then hits cycle through them): the hit's cost for the caller (its
  thread's wall time while the writer thread runs beside it; target: recording adds at most
  30 µs, flat) and with the history's work counted (each block timed until its rows are
  written, `flush`; target: a hit at most 0.05 ms); the same calls with HISTORY on and off, in
  interleaved blocks, medians of the blocks;
- what it adds to a miss against the loopback test server (target: at most 0.3 ms);
- with 1,000,000 recorded runs: a full-text search for a common and a rare word (limit 100;
  target under 100 ms), the newest 100 runs, and ``spend()`` by model, day and notebook (target
  under 200 ms), through the public functions (opening the file included); the size per run.

The million runs are generated (prompts and answers drawn from a Zipf-distributed vocabulary,
so the full-text index has real work) and written by `HistoryDB.insert` in big transactions.
Run: ``python benchmarks/history_bench.py`` (several minutes; ``--runs 100000`` for a quick look,
``--db FILE`` keeps the generated database and reuses it next time, ``--distinct 200`` measures
hits at 200 distinct prompts only).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["build", "hit_cost", "overhead", "queries"]

COMMON, RARE = "the", "zanzibar"


def _blocks(on: Callable[[], object], off: Callable[[], object], calls: int, blocks: int,
            settle: Callable[[], object]) -> dict[str, float]:
    """Median ms per call with the history on and off, wall clock and CPU (both threads; steadier
    on a busy machine): interleaved blocks of ``calls`` calls; an "on" block is timed until its
    rows are written (``settle``)."""
    from llmkit.base import config
    times: dict[str, list[float]] = {"on": [], "off": [], "on_cpu": [], "off_cpu": []}
    for i in range(blocks * 2):
        state = i % 2 == (i // 2) % 2  # on/off, off/on, ...: neither always goes first
        config.force_default_value("history", state)
        fn = on if state else off
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        if state:
            settle()
        name = "on" if state else "off"
        times[name].append((time.perf_counter() - t) / calls * 1000)
        times[name + "_cpu"].append((time.process_time() - cpu) / calls * 1000)
    config.force_default_value("history", True)
    return {name: statistics.median(v) for name, v in times.items()}


def _prompts(count: int, size: int = 1024) -> list[str]:
    """``count`` distinct texts of about ``size`` characters (words, so search has work)."""
    rng = random.Random(count)
    words, weights = _vocabulary()
    texts = []
    for i in range(count):
        text = f"question {i}:"
        while len(text) < size:
            text += " " + " ".join(rng.choices(words, weights, k=20))
        texts.append(text[:size])
    return texts


def hit_cost(distinct: int, calls: int = 500, blocks: int = 15) -> dict[str, float]:
    """ms per cache hit with HISTORY off, on (the caller's time) and on with its rows written,
    for hits cycling through ``distinct`` 1 KB prompts that were each asked (and recorded) once."""
    import llmkit
    from llmkit.base import config
    from llmkit.clients import recorder
    from tests.openai_server import OpenAITestServer

    with OpenAITestServer() as server, tempfile.TemporaryDirectory() as folder:
        os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="bench",
                          LLMKIT_CACHE_DIR=folder)
        client = llmkit.OpenAIClient()
        asked = [[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": text}] for text in _prompts(distinct)]
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(4) as pool:  # every prompt asked once: cached and recorded
            list(pool.map(lambda m: client.complete(m), asked, chunksize=64))
        recorder.flush()
        server.reset()
        turn = iter(range(10**9))

        def hit() -> None:
            client.complete(asked[next(turn) % distinct])

        times: dict[str, list[float]] = {"off": [], "on": [], "counted": [], "off_cpu": [],
                                          "counted_cpu": []}
        for i in range(blocks * 2):
            state = i % 2 == (i // 2) % 2  # on/off, off/on, ...: neither always goes first
            config.force_default_value("history", state)
            t, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                hit()
            caller = time.perf_counter() - t
            recorder.flush()
            counted, cpu = time.perf_counter() - t, time.process_time() - cpu
            if state:
                times["on"].append(caller / calls * 1000)
                times["counted"].append(counted / calls * 1000)
                times["counted_cpu"].append(cpu / calls * 1000)
            else:
                times["off"].append(counted / calls * 1000)
                times["off_cpu"].append(cpu / calls * 1000)
        config.force_default_value("history", True)
        recorded = llmkit.spend().total["runs"]
    return {**{name: statistics.median(v) for name, v in times.items()}, "recorded": recorded}


def overhead(misses: int = 50, blocks: int = 25) -> dict[str, float]:
    """What recording adds to a miss against the loopback server: ms on and off."""
    import llmkit
    from llmkit.clients import recorder
    from tests.openai_server import OpenAITestServer

    with OpenAITestServer() as server, tempfile.TemporaryDirectory() as folder:
        os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="bench",
                          LLMKIT_CACHE_DIR=folder)
        client = llmkit.OpenAIClient()
        messages = [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "What is the capital of France, in one word?"}]
        miss = _blocks(lambda: client.complete(messages, cache=False),
                       lambda: client.complete(messages, cache=False), misses, blocks,
                       recorder.flush)
    return {f"miss_{k}": v for k, v in miss.items()}


def _vocabulary(size: int = 20000) -> tuple[list[str], list[float]]:
    rng = random.Random(13)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {COMMON, "a", "of", "and", "to", "in", "is", "you", "that", "it"}
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    words.discard(RARE)
    ordered = [COMMON, *sorted(words - {COMMON})]
    weights = [1 / (rank + 1) for rank in range(len(ordered))]  # Zipf: "the" is in most texts
    return ordered, weights


def build(path: Path, runs: int = 1_000_000, chunk: int = 50_000) -> float:
    """Write ``runs`` generated runs to a new history at ``path``; seconds taken."""
    from llmkit.base.history_db import HistoryDB, day_of
    rng = random.Random(42)
    words, weights = _vocabulary()
    models = [("gpt-4o-mini", 0.15, 0.6), ("gpt-4o", 2.5, 10.0), ("gpt-5", 1.25, 10.0),
              ("o3", 2.0, 8.0), ("local-llama", None, None)]
    notebooks = [None, *(f"/home/me/notebooks/analysis-{i:02d}.ipynb" for i in range(20))]
    start = time.time() - 365 * 86400
    step = 365 * 86400 / runs
    t0 = time.perf_counter()
    db = HistoryDB(path)
    for first in range(0, runs, chunk):
        count = min(chunk, runs - first)
        pool = rng.choices(words, weights, k=count * 80)
        rows: list[dict[str, Any]] = []
        for i in range(count):
            n = first + i
            when = start + n * step
            p_len, a_len = rng.randint(10, 40), rng.randint(10, 40)
            offset = i * 80
            user = " ".join(pool[offset:offset + p_len])
            if n % 100_000 == 7:
                user += " " + RARE  # ten runs in a million
            answer = " ".join(pool[offset + p_len:offset + p_len + a_len])
            messages = [{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": user}]
            model, pin, pout = models[n % len(models)]
            prompt_tokens, completion_tokens = p_len + 12, a_len
            cached = n % 7 == 0
            cost = None if pin is None or pout is None else (
                0.0 if cached else (prompt_tokens * pin + completion_tokens * pout) / 1e6)
            rows.append({
                "time": when, "day": day_of(when), "kind": "chat", "api_type": "openai",
                "host": "api.openai.com", "model": model, "messages": json.dumps(messages),
                "prompt": f"You are a helpful assistant.\n\n{user}", "answer": answer,
                "params": '{"temperature": 0.7, "max_tokens": 1024}',
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "cached_tokens": None, "total_tokens": prompt_tokens + completion_tokens,
                "cost": cost, "latency": 0.8, "cached": int(cached), "finish_reason": "stop",
                "tool_calls": None, "error": "RateLimitError" if n % 97 == 0 else None,
                "error_message": None, "notebook": notebooks[n % len(notebooks)],
                "cell_id": f"cell-{n % 50}", "batch_id": None, "chat_id": None,
                "experiment": None, "pid": 1000 + n // 10000})
        db.insert(rows)
    db.close()
    return time.perf_counter() - t0


def _best_ms(fn: Callable[[], object], repeat: int = 7) -> tuple[float, object]:
    """Median ms of ``repeat`` runs (the first, cold, run included), and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, result


def queries(path: Path) -> dict[str, tuple[float, int]]:
    """ms and number of rows of each timed query on the history at ``path``."""
    import llmkit
    where = str(path)
    timed: dict[str, Callable[[], Any]] = {
        f"history({COMMON!r})": lambda: llmkit.history(COMMON, path=where),
        f"history({RARE!r})": lambda: llmkit.history(RARE, path=where),
        f"history('{COMMON} {RARE}')": lambda: llmkit.history(f"{COMMON} {RARE}", path=where),
        "history() newest 100": lambda: llmkit.history(path=where),
        f"history({COMMON!r}, model='o3', errors=True)": lambda: llmkit.history(
            COMMON, model="o3", errors=True, path=where),
        "spend(by='model')": lambda: llmkit.spend(path=where),
        "spend(by='day')": lambda: llmkit.spend(by="day", path=where),
        "spend(by='notebook')": lambda: llmkit.spend(by="notebook", path=where),
        "spend(since='7d')": lambda: llmkit.spend(since="7d", path=where),
        "spend(since='30d', by='day')": lambda: llmkit.spend(since="30d", by="day", path=where),
    }
    out = {}
    for name, fn in timed.items():
        ms, result = _best_ms(fn)
        out[name] = (ms, len(result))  # type: ignore[arg-type]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--db", help="keep the generated history here (reused if it exists)")
    parser.add_argument("--distinct", type=int, nargs="+", default=[200, 50_000],
                        help="distinct prompts the timed cache hits cycle through")
    args = parser.parse_args()

    for distinct in filter(None, args.distinct):  # --distinct 0: no hits measured
        h = hit_cost(distinct)
        added, counted = (h["on"] - h["off"]) * 1000, h["counted"]
        print(f"cache hit, {distinct:,} distinct 1 KB prompts: {h['off']:.4f} ms without history; "
              f"with it {h['on']:.4f} ms for the caller (recording adds {added:+.1f} µs, target "
              f"<= +30 µs) {'OK' if added <= 30 else 'MISSED'}, {counted:.4f} ms with the "
              f"history's work counted (target <= 0.05 ms) {'OK' if counted <= 0.05 else 'MISSED'}"
              f"  [CPU, every thread: {h['off_cpu']:.4f} ms off, {h['counted_cpu']:.4f} ms on, "
              f"{(h['counted_cpu'] - h['off_cpu']) * 1000:+.1f} µs; {int(h['recorded']):,} runs]")
    r = overhead()
    wall, cpu = r["miss_on"] - r["miss_off"], r["miss_on_cpu"] - r["miss_off_cpu"]
    print(f"miss (loopback server): {r['miss_off']:.4f} ms without history, {r['miss_on']:.4f} ms "
          f"with: recording adds {wall * 1000:+.1f} µs wall, {cpu * 1000:+.1f} µs CPU "
          f"(target <= +300 µs) {'OK' if wall <= 0.3 else 'MISSED'}")
    print("  (medians of interleaved blocks; a hit's 'counted' block is timed until its rows are "
          "written)")
    if args.runs == 0:  # --runs 0: no million-run queries
        return

    with tempfile.TemporaryDirectory() as folder:
        path = Path(args.db) if args.db else Path(folder) / "history.sqlite3"
        if not path.exists():
            seconds = build(path, args.runs)
            print(f"built a history of {args.runs:,} runs in {seconds:.0f} s "
                  f"({args.runs / seconds:,.0f} runs/s through HistoryDB.insert)")
        from llmkit.base.history_db import HistoryDB
        db = HistoryDB(path, create=False)
        count = db.count()
        db.close()
        size = sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())
        print(f"{count:,} runs: {size / 1e6:,.0f} MB, {size / max(count, 1):,.0f} bytes per run")
        for name, (ms, rows) in queries(path).items():
            target = 100 if name.startswith("history") else 200
            print(f"  {name:<48} {ms:8.2f} ms  {rows:>4} rows  (target < {target} ms) "
                  f"{'OK' if ms < target else 'MISSED'}")


if __name__ == "__main__":
    main()
