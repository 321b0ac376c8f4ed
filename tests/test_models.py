"""The model table (`llmkit.base.models`) against the committed models.json."""

from __future__ import annotations

import datetime
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from llmkit.base import models, refresh_models
from llmkit.base.errors import ConfigError
from llmkit.base.models import ModelInfo, chat_models, cost, model_info, token_cost

DATA = Path(models.__file__).with_name("models.json")
FIELDS = {"max_input_tokens", "max_output_tokens", "input_price", "cached_input_price",
          "output_price", "reasoning", "mode"}


# --- limits, prices and flags users rely on --------------------------------------------------


def test_gpt5_limits_prices_and_reasoning() -> None:
    info = model_info("gpt-5")
    assert info == ModelInfo("gpt-5", True, "o200k_base", 272_000, 128_000, 1.25, 0.125, 10.0, True, "chat")
    for name in ("gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.2"):
        assert (model_info(name).max_input_tokens, model_info(name).max_output_tokens) == (272_000, 128_000)


@pytest.mark.parametrize("name", ["gpt-5.4", "gpt-5.5"])
def test_million_token_models(name: str) -> None:
    info = model_info(name)
    assert info.known and info.max_input_tokens is not None and info.max_input_tokens >= 1_000_000
    assert info.max_output_tokens == 128_000


def test_gpt54_prices() -> None:
    info = model_info("gpt-5.4")
    assert (info.input_price, info.cached_input_price, info.output_price) == (2.5, 0.25, 15.0)


def test_dated_snapshot_has_its_own_price_before_the_alias() -> None:
    old = model_info("gpt-4o-2024-05-13")
    assert (old.name, old.input_price, old.output_price, old.cached_input_price) == (
        "gpt-4o-2024-05-13", 5.0, 15.0, None)
    assert old.max_output_tokens == 4096
    alias = model_info("gpt-4o")
    assert (alias.input_price, alias.cached_input_price, alias.output_price) == (2.5, 1.25, 10.0)


@pytest.mark.parametrize(("dated", "alias"), [
    ("gpt-4o-2099-01-01", "gpt-4o"),
    ("gpt-4o-mini-2099-12-31", "gpt-4o-mini"),
    ("gpt-3.5-turbo-0613", "gpt-3.5-turbo"),
    ("gpt-4-0314", "gpt-4"),
])
def test_dated_name_absent_from_the_table_falls_back_to_its_alias(dated: str, alias: str) -> None:
    assert dated not in json.loads(DATA.read_text())["models"]
    assert model_info(dated) == model_info(alias)
    assert model_info(dated).name == alias


@pytest.mark.parametrize("name", ["gpt-5.1", "gpt-5.2", "gpt-5.3-chat-latest", "gpt-5.4", "gpt-5.5",
                                  "gpt-5-pro", "o3-pro", "gpt-5.4-pro", "gpt-5.5-pro"])
def test_recent_models_have_prices(name: str) -> None:
    info = model_info(name)
    assert info.known
    assert info.input_price is not None and info.input_price > 0
    assert info.output_price is not None and info.output_price > info.input_price


def test_reasoning_flag() -> None:
    assert model_info("gpt-4o-mini").reasoning is False
    assert model_info("gpt-4.1").reasoning is False
    assert model_info("o3").reasoning is True
    assert model_info("o4-mini").reasoning is True
    assert model_info("o4-mini-2025-04-16").reasoning is True


def test_responses_only_models_are_marked() -> None:
    assert model_info("gpt-5-pro").mode == "responses"
    assert model_info("o3-pro").mode == "responses"
    assert model_info("gpt-5").mode == "chat"
    assert model_info("text-embedding-3-small").mode == "embedding"


# --- names: case, provider prefixes, Azure spelling, fine-tunes, encodings ----------------------


@pytest.mark.parametrize(("name", "encoding", "entry"), [
    ("gpt-4o", "o200k_base", "gpt-4o"),
    ("GPT-4o", "o200k_base", "gpt-4o"),
    ("openai/gpt-4o", "o200k_base", "gpt-4o"),
    ("azure/gpt-4o-mini", "o200k_base", "gpt-4o-mini"),
    ("ft:gpt-4o-mini-2024-07-18:org::abc", "o200k_base", "gpt-4o-mini-2024-07-18"),
    ("gpt-4.1-nano", "o200k_base", "gpt-4.1-nano"),
    ("gpt-5.4-mini", "o200k_base", "gpt-5.4-mini"),
    ("o3-mini", "o200k_base", "o3-mini"),
    ("o1", "o200k_base", "o1"),
    ("gpt-4", "cl100k_base", "gpt-4"),
    ("gpt-4-turbo", "cl100k_base", "gpt-4-turbo"),
    ("gpt-3.5-turbo", "cl100k_base", "gpt-3.5-turbo"),
    ("gpt-35-turbo", "cl100k_base", "gpt-3.5-turbo"),
    ("azure/gpt-35-turbo-0125", "cl100k_base", "gpt-3.5-turbo-0125"),
    ("text-embedding-3-small", "cl100k_base", "text-embedding-3-small"),
    ("text-embedding-ada-002", "cl100k_base", "text-embedding-ada-002"),
])
def test_encoding_and_entry(name: str, encoding: str, entry: str) -> None:
    info = model_info(name)
    assert (info.known, info.encoding, info.name) == (True, encoding, entry)


def test_azure_gpt35_spelling_has_the_openai_limits() -> None:
    assert model_info("gpt-35-turbo").max_input_tokens == 16_385
    assert model_info("gpt-35-turbo") == model_info("gpt-3.5-turbo")


def test_unknown_model() -> None:
    info = model_info("smollm2-135m-instruct")
    assert info == ModelInfo("smollm2-135m-instruct", False, "o200k_base",
                             None, None, None, None, None, False, None)


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base", "p50k_base", "r50k_base", "gpt2",
                                      "o200k_harmony"])
def test_encoding_name_as_model(encoding: str) -> None:
    info = model_info(encoding)
    assert (info.known, info.encoding, info.max_input_tokens, info.input_price) == (
        False, encoding, None, None)


@pytest.mark.parametrize(("bad", "kind"), [(4, "int"), (None, "NoneType"), (["gpt-4o"], "list")])
def test_non_string_model_is_a_config_error(bad: Any, kind: str) -> None:
    with pytest.raises(ConfigError, match=rf"model must be a model name \(str\), got {kind}$"):
        model_info(bad)


def test_model_info_is_memoised() -> None:
    assert model_info("gpt-4o-mini") is model_info("gpt-4o-mini")
    assert model_info("nobody-knows-me") is model_info("nobody-knows-me")


def test_table_is_loaded_once_under_concurrent_first_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = models._DATA

    class CountingPath:
        def read_text(self, encoding: str) -> str:
            reads.append(1)
            return real.read_text(encoding=encoding)

    monkeypatch.setattr(models, "_DATA", CountingPath())
    monkeypatch.setattr(models, "_table", None)
    models._lookup.cache_clear()
    barrier = threading.Barrier(8)
    found: list[int | None] = []

    def lookup(i: int) -> None:
        barrier.wait()
        found.append(model_info(f"GPT-5-{2000 + i}-01-01").max_input_tokens)

    threads = [threading.Thread(target=lookup, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    models._lookup.cache_clear()
    assert found == [272_000] * 8
    assert reads == [1]


# --- cost --------------------------------------------------------------------------------------


def test_cost_counts_cached_tokens_at_the_cached_price() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
             "prompt_tokens_details": {"cached_tokens": 800}}
    # 200 * 1.25 + 800 * 0.125 + 100 * 10 = 1350 USD per 1M
    assert cost("gpt-5", usage) == pytest.approx(0.00135)
    assert cost("gpt-5", {"prompt_tokens": 1000, "completion_tokens": 100}) == pytest.approx(0.00225)


def test_cost_without_a_cached_price_charges_cached_tokens_at_the_input_price() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 800}}
    assert cost("gpt-4o-2024-05-13", usage) == pytest.approx((1000 * 5 + 100 * 15) / 1e6)


def test_cost_of_a_dated_snapshot_and_an_embedding() -> None:
    assert cost("gpt-4o-2024-05-13", {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}) == 20.0
    assert cost("text-embedding-3-small", {"prompt_tokens": 500_000, "total_tokens": 500_000}) == (
        pytest.approx(0.01))


@pytest.mark.parametrize("usage", [
    None,
    {},
    {"prompt_tokens": "many", "completion_tokens": 10},
    {"prompt_tokens": 10, "completion_tokens": None},
    {"prompt_tokens": True, "completion_tokens": 10},
    {"prompt_tokens": 10.0, "completion_tokens": 10},
    {"prompt_tokens": -1, "completion_tokens": 10},
    {"prompt_tokens": 10, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": "x"}},
    {"prompt_tokens": 10, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}},
    ["prompt_tokens"],
])
def test_cost_of_malformed_usage_is_none(usage: Any) -> None:
    assert cost("gpt-5", usage) is None


def test_cost_tolerates_null_details() -> None:
    for details in (None, {"cached_tokens": None}):
        usage = {"prompt_tokens": 10, "completion_tokens": 0, "prompt_tokens_details": details}
        assert cost("gpt-5", usage) == pytest.approx(10 * 1.25 / 1e6)


def test_cost_of_an_unknown_model_is_none() -> None:
    assert cost("smollm2-135m-instruct", {"prompt_tokens": 10, "completion_tokens": 10}) is None
    assert cost("o200k_base", {"prompt_tokens": 10, "completion_tokens": 10}) is None


# --- chat_models --------------------------------------------------------------------------------


def test_chat_models_for_the_playground() -> None:
    names = chat_models()
    assert {"gpt-5", "gpt-5-mini", "gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini"} <= set(names)
    assert len(names) == len(set(names))
    assert not [n for n in names if re.search(r"-(\d{4}-\d{2}-\d{2}|\d{4})$", n)]
    assert "text-embedding-3-small" not in names  # embedding
    assert "gpt-5-pro" not in names and "o3-pro" not in names  # Responses API only
    assert all(model_info(n).mode == "chat" for n in names)
    assert names.index("gpt-5.5") < names.index("gpt-5") < names.index("gpt-4.1") < names.index("gpt-4o")
    assert names.index("gpt-4o") < names.index("gpt-4") < names.index("gpt-3.5-turbo") < names.index("o3")


def test_chat_models_with_the_responses_only_ones() -> None:
    names = chat_models(responses=True)
    only = set(names) - set(chat_models())
    assert {"o3-pro", "gpt-5-pro", "o1-pro"} <= only
    assert all(model_info(n).mode == "responses" for n in only)
    assert set(chat_models()) < set(names) and "text-embedding-3-small" not in names
    assert len(names) == len(set(names))
    assert not [n for n in names if re.search(r"-(\d{4}-\d{2}-\d{2}|\d{4})$", n)]
    assert names.index("gpt-5-pro") < names.index("gpt-4o") < names.index("o3-pro")


# --- models.json -----------------------------------------------------------------------------


def test_models_json_header_and_entries() -> None:
    text = DATA.read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["source"] == "LiteLLM model_prices_and_context_window_backup.json (MIT)"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", data["litellm_version"])
    datetime.date.fromisoformat(data["refreshed"])
    table = data["models"]
    assert len(table) > 50 and list(table) == sorted(table)  # deterministic: sorted, one a line
    assert len(text.splitlines()) == len(table) + 7
    for name, entry in table.items():
        assert name == name.lower() and "/" not in name and not name.startswith("ft:"), name
        assert set(entry) == FIELDS, name
        for key in ("max_input_tokens", "max_output_tokens"):
            assert entry[key] is None or (type(entry[key]) is int and entry[key] > 0), name
        for key in ("input_price", "cached_input_price", "output_price"):
            assert entry[key] is None or (type(entry[key]) is float and entry[key] >= 0), name
        assert type(entry["reasoning"]) is bool, name
        assert entry["mode"] in {"chat", "responses", "embedding"}, name
        assert not re.search(r"audio|realtime|image|tts|transcri|moderation", name), name


def test_refresh_selects_and_renders() -> None:
    def spec(provider: str, mode: str = "chat", price: float = 1e-06) -> dict[str, Any]:
        return {"litellm_provider": provider, "mode": mode, "max_input_tokens": 1000,
                "max_output_tokens": 100, "input_cost_per_token": price,
                "output_cost_per_token": 3 * price, "supports_reasoning": True}

    data: dict[str, Any] = {
        "sample_spec": {"mode": "chat"},
        "gpt-x": {**spec("openai"), "cache_read_input_token_cost": 1.25e-07},
        "gpt-x-pro": spec("openai", "responses"),
        "text-embedding-x": {**spec("openai", "embedding"), "max_output_tokens": None},
        "gpt-x-audio-preview": spec("openai"),
        "gpt-x-image": spec("openai", "image_generation"),
        "ft:gpt-x": spec("openai"),
        "openai/container": spec("openai"),
        "azure/gpt-x": spec("azure", price=9e-06),
        "azure/eu/gpt-x": spec("azure", price=9e-06),
        "azure/gpt-35-x": spec("azure"),
        "gpt-3.5-x": spec("openai"),
        "azure/gpt-x-azure-only": spec("azure"),
        "azure/mistral-large": spec("azure"),
        "claude-x": spec("anthropic"),
    }
    kept = refresh_models.select(data)
    assert sorted(kept) == ["gpt-3.5-x", "gpt-x", "gpt-x-azure-only", "gpt-x-pro", "text-embedding-x"]
    assert kept["gpt-x"] == {"max_input_tokens": 1000, "max_output_tokens": 100, "input_price": 1.0,
                             "cached_input_price": 0.125, "output_price": 3.0, "reasoning": True,
                             "mode": "chat"}
    assert kept["gpt-x-pro"]["mode"] == "responses"
    assert kept["text-embedding-x"]["max_output_tokens"] is None
    text = refresh_models.render(kept, "9.9.9", "2030-01-02")
    assert refresh_models.render(dict(reversed(kept.items())), "9.9.9", "2030-01-02") == text
    data_out = json.loads(text)
    assert (data_out["litellm_version"], data_out["refreshed"]) == ("9.9.9", "2030-01-02")
    assert data_out["models"] == kept


def test_token_cost_never_gives_a_negative_or_infinite_amount() -> None:
    assert token_cost("gpt-5", 1000, 100) == pytest.approx(cost("gpt-5", {
        "prompt_tokens": 1000, "completion_tokens": 100}))
    assert token_cost("gpt-5", 10**400, 0) is None  # too large for a float
    assert cost("gpt-5", {"prompt_tokens": 10**400, "completion_tokens": 0}) is None
    assert token_cost("gpt-5", -10, 0) is None
    assert token_cost("my-own-model", 10, 10) is None
