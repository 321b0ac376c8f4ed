"""One vocabulary for money: what every display (Result footer, progress line, history, spend) shows."""

from __future__ import annotations

import pytest

from llmkit.base.money import format_cost


@pytest.mark.parametrize(("cost", "shown"), [
    (None, "price unknown"), (0.0, "$0"), (0.0012, "$0.0012"), (0.001200, "$0.0012"),
    (0.00015, "$0.00015"), (0.001, "$0.001"), (0.0123456, "$0.012"), (0.5, "$0.50"),
    (0.00999, "$0.01"), (2.5, "$2.50"), (12.345, "$12.35"), (1234.5, "$1,234.50"),
    (0.00000015, "$0.00000015")])
def test_amounts_are_rounded_to_what_matters(cost: float | None, shown: str) -> None:
    assert format_cost(cost) == shown


def test_an_estimated_amount_says_so_and_free_stays_free() -> None:
    assert format_cost(0.0012, estimated=True) == "≈ $0.0012 (estimated)"
    assert format_cost(0.0, estimated=True) == "$0"
    assert format_cost(None, estimated=True) == "price unknown"


def test_the_spend_table_uses_the_same_words() -> None:
    from llmkit.base.runs import Spend
    shown = repr(Spend([{"model": "local", "runs": 2, "total_tokens": 100, "cost": 0.0},
                        {"model": "gpt-4o", "runs": 1, "total_tokens": 10, "cost": 0.00123}], "model"))
    first, second, total = shown.splitlines()
    assert first.startswith("gpt-4o") and first.endswith("tokens  $0.0012")
    assert second.startswith("local") and second.endswith("tokens  $0")
    assert total.startswith("total") and total.endswith("$0.0012")
