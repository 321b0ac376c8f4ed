"""BUDGET_USD and DAILY_BUDGET_USD (`llmkit.clients.budget`): a call that could pass a budget is
refused before anything is sent, against the real test server."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import llmkit
from llmkit import BudgetExceededError, LLMCall, OpenAIClient
from llmkit.base.errors import HistoryWarning
from llmkit.base.history_db import RUN_COLUMNS
from llmkit.base.ledger import Ledger
from llmkit.base.models import token_cost
from llmkit.base.tokens import count_text
from llmkit.clients import budget, history
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


def test_daily_budget_holds_without_the_history(llm: OpenAITestServer, isolated: Path) -> None:
    llmkit.force_default_value("history", False)
    each = worst(max_tokens=50)
    llmkit.force_default_value("daily_budget_usd", each * 2.5)
    llm.reply("ok", usage=usage_costing(each, completion_tokens=50), times=3)
    OpenAIClient().complete(HELLO, max_tokens=50, cache=False)
    OpenAIClient().complete(HELLO, max_tokens=50, cache=False)
    with pytest.raises(BudgetExceededError, match=r"has been spent today.*DAILY_BUDGET_USD"):
        OpenAIClient().complete(HELLO, max_tokens=50, cache=False)
    assert len(llm.requests) == 2
    assert Ledger(isolated / "cache" / "ledger.sqlite3").spent() == (pytest.approx(2 * each), 0.0)
    assert not (isolated / "cache" / "history.sqlite3").exists()


OTHER_PROCESS = """
import sys
sys.path.insert(0, {root!r})
import llmkit
llmkit.OpenAIClient().complete([{{"role": "user", "content": "another kernel"}}], max_tokens=10)
from llmkit.clients import budget, history
print(budget.spent())
"""


@pytest.mark.slow
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


# --- DAILY_BUDGET_USD across processes: one shared ledger, held before sending -------------------

MAP_IN_ANOTHER_KERNEL = """
import json, sys
sys.path.insert(0, {root!r})
import llmkit
from llmkit.clients import budget, history
print("ready", flush=True)
sys.stdin.readline()  # all four start together
results = llmkit.LLMCall("s", "row {{{{ n }}}}", max_tokens=20).map(
    [{{"n": c}} for c in "abcdefghijkl"], progress=False)
failed = [r for r in results if isinstance(r, llmkit.FailedRow)]
print(json.dumps({{"sent": len(results) - len(failed), "spent": budget.spent(),
                  "refused": sorted({{type(r.error).__name__ for r in failed}}),
                  "messages": [str(r.error) for r in failed][:1]}}))
"""


def test_four_kernels_mapping_together_stay_within_the_daily_budget(
        llm: OpenAITestServer, isolated: Path) -> None:
    rows = [[{"role": "system", "content": "s"}, {"role": "user", "content": f"row {c}"}]
            for c in "abcdefghijkl"]
    each = worst(rows[0], max_tokens=20)
    assert {worst(r, max_tokens=20) for r in rows} == {each}  # every row's worst case is the same
    daily = each * 10.5  # ten calls fit, of 48
    llm.reply("ok", usage=usage_costing(each, completion_tokens=20), times=48)  # real = estimate
    llm.latency = 0.2  # calls overlap, within and across processes
    env = {**os.environ, "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": SECRET,
           "LLMKIT_DAILY_BUDGET_USD": repr(daily), "LLMKIT_CACHE_API_CALLS": "false",
           "LLMKIT_HISTORY": "false"}
    code = MAP_IN_ANOTHER_KERNEL.format(root=str(Path(__file__).resolve().parents[1]))
    kernels = [subprocess.Popen([sys.executable, "-c", code], env=env, text=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    try:
        for kernel in kernels:
            assert kernel.stdout is not None and kernel.stdout.readline() == "ready\n"
        for kernel in kernels:
            assert kernel.stdin is not None
            kernel.stdin.write("go\n")
            kernel.stdin.flush()
        outcomes = []
        for kernel in kernels:
            out, err = kernel.communicate(timeout=300)
            assert kernel.returncode == 0, err
            outcomes.append(json.loads(out.splitlines()[-1]))
    finally:
        for kernel in kernels:
            kernel.kill() if kernel.poll() is None else None
    ledger_spent, held = Ledger(isolated / "cache" / "ledger.sqlite3").spent()
    assert held == 0
    assert ledger_spent <= daily + each  # was 2.4x over with the history as the ledger
    assert ledger_spent == pytest.approx(sum(o["spent"] for o in outcomes))
    assert sum(o["sent"] for o in outcomes) == 10 == len(llm.requests)
    assert ledger_spent == pytest.approx(10 * each, rel=1e-3)
    assert all(o["refused"] == ["BudgetExceededError"] for o in outcomes if o["sent"] < 12)
    assert "has been spent today" in next(o["messages"][0] for o in outcomes if o["messages"])
    assert llm.peak_concurrency > 1


def test_daily_budget_fails_closed_when_the_ledger_cannot_be_written(
        llm: OpenAITestServer, isolated: Path) -> None:
    ledger = isolated / "cache" / "ledger.sqlite3"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(b"this is not a ledger\n" * 200)  # damaged, or not ours
    llmkit.force_default_value("daily_budget_usd", 5)
    with pytest.raises(BudgetExceededError) as info:
        OpenAIClient().complete(HELLO, max_tokens=10)
    message = str(info.value)
    assert f"the spend ledger {ledger} cannot be written" in message and "nothing was sent" in message
    assert "delete it" in message and "LEDGER_PATH" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    ledger.unlink()
    ledger.mkdir()  # a folder where the file belongs
    with pytest.raises(BudgetExceededError, match="cannot be written"):
        OpenAIClient().complete(HELLO, max_tokens=10)
    assert llm.requests == []
    llmkit.force_default_value("ledger_path", str(isolated / "elsewhere.sqlite3"))
    OpenAIClient().complete(HELLO, max_tokens=10)  # another file: counted there
    assert Ledger(isolated / "elsewhere.sqlite3").spent()[0] > 0
    llmkit.force_default_value("ledger_path", None)
    llmkit.force_default_value("daily_budget_usd", None)
    OpenAIClient().complete([{"role": "user", "content": "no budget"}], max_tokens=10)  # not needed
    assert len(llm.requests) == 2


@pytest.mark.parametrize("planted", ["'plenty'", "-5.0", "1e999"])
def test_a_tampered_ledger_is_refused(llm: OpenAITestServer, isolated: Path, planted: str) -> None:
    llmkit.force_default_value("daily_budget_usd", 5)
    OpenAIClient().complete(HELLO, max_tokens=10)
    path = isolated / "cache" / "ledger.sqlite3"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"UPDATE spent SET usd = {planted}")  # a negative spend would leave more room
    with pytest.raises(BudgetExceededError, match=r"where an amount in USD belongs"):
        OpenAIClient().complete([{"role": "user", "content": "more"}], max_tokens=10)
    assert len(llm.requests) == 1


def test_daily_budget_and_recording_survive_a_planted_history_row(
        llm: OpenAITestServer, isolated: Path) -> None:
    """A row planted with the largest id once made every later insert fail, and the daily budget
    (read from the history) stopped counting. The ledger does not read the history, and the
    history does not need ids to grow."""
    each = worst(max_tokens=50)
    llm.reply("ok", usage=usage_costing(each, completion_tokens=50), times=4)
    OpenAIClient().complete(HELLO, max_tokens=50, cache=False)  # creates the history
    history.flush()
    with closing(sqlite3.connect(isolated / "cache" / "history.sqlite3")) as db, db:
        columns = ", ".join(RUN_COLUMNS)
        db.execute(f"INSERT INTO runs (id, {columns}, answer_id) "
                   f"SELECT {2**63 - 1}, {columns}, answer_id FROM runs")
    llmkit.force_default_value("daily_budget_usd", each * 2.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HistoryWarning)  # recording must not fail
        OpenAIClient().complete(HELLO, max_tokens=50, cache=False)
        OpenAIClient().complete(HELLO, max_tokens=50, cache=False)
        with pytest.raises(BudgetExceededError, match=r"has been spent today"):
            OpenAIClient().complete(HELLO, max_tokens=50, cache=False)
        history.flush()
    assert len(llm.requests) == 3  # the first call was made before the budget was set
    recorded = llmkit.history(limit=None)
    assert len(recorded) == 5  # 1 + the planted copy + 2 answers + 1 refusal
    assert recorded[0].error == "BudgetExceededError"


def test_a_cost_that_cannot_be_written_is_kept_and_written_with_the_next_call(
        llm: OpenAITestServer, isolated: Path) -> None:
    llmkit.force_default_value("daily_budget_usd", 5)
    hold = budget.reserve(OpenAIClient().prepare(HELLO, max_tokens=10))
    ledger = isolated / "cache" / "ledger.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    ledger.mkdir()  # the answer came, and now the ledger cannot be written
    with pytest.warns(llmkit.LLMKitWarning, match=r"could not be written.*\$0\.0100 is kept"):
        budget.settle(hold, 0.01)
    with pytest.raises(BudgetExceededError, match="cannot be written"):
        OpenAIClient().complete(HELLO, max_tokens=10)
    ledger.rmdir()
    OpenAIClient().complete(HELLO, max_tokens=10)
    assert budget.spent() > 0.01  # the kept $0.01 and the call just made
    assert Ledger(ledger).spent() == (pytest.approx(budget.spent()), 0.0)  # both are in the ledger
