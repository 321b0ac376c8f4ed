"""The price table and cost estimates."""

from __future__ import annotations

import pytest

from llmkit.base.errors import LLMKitError
from llmkit.base.pricing import PRICES, estimate_cost, format_cost, price_of


def test_cost_is_tokens_times_price_per_million() -> None:
    assert estimate_cost("gpt-4o", 1000, 500) == pytest.approx((1000 * 2.50 + 500 * 10.00) / 1e6)
    assert estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.15 + 0.60)
    assert estimate_cost("text-embedding-3-small", 2_000_000, 0) == pytest.approx(0.04)
    assert estimate_cost("gpt-4.1", 0, 0) == 0.0


def test_the_issue_models_are_priced() -> None:
    for model in ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5",
                  "gpt-5-mini", "o3", "o4-mini", "gpt-3.5-turbo", "text-embedding-3-small",
                  "text-embedding-3-large"]:
        assert price_of(model) == PRICES[model]


@pytest.mark.parametrize(("model", "base"), [
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longer base wins, not gpt-4o
    ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("gpt-4-0613", "gpt-4"),
    ("GPT-4o", "gpt-4o"),
    ("azure/gpt-35-turbo", "gpt-3.5-turbo"),
    ("openai/o4-mini", "o4-mini"),
])
def test_snapshots_and_spellings_cost_what_their_base_costs(model: str, base: str) -> None:
    assert price_of(model) == PRICES[base]


@pytest.mark.parametrize("model", ["smollm2-135m-instruct", "llama-3.1-8b", "gpt-4o-audio-preview",
                                   "gpt-4-1106-preview", "ft:gpt-4o-mini-2024-07-18:acme::abc", "",
                                   "gpt-4o-minix", "o3x"])
def test_unknown_models_have_no_estimate(model: str) -> None:
    assert estimate_cost(model, 100, 100) is None
    assert format_cost(estimate_cost(model, 100, 100)) == "n/a"


def test_the_table_is_the_one_place_prices_live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PRICES, "my-model", (1.0, 2.0))
    assert estimate_cost("my-model-2030-01-01", 1_000_000, 1_000_000) == pytest.approx(3.0)


def test_format_cost() -> None:
    assert format_cost(0.000021) == "$0.000021"
    assert format_cost(0.0) == "$0.000000"
    assert format_cost(12.345) == "$12.35"


@pytest.mark.parametrize(("args", "named"), [
    (("gpt-4o", -1, 0), "prompt_tokens"),
    (("gpt-4o", 10, 2.5), "completion_tokens"),
    (("gpt-4o", "10", 0), "prompt_tokens"),
    ((None, 1, 1), "model"),
])
def test_bad_input_names_the_argument(args: tuple, named: str) -> None:
    with pytest.raises(LLMKitError, match=named):
        estimate_cost(*args)
