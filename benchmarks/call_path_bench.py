"""The call path's own cost (issue 9), against the loopback test server.

Prints, side by side:
- a cache hit through ``OpenAIClient.send_message`` and through ``LLMCall.call``
  (targets: LLMCall.call under 0.1 ms, and at most 1.1x send_message);
- a call with the cache off through ``send_message`` and the same request through the raw
  ``openai`` SDK client (target: llmkit adds at most 0.2 ms).

Medians of interleaved runs, so a noisy neighbour slows both sides alike.
Run: ``python benchmarks/call_path_bench.py`` (about 10 s).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["run"]


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _interleaved(funcs: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(n):
        for name, fn in funcs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: _median_ms(v) for name, v in times.items()}


def run(hits: int = 3000, misses: int = 400) -> dict[str, float]:
    import openai

    import llmkit
    from tests.openai_server import OpenAITestServer

    with OpenAITestServer() as server, tempfile.TemporaryDirectory() as folder:
        os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="bench",
                          LLMKIT_CACHE_DIR=folder)
        client = llmkit.OpenAIClient()
        call = llmkit.LLMCall("You are terse.", "Capital of {{ country }}?")
        messages = call.render(country="France")
        client.send_message(messages)  # fills the cache: both below are hits of this entry
        call.call(country="France")
        hit = _interleaved({"send_message": lambda: client.send_message(messages),
                            "LLMCall.call": lambda: call.call(country="France")}, hits)
        sdk = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
        body = {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 1024}
        sdk.chat.completions.create(**body)
        off = _interleaved({"raw SDK": lambda: sdk.chat.completions.create(**body),
                            "send_message, cache off": lambda: client.send_message(
                                messages, cache=False)}, misses)
    return {"hit_send_message_ms": hit["send_message"], "hit_llmcall_ms": hit["LLMCall.call"],
            "raw_sdk_ms": off["raw SDK"], "cache_off_ms": off["send_message, cache off"]}


def main() -> None:
    r = run()
    print(f"cache hit: send_message {r['hit_send_message_ms']:.4f} ms, LLMCall.call "
          f"{r['hit_llmcall_ms']:.4f} ms (ratio {r['hit_llmcall_ms'] / r['hit_send_message_ms']:.2f}; "
          f"targets < 0.1 ms and <= 1.10)")
    print(f"cache off: raw SDK {r['raw_sdk_ms']:.3f} ms, send_message {r['cache_off_ms']:.3f} ms "
          f"(llmkit adds {r['cache_off_ms'] - r['raw_sdk_ms']:+.3f} ms; target <= +0.2 ms)")


if __name__ == "__main__":
    main()
