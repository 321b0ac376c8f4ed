"""Tests for llmkit.base.tokens: counts match tiktoken, offline cache seeding, context checks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "text", "text": "Be brief."},
    ]
    got = tokens.count_tokens([{"role": "user", "content": parts}], "gpt-4o")
    texts = ["user", "Describe this picture.", "Be brief."]
    # the image's size cannot be read (not a PNG), so it counts as the largest: 1,445; audio: 0
    assert got == 3 + 3 + sum(len(enc.encode(t)) for t in texts) + 1445
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


# The OpenAI cookbook's tool example ("How to count tokens with tiktoken", section 7), whose totals
# the cookbook checked against the API's usage.prompt_tokens.
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {"role": "system",
     "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-4o", 101), ("gpt-4o-mini", 101), ("gpt-4", 105), ("gpt-3.5-turbo", 105),
     ("o200k_base", 101), ("cl100k_base", 105)],  # the limiter and the display pass encodings
)
def test_tools_match_the_cookbooks_api_verified_totals(model: str, expected: int) -> None:
    assert tokens.count_tokens(WEATHER_MESSAGES, model, tools=WEATHER_TOOLS) == expected
    without = tokens.count_tokens(WEATHER_MESSAGES, model)
    assert without == (33 if expected == 101 else 34)
    assert tokens.count_tokens(WEATHER_MESSAGES, model, tools=[]) == without


def n(text: str, encoding: str = "o200k_base") -> int:
    return len(tiktoken.get_encoding(encoding).encode(text))


def test_tool_calls_and_tool_answers_are_counted() -> None:
    args = '{"location": "Paris, France", "unit": "celsius"}'
    call: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc123", "type": "function",
         "function": {"name": "get_current_weather", "arguments": args}}]}
    answer = {"role": "tool", "tool_call_id": "call_abc123", "content": "18 C, sunny"}
    expected = 3 + (3 + n("assistant") + 4 + n("get_current_weather") + n(args)) + (
        3 + n("tool") + n("call_abc123") + n("18 C, sunny"))
    assert tokens.count_tokens([call, answer], "gpt-4o") == expected
    # two calls in one message; a custom tool's input; the legacy function_call
    two = {"role": "assistant", "tool_calls": [call["tool_calls"][0]] * 2 + [
        {"id": "c", "type": "custom", "custom": {"name": "grep", "input": "TODO src/"}}]}
    assert tokens.count_tokens([two], "gpt-4o") == 3 + 3 + n("assistant") + 2 * (
        4 + n("get_current_weather") + n(args)) + 4 + n("grep") + n("TODO src/")
    legacy = {"role": "assistant", "content": None,
              "function_call": {"name": "get_current_weather", "arguments": args}}
    assert tokens.count_tokens([legacy], "gpt-4o") == 3 + 3 + n("assistant") + 4 + n(
        "get_current_weather") + n(args)
    # A measured gpt-3.5-turbo request (community.openai.com/t/538914): the API billed 40.
    forum: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "How much is 2 plus 2?"}]},
        {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {
            "name": "calculator", "arguments": '{"a":2, "b":2}'}}]},
        {"role": "tool", "tool_call_id": "a", "content": "4"},
    ]
    assert tokens.count_tokens(forum, "gpt-3.5-turbo") == 41
    assert tokens.count_tokens(forum + forum[1:] * 2, "gpt-3.5-turbo") - tokens.count_tokens(
        forum + forum[1:], "gpt-3.5-turbo") == 25  # the API: 25 per further call and answer


ODD_TOOLS = [
    {"type": "function", "function": {"name": "ping"}},  # no description, no parameters
    {"type": "function", "function": {"name": "tag", "description": "Tag an item.", "parameters": {
        "type": "object", "properties": {
            "labels": {"type": "array", "items": {"type": "string"}, "description": "Labels."},
            "size": {"type": ["integer", "null"], "enum": [1, 2, None]},
        }, "$defs": {"x": {"type": "string"}}}}},
    {"type": "custom", "custom": {"name": "grep", "description": "Search files, grammar-free."}},
]


def test_tools_beyond_the_cookbook() -> None:
    got = tokens.count_tokens([], "gpt-4o", tools=ODD_TOOLS)
    ping = 7 + n("ping:")
    tag = (7 + n("tag:Tag an item") + 3
           + 3 + n("labels:array:Labels") + n('{"items":{"type":"string"}}')
           + 3 - 3 + 3 * 3 + n("1") + n("2") + n("null") + n("size:integer | null:")
           + n('{"$defs":{"x":{"type":"string"}}}'))
    custom = 7 + n('{"type":"custom","custom":{"name":"grep","description":"Search files, grammar-free."}}')
    assert got == 3 + ping + tag + custom + 12


UPPER_BOUND_CASES = [
    (MESSAGES, None),
    (WEATHER_MESSAGES, WEATHER_TOOLS),
    ([], ODD_TOOLS),
    ([{"role": "user", "content": "é" * 50 + "🕰️" * 50}], [{"type": "function", "function": {
        "name": "f", "description": "日本語" * 20, "parameters": {"type": "object", "properties": {
            "a": {"type": "string", "enum": ["x", "y", "z"] * 10}}}}}]),
    ([{"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                                            "function": {"name": "f", "arguments": "{}"}}] * 3},
      {"role": "tool", "tool_call_id": "a", "content": None},
      {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.io/a.png"}},
                                   {"type": "image_url", "image_url": "data:image/png;base64,AAAA"}]}],
     None),
]


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize(("messages", "tools"), UPPER_BOUND_CASES)
def test_byte_bound_is_never_below_the_count(encoding: str, messages: list, tools: list | None) -> None:
    assert tokens._upper_bound(messages, tools) >= tokens.count_tokens(messages, encoding, tools=tools)


def test_count_tokens_with_an_image_part() -> None:
    import struct
    import zlib

    from llmkit.base.images import image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 2048, 4096, 8, 0, 0, 0, 0))
    photo = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b"")
    for detail, image_tokens in (("high", 1105), ("auto", 1105), ("low", 85)):
        content = [{"type": "text", "text": "What is this?"}, image(photo, detail=detail).part()]
        got = tokens.count_tokens([{"role": "user", "content": content}], "gpt-4o")
        assert got == 3 + 3 + n("user") + n("What is this?") + image_tokens
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    assert tokens.count_tokens([{"role": "user", "content": [remote]}], "gpt-4o") == 3 + 3 + 1 + 1445


def test_check_context_counts_tools_and_images(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small requests are not tokenized, tools or not.
    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("tokenized a request whose bytes fit")

    with monkeypatch.context() as mp:
        mp.setattr(tokens, "count_tokens", refuse)
        assert tokens.check_context(WEATHER_MESSAGES, "gpt-4", tools=WEATHER_TOOLS) is None
    # Tools alone can push a prompt over the limit.
    long_tool = [{"type": "function", "function": {"name": "f", "description": "hello " * 9000}}]
    hi = [{"role": "user", "content": "hi"}]
    assert tokens.check_context(hi, "gpt-4") is None
    with pytest.raises(ContextLengthError, match=r"the prompt is 9,0\d\d tokens, more than the 8,192"):
        tokens.check_context(hi, "gpt-4", tools=long_tool)
    assert tokens.check_context(hi, "gpt-4o", tools=long_tool) == tokens.count_tokens(
        hi, "gpt-4o", tools=long_tool)
    # Six remote images are six unknown sizes: 6 x 1,445 tokens > 8,192, though only bytes long.
    url = {"url": "https://example.com/x.png"}
    six = [{"role": "user", "content": [{"type": "image_url", "image_url": url}] * 6}]
    with pytest.raises(ContextLengthError, match=r"the prompt is 8,677 tokens"):
        tokens.check_context(six, "gpt-4")
    low = [{"role": "user", "content": [{"type": "image_url", "image_url": {**url, "detail": "low"}}] * 6}]
    assert tokens.check_context(low, "gpt-4") == 3 + 3 + 1 + 6 * 85  # over the bound, so counted
