"""LLMCall.map / amap against the test server: order, partial failure, resume, rate limits, progress."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import re
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import llmkit
from llmkit import LLMCall, Result
from llmkit.base.errors import ConfigError, InvalidRequestError, LLMKitWarning, MissingVariableError
from llmkit.base.models import cost as model_cost
from llmkit.base.money import format_cost
from llmkit.calls.batch import FailedRow, last_batch
from llmkit.notebook.progress import Progress
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer


def finish_background_rows() -> None:
    """Wait for every batch worker thread to end: rows an interrupted or cancelled batch had
    already sent finish in the background, and must not reach the next test's server."""
    for thread in threading.enumerate():
        if thread.name.startswith("llmkit-map"):
            thread.join()


@pytest.fixture(autouse=True)
def no_batch_left_behind(openai_server: OpenAITestServer) -> Iterator[None]:
    finish_background_rows()
    yield
    openai_server.release()  # requests a failed test left held
    finish_background_rows()


def rows(n: int, start: int = 0) -> list[dict[str, int]]:
    return [{"i": i} for i in range(start, start + n)]


def question(i: object) -> str:
    return f"echo: Question {i}"


CALL = ("Be brief.", "Question {{ i }}")


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def sent(server: OpenAITestServer) -> list[str]:
    """The user message of every chat request the server received, in arrival order."""
    return [r.body["messages"][-1]["content"] for r in server.requests if r.path.endswith("completions")]


class Watched(io.StringIO):
    """stderr as the user reads it, with ``seen`` set once ``text`` has been written."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.seen = text, threading.Event()

    def write(self, s: str) -> int:
        written = super().write(s)
        if self.text in s:
            self.seen.set()
        return written


@contextlib.contextmanager
def ctrl_c(server: OpenAITestServer, *, after: int, release_when: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT to this process) once the server has received ``after`` requests, then
    release the requests it holds once ``release_when`` is set: each step waits for an event, so
    machine load changes how long it takes, never what happens."""
    stop = threading.Event()

    def watch() -> None:
        if server.wait_for_requests(after) and not stop.is_set():
            os.kill(os.getpid(), signal.SIGINT)
            release_when.wait()
        server.release()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        release_when.set()
        watcher.join()


def test_results_come_back_in_input_order(llm: OpenAITestServer) -> None:
    llm.latency = 0.05
    llm.delay(0.3)  # the first request to arrive answers last
    call = LLMCall(*CALL, temperature=0)
    results = call.map(rows(12), max_concurrency=4, progress=False)
    assert results == [question(i) for i in range(12)]
    assert all(isinstance(r, Result) and r.usage["total_tokens"] > 0 for r in results)
    assert results[0].messages[-1] == {"role": "user", "content": "Question 0"}
    assert call.messages == [] and call.completion is None  # the LLMCall's own state is untouched
    assert llm.peak_concurrency == 4


def test_a_failing_row_keeps_its_error_and_the_others_succeed(llm: OpenAITestServer) -> None:
    llm.fail(400, message="bad row")
    batch = [*rows(5), {"j": 1}]  # the last row lacks the variable "i"
    with pytest.warns(LLMKitWarning, match=r"rows lack 'i' \(1 of 6 rows\)"):
        results = LLMCall(*CALL).map(batch, max_concurrency=1, progress=False)
    failed = [r for r in results if isinstance(r, FailedRow)]
    assert [r.index for r in failed] == [0, 5]
    assert isinstance(failed[0].error, InvalidRequestError) and failed[0].error.status == 400
    assert failed[0].variables == {"i": 0} and "row 0 failed" in str(failed[0])
    assert isinstance(failed[1].error, MissingVariableError) and failed[1].error.variable == "i"
    assert results[1:5] == [question(i) for i in range(1, 5)]
    assert len(sent(llm)) == 5  # the row with a missing variable sent nothing


def test_rows_whose_keys_miss_the_templates_warn_once_per_map(llm: OpenAITestServer) -> None:
    call = LLMCall("Be brief.", "Question {{ i }} on {{ topic }}")
    batch = [{"i": i, "topic": "tides", "tone": "dry"} for i in range(6)] + [{"i": 6, "tone": "dry"},
                                                                              {"i": 7, "tone": "dry"}]
    with pytest.warns(LLMKitWarning) as caught:
        results = call.map(batch, progress=False)
    assert [str(w.message) for w in caught] == [
        "rows carry 'tone', which the templates do not use (8 of 8 rows); rows lack 'topic' "
        "(2 of 8 rows): those rows will fail with MissingVariableError"]
    assert caught[0].filename == __file__  # points at the map call
    assert [type(r.error) for r in results[6:]] == [MissingVariableError] * 2  # type: ignore[union-attr]
    assert len(sent(llm)) == 6

    wide = [{"i": 0, "topic": "t", **dict.fromkeys("abcdefg", 1)}]  # a wide DataFrame's records
    with pytest.warns(LLMKitWarning, match=r"carry 'a', 'b', 'c', 'd', 'e' and 2 more, .* \(1 of 1 rows\)$"):
        asyncio.run(call.amap(wide, progress=False))


def test_a_second_run_resumes_from_the_cache(llm: OpenAITestServer) -> None:
    llm.fail(400)
    llm.fail(500, times=10, path_contains="never")  # queued behind: must not be consumed
    call = LLMCall(*CALL)
    first = call.map(rows(8), progress=False)
    failed = [r.index for r in first if isinstance(r, FailedRow)]
    assert len(failed) == 1
    llm.reset()
    second = call.map(rows(8), progress=False)
    assert second == [question(i) for i in range(8)]
    assert sent(llm) == [f"Question {failed[0]}"]  # only the missing row is sent again
    assert [r.cached for r in second] == [i != failed[0] for i in range(8)]


@pytest.mark.slow
def test_rpm_limit_is_kept(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("rpm", 600)  # 10 requests per second
    results = LLMCall(*CALL).map(rows(30), max_concurrency=8, progress=False)
    assert all(isinstance(r, Result) for r in results)
    assert len(llm.requests) == 30 and llm.rejected == 0
    times = [r.time for r in llm.requests][1:]  # the first request also sets up the SDK: it leaves late
    assert times[-1] - times[0] >= 28 * 0.1 - 0.05  # never faster than the limit ...
    assert 0.095 <= statistics.median(gaps(times)) <= 0.15  # ... and paced close to it


def test_tpm_limit_is_kept_and_unused_tokens_come_back(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("tpm", 9000)  # 150 tokens per second
    call = LLMCall(*CALL, max_tokens=40)  # reserves ~55 tokens a request; the answers use ~15
    results = call.map(rows(15), max_concurrency=4, progress=False)
    tokens = {r.messages[-1]["content"]: r.usage["total_tokens"] for r in results}
    used = [tokens[q] for q in sent(llm)][1:-1]  # in arrival order; the first leaves late (SDK set-up)
    times = [r.time for r in llm.requests][1:]
    assert sum(used) / (times[-1] - times[0]) <= 9000 / 60 * 1.05  # 5 %: arrival jitter
    assert statistics.median(gaps(times)) < 40 * 60 / 9000  # faster than if max_tokens stayed reserved


def test_429_retry_after_pauses_every_row_then_keeps_the_pace(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("rpm", 600)
    llm.fail(429, code="rate_limit_exceeded", retry_after=0.6)
    results = LLMCall(*CALL).map(rows(6), max_concurrency=4, progress=False)
    assert all(isinstance(r, Result) for r in results)
    times = [r.time for r in llm.requests]
    assert len(times) == 7  # six rows plus the one rejected attempt
    assert min(times[1:]) >= times[0] + 0.6 - 0.02  # nobody sent during the pause
    assert statistics.median(gaps(times[1:])) >= 0.095  # one 429 pauses; it does not slow down


@pytest.mark.slow
def test_429s_that_keep_coming_slow_the_pace_down(llm: OpenAITestServer) -> None:
    llmkit.force_default_value("rpm", 600)
    llm.fail(429, code="rate_limit_exceeded", retry_after=0.2)
    results = LLMCall(*CALL).map(rows(12), max_concurrency=4, progress=False)  # 1.2 s: a new burst
    llm.fail(429, code="rate_limit_exceeded", retry_after=0.2)  # again, within seconds
    results += LLMCall(*CALL).map(rows(8, start=12), max_concurrency=4, progress=False)
    assert all(isinstance(r, Result) for r in results)
    times = [r.time for r in llm.requests][-7:]
    assert statistics.median(gaps(times)) >= 0.105  # 90 % of the configured pace: 0.111 s


def test_amap_runs_inside_asyncio_without_blocking_the_loop(llm: OpenAITestServer) -> None:
    llm.latency = 0.1
    call = LLMCall(*CALL)

    async def main() -> tuple[list[object], int]:
        ticks = 0
        task = asyncio.create_task(call.amap(rows(8), max_concurrency=2, progress=False))
        while not task.done():
            await asyncio.sleep(0.02)
            ticks += 1
        return await task, ticks

    results, ticks = asyncio.run(main())
    assert results == [question(i) for i in range(8)]
    assert ticks >= 10  # the loop kept running for the ~0.4 s the batch took
    assert llm.peak_concurrency == 2


def test_cancelling_amap_stops_sending(llm: OpenAITestServer) -> None:
    llm.hold(after=2)  # rows 0 and 1 are answered; rows 2 and 3 are in flight when it is cancelled
    call = LLMCall(*CALL)

    async def main() -> None:
        task = asyncio.create_task(call.amap(rows(30), max_concurrency=2, progress=False))
        assert await asyncio.to_thread(llm.wait_for_requests, 4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as caught:
            await task
        assert caught.value.results is last_batch() and len(last_batch()) == 30  # type: ignore[attr-defined]

    asyncio.run(main())
    llm.release()
    finish_background_rows()  # the requests already sent finish in the background ...
    assert sorted(sent(llm)) == [f"Question {i}" for i in range(4)]  # ... and no other row was sent
    llm.reset()
    assert call.map(rows(30), progress=False) == [question(i) for i in range(30)]
    assert sorted(sent(llm)) == sorted(f"Question {i}" for i in range(4, 30))  # their answers were cached


@pytest.mark.slow
def test_ctrl_c_stops_keeps_what_finished_and_a_rerun_sends_the_rest(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows 0 and 1 are answered; the server holds rows 2 and 3 when Ctrl-C is pressed, and
    answers them only once the progress says that the batch waits for them."""
    llm.hold(after=2)
    err = Watched("interrupted: waiting for")
    monkeypatch.setattr(sys, "stderr", err)
    call = LLMCall(*CALL)
    with ctrl_c(llm, after=4, release_when=err.seen), pytest.raises(KeyboardInterrupt) as caught:
        call.map(rows(40), max_concurrency=2)
    shown = err.getvalue()
    assert "interrupted: waiting for 2 requests in flight (Ctrl-C again not to wait)" in shown
    assert "interrupted: finished answers are cached, run again to resume" in shown
    first = sent(llm)
    assert sorted(first) == [f"Question {i}" for i in range(4)]  # no row started after Ctrl-C
    kept = caught.value.results  # type: ignore[attr-defined]
    assert kept is last_batch() and len(kept) == 40
    assert kept == [question(i) for i in range(4)] + [None] * 36  # the requests in flight were kept
    llm.reset()
    results = call.map(rows(40), max_concurrency=8, progress=False)
    assert results == [question(i) for i in range(40)] and last_batch() is results
    assert sorted(first + sent(llm)) == sorted(f"Question {i}" for i in range(40))  # each sent once


def test_progress_text_shows_rows_errors_tokens_and_cost(llm: OpenAITestServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    llm.fail(400)
    results = LLMCall(*CALL).map(rows(5), max_concurrency=1)
    answers = [r for r in results if isinstance(r, Result)]
    tokens = sum(r.usage["total_tokens"] for r in answers)
    cost = sum(model_cost(r.model, r.completion.response["usage"]) or 0
               for r in answers)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"llmkit map: 5/5 rows, 1 error, 0 cached, {tokens:,} tokens, "
                           f"cost {format_cost(cost)}, ")
    assert "rows/s" in last
    LLMCall(*CALL).map(rows(5))
    assert "5/5 rows, 0 errors, 4 cached" in capsys.readouterr().err
    LLMCall(*CALL).map(rows(5), progress=False)
    assert capsys.readouterr().err == ""


def test_the_bar_colours_only_the_failed_share_and_cost_reads_the_same_throughout(
        llm: OpenAITestServer) -> None:
    llm.fail(400, message="<b>bad</b>")
    results = LLMCall(*CALL).map(rows(8), max_concurrency=1, progress=False)
    progress, spent = Progress(8, enabled=False), 0.0
    for result in results:
        progress.add(result)
        if isinstance(result, Result):
            spent += model_cost(result.model, result.completion.response["usage"]) or 0
        assert f"cost {format_cost(spent)}" in progress.items()  # while running, as at the end
    progress.close()
    shown = progress.html()
    items = re.findall(r'<span style="white-space:nowrap">([^<]*)</span>', shown)
    assert items == progress.items() and items[:2] == ["8/8 rows", "1 error"]  # no wrap inside one
    assert re.search(r'llmkit-done" style="[^"]*width:87\.50%', shown)
    assert re.search(r'llmkit-failed" style="[^"]*width:12\.50%', shown)
    assert "&lt;b&gt;bad&lt;/b&gt;" in shown and "<b>" not in shown
    assert progress.text().startswith("llmkit map: 8/8 rows, 1 error, 0 cached, ")


def test_the_key_never_shows_in_results_or_progress(llm: OpenAITestServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    llm.required_api_key = "another-key"
    results = LLMCall(*CALL).map(rows(3))
    assert all(isinstance(r, FailedRow) and getattr(r.error, "status", None) == 401 for r in results)
    shown = repr(results) + str(results) + capsys.readouterr().err
    assert "3 errors" in shown and SECRET not in shown


def test_cache_hits_do_not_wait_for_the_rate_limit(llm: OpenAITestServer) -> None:
    call = LLMCall(*CALL)
    call.map(rows(5), progress=False)
    llmkit.force_default_value("rpm", 30)  # paced, five rows would take 8 s
    started = time.perf_counter()
    assert all(r.cached for r in call.map(rows(5), progress=False))
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(("args", "message"), [
    (({"i": 1},), r"rows must be a list of dicts.*got a dict"),
    ((["a"],), r"rows\[0\] is a str.*to_dict\('records'\)"),
    ((rows(2),), None),
])
def test_bad_arguments_fail_before_anything_is_sent(llm: OpenAITestServer, args: tuple[object, ...],
                                                    message: str | None) -> None:
    call = LLMCall(*CALL)
    if message is None:  # good rows, bad options
        expected = r"MAX_CONCURRENCY = '0' is not valid; expected an integer from 1 to 1000"
        with pytest.raises(ConfigError, match=expected):
            call.map(*args, max_concurrency=0)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"unknown option\(s\) progres; known: max_concurrency"):
            call.map(*args, progres=False)  # type: ignore[arg-type]
    else:
        with pytest.raises(ConfigError, match=message):
            call.map(*args)  # type: ignore[arg-type]
    assert llm.requests == []


def test_empty_rows_give_an_empty_list(llm: OpenAITestServer) -> None:
    assert LLMCall(*CALL).map([], progress=False) == []
    assert asyncio.run(LLMCall(*CALL).amap([], progress=False)) == []


@pytest.mark.slow
def test_progress_is_a_widget_in_a_notebook_that_leaves_a_static_summary(
        llm: OpenAITestServer, tmp_path: Path) -> None:
    """Live, a widget; saved, a text/html + text/plain summary: a widget view whose kernel is gone
    shows "Error displaying widget" in a reopened notebook."""
    import json

    import nbformat
    from nbclient import NotebookClient

    llm.fail(400, message="<script>alert(1)</script>")
    code = ("from llmkit import LLMCall\n"
            "results = LLMCall('Be brief.', 'Question {{ i }}').map([{'i': i} for i in range(8)],"
            " max_concurrency=1)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = NotebookClient(nb, kernel_name="python3", timeout=60, store_widget_state=True)
    client.execute()
    states = [m["state"] for m in nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
              ["state"].values()]
    live = next(s["value"] for s in states if s["_model_name"] == "HTMLModel")
    assert "8/8 rows" in live  # the widget was shown and updated
    nbformat.write(nb, tmp_path / "saved.ipynb")
    reopened = nbformat.read(tmp_path / "saved.ipynb", as_version=4)
    [output] = reopened.cells[0].outputs  # one output, no text on stderr
    assert output["output_type"] == "display_data"
    assert set(output["data"]) == {"text/plain", "text/html"}  # the widget view is gone
    plain, shown = output["data"]["text/plain"], output["data"]["text/html"]
    assert plain.startswith("llmkit map: 8/8 rows, 1 error, 0 cached, ")
    assert "last error: InvalidRequestError: HTTP 400: <script>" in plain  # text/plain is not HTML
    assert re.search(r'llmkit-done" style="[^"]*width:87\.50%', shown)
    assert re.search(r'llmkit-failed" style="[^"]*width:12\.50%', shown)
    assert "HTTP 400: &lt;script&gt;alert(1)&lt;/script&gt;" in shown and "<script>" not in shown
    assert SECRET not in json.dumps(nb)
