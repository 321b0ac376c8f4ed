"""Tests for llmkit.base.tokens: counts match tiktoken, offline cache seeding, context checks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from llmkit.base import tokens
from llmkit.base.errors import ContextLengthError, InvalidRequestError

ROOT = Path(__file__).resolve().parents[1]
URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
# Expected encodings as in tiktoken 0.14's model table (older tiktoken lacks gpt-5 / o3).
MODELS = {
    "gpt-4o": "o200k_base", "gpt-4.1-mini": "o200k_base", "gpt-5": "o200k_base", "o3": "o200k_base",
    "gpt-4": "cl100k_base", "gpt-3.5-turbo": "cl100k_base", "text-embedding-3-small": "cl100k_base",
}
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
    {"role": "user", "content": "Wie spät ist es in Tōkyō? 🕰️ Réponds vite!\n```py\nx = 1\n```"},
    {"role": "assistant", "content": "It's 3 p.m. <|endoftext|> there."},
    {"role": "user", "name": "bob_42", "content": "Thanks!   And 1234567 + 89?"},
]


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Seed into a private folder instead of the shared <tempdir>/data-gym-cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("tiktoken-cache")))
        for name in SHA256:  # so that plain tiktoken.get_encoding works offline too
            tokens.seed_tiktoken_cache(name)
        yield


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)


def cookbook_count(messages: list[dict[str, str]], model: str) -> int:
    enc = tiktoken.get_encoding(MODELS[model])
    n = 3
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(enc.encode(value, disallowed_special=()))
            n += key == "name"
    return n


@pytest.mark.parametrize("model", MODELS)
def test_counts_match_tiktoken(model: str) -> None:
    assert tokens.encoding_name_for(model) == MODELS[model]
    assert tokens.count_tokens(MESSAGES, model) == cookbook_count(MESSAGES, model)
    text = MESSAGES[1]["content"] + MESSAGES[2]["content"]
    enc = tiktoken.get_encoding(MODELS[model])
    assert tokens.count_text(text, model) == len(enc.encode(text, disallowed_special=()))


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-4o-mini", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("azure/gpt-35-turbo-16k", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("cl100k_base", "cl100k_base"),
    ],
)
def test_encoding_name_for(model: str, encoding: str) -> None:
    assert tokens.encoding_name_for(model) == encoding


def test_content_parts_name_and_none() -> None:
    enc = tiktoken.get_encoding("o200k_base")
    parts = [
        {"type": "text", "text": "Describe this picture."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "Be brief."},
    ]
    got = tokens.count_tokens([{"role": "user", "content": parts}], "gpt-4o")
    texts = ["user", "Describe this picture.", "Be brief."]
    assert got == 3 + 3 + sum(len(enc.encode(t)) for t in texts)
    tool_call = {"role": "assistant", "content": None}
    assert tokens.count_tokens([tool_call], "gpt-4o") == 3 + 3 + len(enc.encode("assistant"))
    named = [{"role": "user", "name": "ann", "content": "hi"}]
    assert tokens.count_tokens(named, "gpt-4o") == 3 + 3 + 1 + sum(
        len(enc.encode(t)) for t in ("user", "ann", "hi")
    )
    with pytest.raises(TypeError, match="count_text"):
        tokens.count_tokens("hello", "gpt-4o")  # type: ignore[arg-type]


def test_unknown_model_warns_once() -> None:
    with pytest.warns(UserWarning, match="o200k_base") as record:
        assert tokens.count_text("hello world", "my-local-llama-7b") == 2
    assert "to avoid this warning" in str(record[0].message).lower()
    assert record[0].filename == __file__  # points at the caller, not at llmkit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokens.count_text("hello again", "my-local-llama-7b")


def test_get_encoding_is_cached() -> None:
    enc = tokens.get_encoding("gpt-4o")
    assert tokens.get_encoding("o200k_base") is enc
    assert isinstance(enc, tiktoken.Encoding)


def test_seed_offline_into_tiktoken_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    cache = tmp_path / "new" / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    path = Path(tokens.seed_tiktoken_cache("cl100k_base") or "")
    assert path == cache / hashlib.sha1(URL.format("cl100k_base").encode()).hexdigest()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256["cl100k_base"]
    assert os.listdir(cache) == [path.name]  # no temp file left behind
    # End to end through tiktoken's own registry, with nothing cached in memory.
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "cl100k_base", raising=False)
    enc = tokens.get_encoding("gpt-4")
    assert enc is not tiktoken.registry.ENCODINGS.get("o200k_base")
    assert enc.encode("hello world") == [15339, 1917]


def test_seed_replaces_file_with_wrong_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    url = URL.format("o200k_base")
    bad = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    bad.write_bytes(b"half a download")
    assert tokens.seed_tiktoken_cache("o200k_base") == str(bad)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == SHA256["o200k_base"]
    # tiktoken now reads the cached copy instead of calling read_file (which would fail).
    ranks = tiktoken.load.load_tiktoken_bpe(url, SHA256["o200k_base"])
    assert len(ranks) == 199998


def test_seed_honours_data_gym_dir_and_disabled_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path))
    path = tokens.seed_tiktoken_cache("cl100k_base")
    assert path is not None and Path(path).parent == tmp_path
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's "no cache" switch
    assert tokens.seed_tiktoken_cache("cl100k_base") is None
    assert tokens.seed_tiktoken_cache("r50k_base") is None  # not bundled


def test_check_context_uses_the_models_input_and_output_limits() -> None:
    messages = [{"role": "user", "content": "hello " * 100}]
    assert tokens.check_context(messages, "gpt-4", max_tokens=1000) is None  # bytes fit: not counted
    with pytest.raises(ContextLengthError) as info:
        tokens.check_context(messages, "gpt-4", max_tokens=8192)  # gpt-4 writes at most 4,096
    msg = str(info.value)
    assert "max_tokens=8192" in msg and "4,096 output tokens" in msg and "lower max_tokens" in msg
    assert isinstance(info.value, InvalidRequestError)
    long = [{"role": "user", "content": "hello " * 9000}]
    with pytest.raises(ContextLengthError, match=r"the prompt is 9,00\d tokens, more than the 8,192 "
                                                 r"input tokens 'gpt-4' accepts; shorten the prompt"):
        tokens.check_context(long, "gpt-4")
    assert tokens.check_context(long, "gpt-4o") == tokens.count_tokens(long, "gpt-4o")  # fits
    assert tokens.check_context([{"role": "user", "content": "hi"}], "gpt-4o") is None  # not counted
    huge = [{"role": "user", "content": "hello " * 30_000}]  # 180 KB, about 30,000 tokens
    assert tokens.check_context(huge, "gpt-4o") == tokens.count_tokens(huge, "gpt-4o")  # counted: fits
    assert tokens.check_context(long, "cl100k_base", max_tokens=10**9) is None  # no known limits


def test_import_does_not_load_tiktoken() -> None:
    code = "import sys, llmkit.base.tokens; assert 'tiktoken' not in sys.modules, 'tiktoken imported'"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
