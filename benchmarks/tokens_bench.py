"""Throughput of llmkit.base.tokens: tokens/s of ``count_text`` and messages/s of ``count_tokens``.

Run ``python benchmarks/tokens_bench.py`` from the repository root (about 3 s).
"""

from __future__ import annotations

import inspect
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

try:
    from llmkit.base import tokens
except ImportError:  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmkit.base import tokens

_MODULES = ("argparse", "json", "pathlib", "collections", "typing", "email.message", "http.client")
_MULTILINGUAL = (
    "Die Lieferung kommt voraussichtlich am Dienstag, bitte bestätigen Sie den Termin.",
    "Le modèle répond en français lorsqu'on lui pose une question en français.",
    "東京の天気は明日晴れる予定です。傘は必要ありません。",
    "Пожалуйста, кратко опишите проблему и шаги для её воспроизведения.",
    "¿Puedes resumir este documento en tres viñetas? 🙂",
)


def realistic_text(size: int = 1_000_000, seed: int = 0) -> str:
    """~``size`` characters mixing English prose, Python source, JSON and other languages."""
    import importlib

    prose: list[str] = []
    code: list[str] = []
    for name in _MODULES:
        module = importlib.import_module(name)
        code.append(inspect.getsource(module))
        for obj in vars(module).values():
            doc = inspect.getdoc(obj)
            if doc and getattr(obj, "__module__", None) == name:
                prose.append(doc)
    rng = random.Random(seed)
    pieces: list[str] = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.45:
            piece = rng.choice(prose)
        elif kind < 0.8:
            source = rng.choice(code)
            start = rng.randrange(max(1, len(source) - 3000))
            piece = source[start:start + 3000]
        elif kind < 0.9:
            piece = json.dumps({"id": rng.randrange(10**9), "tags": rng.sample(_MODULES, 3),
                                "score": rng.random(), "ok": True}, indent=2)
        else:
            piece = " ".join(rng.choices(_MULTILINGUAL, k=4))
        pieces.append(piece)
        total += len(piece) + 2
    return "\n\n".join(pieces)[:size]


def chat_messages(text: str, n: int = 1000, seed: int = 1) -> list[list[dict[str, Any]]]:
    """``n`` conversations of 2-8 typical messages cut from ``text``."""
    rng = random.Random(seed)
    roles = ("user", "assistant")
    chats = []
    for _ in range(n):
        chat: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
        for i in range(rng.randint(1, 7)):
            start = rng.randrange(len(text) - 2000)
            content = text[start:start + rng.randint(80, 1500)]
            chat.append({"role": roles[i % 2], "content": content})
        chats.append(chat)
    return chats


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(model: str = "gpt-4o") -> dict[str, Any]:
    """Measure and return the figures (best of a few runs, encoding already loaded)."""
    t0 = time.perf_counter()
    tokens.get_encoding(model)
    load_s = time.perf_counter() - t0
    text = realistic_text()
    n_tokens = tokens.count_text(text, model)
    text_s = _best(lambda: tokens.count_text(text, model), 3)
    chats = chat_messages(text)
    n_messages = sum(len(chat) for chat in chats)
    chat_s = _best(lambda: [tokens.count_tokens(chat, model) for chat in chats], 3)
    prompt_tokens = sum(tokens.count_tokens(chat, model) for chat in chats)
    return {
        "model": model,
        "encoding": tokens.encoding_name_for(model),
        "encoding_load_s": round(load_s, 3),
        "text_chars": len(text),
        "text_bytes": len(text.encode()),
        "text_tokens": n_tokens,
        "count_text_s": round(text_s, 4),
        "tokens_per_s": round(n_tokens / text_s),
        "mb_per_s": round(len(text.encode()) / text_s / 1e6, 2),
        "messages": n_messages,
        "messages_avg_tokens": round(prompt_tokens / n_messages, 1),
        "count_tokens_s": round(chat_s, 4),
        "messages_per_s": round(n_messages / chat_s),
    }


if __name__ == "__main__":
    for name in sys.argv[1:] or ["gpt-4o", "gpt-4"]:
        result = run(name)
        print(f"{name} ({result['encoding']}): load {result['encoding_load_s']} s; "
              f"{result['tokens_per_s']:,} tokens/s ({result['mb_per_s']} MB/s) over "
              f"{result['text_bytes']:,} bytes; {result['messages_per_s']:,} messages/s "
              f"(avg {result['messages_avg_tokens']} tokens/message)")
        print(json.dumps(result))
