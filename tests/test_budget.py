"""BUDGET_USD and DAILY_BUDGET_USD (`llmkit.clients.budget`): a call that could pass a budget is
refused before anything is sent, against the real test server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import llmkit
from llmkit import BudgetExceededError, LLMCall, OpenAIClient
from llmkit.base.errors import ConfigError
from llmkit.base.models import token_cost
from llmkit.base.tokens import count_text
from llmkit.clients import budget
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

HELLO = [{"role": "user", "content": "hello there"}]
MINI = llmkit.model_info("gpt-4o-mini")


def worst(messages: list[dict[str, Any]] = HELLO, **params: Any) -> float:
    estimate = budget.estimate(OpenAIClient().prepare(messages, **params))
    assert estimate is not None
    return estimate


def usage_costing(usd: float, completion_tokens: int = 0) -> dict[str, int]:
    """A usage whose cost at gpt-4o-mini's prices is ``usd`` (to the nearest prompt token)."""
    assert MINI.input_price is not None and MINI.output_price is not None
    prompt = round((usd * 1e6 - completion_tokens * MINI.output_price) / MINI.input_price)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens}


def test_estimate_is_prompt_tokens_plus_the_output_limit(llm: OpenAITestServer) -> None:
    assert MINI.input_price is not None and MINI.output_price is not None
    prompt = llmkit.count_tokens(HELLO, "gpt-4o-mini")
    assert worst(max_tokens=100) == pytest.approx((prompt * MINI.input_price
                                                   + 100 * MINI.output_price) / 1e6)
    configured = OpenAIClient().prepare(HELLO).request["max_tokens"]  # MAX_TOKENS in config.ini
    assert worst() == pytest.approx((prompt * MINI.input_price
                                     + configured * MINI.output_price) / 1e6)
    assert budget.estimate(OpenAIClient().prepare(HELLO, model="my-local-model")) is None


def test_refused_before_anything_is_sent_and_says_what_to_change(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("budget_usd", worst(max_tokens=100) / 2)
    with pytest.raises(BudgetExceededError) as info:
        OpenAIClient().complete(HELLO, max_tokens=100)
    assert llm.requests == []
    message = str(info.value)
    assert "nothing was sent" in message and "gpt-4o-mini" in message
    assert "Raise BUDGET_USD" in message and "max_tokens" in message
    (run,) = llmkit.history()
    assert run.error == "BudgetExceededError" and run.cost == 0
    assert budget.spent() == 0


def test_a_call_within_the_budget_goes_and_counts_its_real_cost(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("budget_usd", 0.01)
    llm.reply("expensive", usage=usage_costing(0.015))  # more than the estimate: the server decides
    OpenAIClient().complete(HELLO, max_tokens=10)
    assert budget.spent() == pytest.approx(0.015, rel=1e-3)
    with pytest.raises(BudgetExceededError, match=r"has spent \$0\.0150"):
        OpenAIClient().complete([{"role": "user", "content": "again"}], max_tokens=10)
    assert len(llm.requests) == 1


def test_threads_cannot_overspend_together(llm: OpenAITestServer) -> None:
    each = worst(max_tokens=50)
    llmkit.force_default_value("budget_usd", each * 3.5)
    llm.reply("ok", usage=usage_costing(each, completion_tokens=50), times=8)  # real = estimate
    llm.latency = 0.05  # calls overlap: eight are in flight before any is settled
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def one() -> None:
        start.wait()
        try:
            OpenAIClient().complete(HELLO, max_tokens=50, cache=False)
            outcomes.append("sent")
        except BudgetExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["sent"] * 3
    assert len(llm.requests) == 3
    assert budget.spent() == pytest.approx(each * 3, rel=1e-3) and budget.spent() <= each * 3.5


def test_a_failed_call_gives_its_reservation_back(llm: OpenAITestServer) -> None:
    each = worst(max_tokens=50)
    llmkit.force_default_value("budget_usd", each * 1.5)
    llm.fail(400)
    with pytest.raises(llmkit.InvalidRequestError):
        OpenAIClient().complete(HELLO, max_tokens=50)
    OpenAIClient().complete(HELLO, max_tokens=50)  # the whole budget is there again
    assert len(llm.requests) == 2


def test_cached_calls_are_never_refused(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "{{ q }}", max_tokens=50)
    first = call.run({"q": "keep me"})
    llmkit.force_default_value("budget_usd", 0)
    assert call.run({"q": "keep me"}) == first
    with pytest.raises(BudgetExceededError):
        call.run({"q": "new"})
    assert len(llm.requests) == 1


def test_a_model_without_a_price_is_refused_when_a_budget_is_set(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("budget_usd", 100)
    with pytest.raises(BudgetExceededError) as info:
        OpenAIClient().send_message(HELLO, model="my-own-model")
    assert str(info.value).startswith("llmkit has no price for 'my-own-model', so this call cannot "
                                      "be kept within BUDGET_USD; nothing was sent.")
    assert "unset BUDGET_USD" in str(info.value)
    llmkit.force_default_value("daily_budget_usd", 100)
    with pytest.raises(BudgetExceededError, match="within BUDGET_USD and DAILY_BUDGET_USD"):
        OpenAIClient().send_message(HELLO, model="my-own-model")
    assert llm.requests == []
    llmkit.force_default_value("budget_usd", None)
    llmkit.force_default_value("daily_budget_usd", None)
    assert OpenAIClient().send_message(HELLO, model="my-own-model")["content"] == "echo: hello there"
    run = llmkit.history()[0]
    assert run.cost is None and llmkit.spend()[0]["unpriced"] == 1


def test_map_rows_past_the_budget_fail_on_their_own(llm: OpenAITestServer) -> None:
    each = worst([{"role": "system", "content": "s"}, {"role": "user", "content": "row 0"}],
                 max_tokens=20)
    llmkit.force_default_value("budget_usd", each * 2.5)
    llm.reply("ok", usage=usage_costing(each, completion_tokens=20), times=5)
    results = LLMCall("s", "row {{ n }}", max_tokens=20).map([{"n": i} for i in range(5)],
                                                            progress=False)
    failed = [r for r in results if isinstance(r, llmkit.FailedRow)]
    assert len(failed) == 3 and all(isinstance(r.error, BudgetExceededError) for r in failed)
    assert len(llm.requests) == 2


def test_embeddings_are_budgeted_too(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("budget_usd", 1e-9)
    with pytest.raises(BudgetExceededError):
        OpenAIClient().get_embedding(["many words " * 50], model="text-embedding-3-small")
    assert llm.requests == []


def test_daily_budget_needs_the_history(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("history", False)
    llmkit.force_default_value("daily_budget_usd", 1)
    with pytest.raises(ConfigError, match=r"DAILY_BUDGET_USD.*HISTORY=False"):
        OpenAIClient().complete(HELLO, max_tokens=10)
    assert llm.requests == []


OTHER_PROCESS = """
import sys
sys.path.insert(0, {root!r})
import llmkit
llmkit.OpenAIClient().complete([{{"role": "user", "content": "another kernel"}}], max_tokens=10)
from llmkit.clients import budget
print(budget.spent())
"""


def test_daily_budget_counts_what_another_process_spent(llm: OpenAITestServer, tmp_path: Path) -> None:
    target = tmp_path / "shared.sqlite3"
    llm.reply("pricey", usage=usage_costing(0.2))
    env = {**os.environ, "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": SECRET,
           "LLMKIT_HISTORY_PATH": str(target), "LLMKIT_DAILY_BUDGET_USD": "0.25"}
    code = OTHER_PROCESS.format(root=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) == pytest.approx(0.2, rel=1e-3)

    llmkit.force_default_value("history_path", str(target))
    llmkit.force_default_value("daily_budget_usd", 0.205)
    assert budget.spent() == 0  # this process has paid nothing...
    cheap = worst(max_tokens=10)
    assert cheap < 0.05
    OpenAIClient().complete(HELLO, max_tokens=10)  # ...and there is room for a small call,
    with pytest.raises(BudgetExceededError, match=r"\$0\.2000 has been spent today.*DAILY_BUDGET_USD"):
        OpenAIClient().complete([{"role": "user", "content": "big"}], max_tokens=16_000)
    assert len(llm.requests) == 2  # the other process's and the small one
    llmkit.force_default_value("daily_budget_usd", 1)
    OpenAIClient().complete([{"role": "user", "content": "big"}], max_tokens=16_000)
    assert llmkit.spend(since="1d").cost == pytest.approx(0.2 + budget.spent(), rel=1e-3)


# --- a server without usage: priced from llmkit's own counts, never $0 ---------------------------

def own_cost(prompt_messages: list[dict[str, Any]], answer: str, model: str = "gpt-4o-mini") -> float:
    usd = token_cost(model, llmkit.count_tokens(prompt_messages, model), count_text(answer, model))
    assert usd is not None and usd > 0
    return usd


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", ["missing", "null", "negative"])
def test_an_answer_without_valid_usage_is_priced_from_llmkits_counts(
        llm: OpenAITestServer, fault: str, stream: bool) -> None:
    llmkit.force_default_value("budget_usd", 1)
    llm.usage_fault(fault)
    completion = OpenAIClient().complete(HELLO, max_tokens=50, stream=stream)
    assert completion.text == "echo: hello there" and completion.usage == {}
    assert completion.cost_estimated
    assert completion.cost == pytest.approx(own_cost(HELLO, "echo: hello there"))
    assert completion.paid == completion.cost and budget.spent() == pytest.approx(completion.cost)
    (run,) = llmkit.history()
    assert run.cost == pytest.approx(completion.cost)


def test_an_answer_with_usage_is_priced_from_it(llm: OpenAITestServer) -> None:
    llm.reply("ok", usage=usage_costing(0.001))
    completion = OpenAIClient().complete(HELLO, max_tokens=50)
    assert not completion.cost_estimated and completion.cost == pytest.approx(0.001, rel=1e-3)


def test_a_proxy_without_usage_cannot_spend_without_limit(llm: OpenAITestServer) -> None:
    rows = [[{"role": "user", "content": f"row {i}"}] for i in range(10)]
    each, worst_case = own_cost(rows[0], "echo: row 0"), worst(rows[0], max_tokens=20)
    llmkit.force_default_value("budget_usd", worst_case + 2.5 * each)
    llm.usage_fault("missing", times=10)
    sent = 0
    for messages in rows:
        try:
            OpenAIClient().complete(messages, max_tokens=20)
            sent += 1
        except BudgetExceededError:
            pass
    assert sent == 3 and len(llm.requests) == 3  # was: all 10 sent, spend stayed $0
    assert budget.spent() == pytest.approx(3 * each) and budget.spent() <= worst_case + 2.5 * each


def test_embeddings_without_usage_are_priced_from_their_input(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("budget_usd", 1)
    llm.usage_fault("null")
    OpenAIClient().get_embedding(["some words to embed", "more"], model="text-embedding-3-small")
    expected = token_cost("text-embedding-3-small", sum(
        count_text(t, "text-embedding-3-small") for t in ("some words to embed", "more")), 0)
    assert expected is not None and expected > 0
    assert budget.spent() == pytest.approx(expected)
    (run,) = llmkit.history()
    assert run.cost == pytest.approx(expected)
