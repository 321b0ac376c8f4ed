"""The run history in a notebook: the static displays of `Run`, `Runs` and `Spend`, ``%llm_history``
(search, filters, a selected run, copy as code, open in the playground), ``%llm_cost``, and spend
against the budget in a batch's progress. Real IPython shell, real test server."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from markdown_it import MarkdownIt

import llmkit
from llmkit import LLMCall
from llmkit.base import config
from llmkit.base.errors import ConfigError
from llmkit.base.money import format_cost
from llmkit.calls import progress_line
from llmkit.clients import budget
from llmkit.notebook import display, progress
from llmkit.notebook.history_browser import ALL_MODELS, HistoryBrowser
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer
from tests.test_display import RAW_HTML, XSS
from tests.test_widgets import widget_states

FALLBACKS = {"text/plain", "text/html", "text/markdown"}


def rendered(markdown: str) -> str:
    """A Markdown output as a trusted Jupyter output renders it (raw HTML on, GFM tables)."""
    return str(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))


def shown(bundle: dict[str, Any]) -> None:
    """No live tag in the HTML nor in the rendered Markdown, and no key anywhere."""
    assert set(bundle) == FALLBACKS
    assert not RAW_HTML.search(bundle["text/html"]), bundle["text/html"]
    assert not RAW_HTML.search(rendered(bundle["text/markdown"]))
    assert SECRET not in json.dumps(bundle)


def midnight() -> datetime:
    return datetime.combine(date.today(), datetime.min.time())


def calls(llm: OpenAITestServer) -> None:
    """Runs to find: two fruits, one of them twice (a cache hit), one on gpt-4o, one failure."""
    call = LLMCall("Be brief.", "Tell me about {{ fruit }}.")
    call.call(fruit="apples")
    call.call(fruit="pears")
    call.call(fruit="apples")  # from the cache
    LLMCall("Be brief.", "Tell me about plums.", model="gpt-4o").call()
    llm.fail(400, message="no cherries today")
    with pytest.raises(llmkit.InvalidRequestError):
        call.call(fruit="cherries", cache=False)


# -- static displays --------------------------------------------------------------------------

def test_run_runs_and_spend_show_model_and_user_text_escaped(llm: OpenAITestServer) -> None:
    evil_model = "<script>alert('m')</script>"
    llm.reply(f"Sure: {XSS} **done**", model=evil_model)
    with llmkit.experiment("exp <b>1</b>"):
        LLMCall("Be brief.", "Say {{ x }}").map([{"x": XSS}], progress=False)
    llm.fail(400, message=f"bad {XSS}")
    with pytest.raises(llmkit.InvalidRequestError):
        LLMCall("Be brief.", "again").run({}, model="gpt-4o", cache=False)
    failed, run = llmkit.history()
    assert run.model == evil_model and failed.error == "InvalidRequestError"

    bundle = run._repr_mimebundle_()
    shown(bundle)
    page = bundle["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(&#x27;m&#x27;)&lt;/script&gt;" in page  # the server's model name
    assert "<strong>done</strong>" in page  # the answer, rendered as Markdown
    where = bundle["text/plain"].splitlines()[0]
    assert where.startswith(f"run {run.id} · {run.started:%Y-%m-%d %H:%M:%S} · 127.0.0.1:")
    assert f"batch {run.batch_id}" in where and "experiment exp <b>1</b>" in where
    assert "experiment exp &lt;b&gt;1&lt;/b&gt;" in page
    assert "tokens: prompt" in page and "as code, to copy" in page

    bundle = failed._repr_mimebundle_()
    shown(bundle)
    assert "error: InvalidRequestError: HTTP 400: bad <script>" in bundle["text/plain"]
    assert re.search(r'class="llmkit-run-error"[^>]*>InvalidRequestError: HTTP 400: bad &lt;script&gt;',
                     bundle["text/html"])
    assert "[output]" not in bundle["text/plain"]  # no empty answer for a failed call

    runs = llmkit.history()
    bundle = runs._repr_mimebundle_()
    shown(bundle)
    plain = bundle["text/plain"].splitlines()
    assert plain[0] == "2 runs, newest first"
    assert plain[1].split() == ["time", "model", "prompt", "answer", "tokens", "cost", "latency",
                                "cache"]
    assert "InvalidRequestError: HTTP 400: bad" in plain[2] and "Say <script>" in plain[3]
    assert all(len(line) < 220 for line in plain)  # long text is cut
    assert bundle["text/html"].count("<tr>") == 3 and "Say &lt;script&gt;" in bundle["text/html"]
    assert "Say &lt;script&gt;" in rendered(bundle["text/markdown"])

    bundle = llmkit.spend()._repr_mimebundle_()
    shown(bundle)
    plain = bundle["text/plain"].splitlines()
    assert plain[0].split() == ["model", "runs", "cached", "errors", "tokens", "cost"]
    assert plain[-1].split()[:4] == ["total", "2", "0", "1"]
    assert plain[-1].endswith(format_cost(llmkit.spend().cost))
    assert "&lt;script&gt;alert(&#x27;m&#x27;)" in bundle["text/html"]
    assert "<td" in bundle["text/html"] and "font-weight:600" in bundle["text/html"]  # total row


def test_an_empty_history_says_so(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    bundle = llmkit.history()._repr_mimebundle_()
    assert bundle["text/plain"].startswith("0 runs") and "no runs" in bundle["text/html"]
    assert llmkit.spend()._repr_mimebundle_()["text/plain"].splitlines()[-1].split()[:2] == [
        "total", "0"]
    config.force_default_value("history", False)
    LLMCall("s", "u").call()
    browser, [static] = magic(ip, "")
    assert browser.runs == [] and "the run history is off" in browser.count.value
    assert static["text/plain"].startswith("0 runs")
    with capture_output() as out:
        ip.run_line_magic("llm_cost", "")
    assert out.outputs[0].data["text/plain"].splitlines()[0] == (
        "today, all processes: unknown: the run history is off (HISTORY=False)")


# -- %llm_history ------------------------------------------------------------------------------

def magic(ip: InteractiveShell, line: str) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``%llm_history line``: (the widget it returns, the data of what it displayed)."""
    with capture_output() as out:
        browser = ip.run_line_magic("llm_history", line)
    data = [o.data for o in out.outputs]
    assert SECRET not in json.dumps(data)
    return browser, data


def prompts(browser: HistoryBrowser) -> list[str]:
    return [run.messages[-1]["content"] for run in browser.runs]


def test_llm_history_finds_runs_by_search_and_filters(ip: InteractiveShell,
                                                      llm: OpenAITestServer) -> None:
    calls(llm)
    browser, [static] = magic(ip, "apples")
    assert isinstance(browser, HistoryBrowser) and "llmkit-run-history" in browser._dom_classes
    assert prompts(browser) == ["Tell me about apples."] * 2
    assert [run.cached for run in browser.runs] == [True, False]
    # the static output: what a notebook shows once its kernel is gone
    assert 'class="llmkit-run-history-static"' in static["text/html"]
    assert static["text/html"].count("<td") // 8 == 2 and "pears" not in static["text/html"]
    assert static["text/html"].count(">echo: Tell me about apples.</td>") == 2
    assert static["text/plain"].startswith("2 runs, newest first")
    labels = [label for label, _ in browser.rows.options]
    assert len(labels) == 2 and "Tell\u00a0me\u00a0about\u00a0apples." in labels[0]
    assert "hit" in labels[0] and "gpt-4o-mini" in labels[0]

    with capture_output() as out:
        browser.search.value = ""
    assert len(browser.runs) == 5 and browser.rows.options[0][0].count("InvalidRequestError") == 1
    assert "Tell me about pears." in out.outputs[-1].data["text/html"]  # the static output follows
    browser.model.value = "gpt-4o"
    assert prompts(browser) == ["Tell me about plums."]
    assert browser.model.options == (ALL_MODELS, "gpt-4o", "gpt-4o-mini")
    browser.model.value = ALL_MODELS
    browser.errors.value = True
    assert prompts(browser) == ["Tell me about cherries."] and browser.runs[0].error
    browser.errors.value, browser.cached.value = False, True
    assert prompts(browser) == ["Tell me about apples."] and browser.runs[0].cached

    # the same filters as options
    assert prompts(magic(ip, "--model gpt-4o")[0]) == ["Tell me about plums."]
    assert prompts(magic(ip, "--errors")[0]) == ["Tell me about cherries."]
    assert prompts(magic(ip, "--cached --since 1h")[0]) == ["Tell me about apples."]
    assert len(magic(ip, "--limit 2")[0].runs) == 2
    assert magic(ip, "about pears --since 1h")[0].runs[0].answer == "echo: Tell me about pears."
    assert magic(ip, "nothing-like-this")[0].runs == []
    with pytest.raises(UsageError, match="did you mean --errors"):
        ip.run_line_magic("llm_history", "--erors")
    with capture_output() as out:
        result = ip.run_cell("%llm_history --since yesterday")
    assert isinstance(result.error_in_exec, ConfigError)
    assert out.stdout.strip().splitlines()[-1].startswith("ConfigError: since='yesterday' is not valid")


def test_selecting_a_row_shows_the_full_call_and_its_code_sends_it_again(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llm.reply(f"Here: {XSS}")
    LLMCall("Be brief.", "Say {{ x }}", temperature=0.3, max_tokens=50).call(x=XSS)
    browser, _ = magic(ip, "")
    assert browser.selected is None and browser.actions.layout.display == "none"
    with capture_output() as out:
        browser.rows.value = 0
    run = browser.selected
    assert run is not None and run.answer == f"Here: {XSS}"
    detail = browser.detail.value
    assert "llmkit-run" in detail and "Here: &lt;script&gt;" in detail and "gpt-4o-mini" in detail
    assert "temperature=0.3" in detail and "tokens: prompt" in detail
    assert browser.actions.layout.display is None
    assert 'class="llmkit-run-where"' in out.outputs[-1].data["text/html"]  # saved with the table
    states = widget_states(browser)
    assert SECRET not in json.dumps(states)
    html_values = [s["value"] for s in states if s["_model_name"] == "HTMLModel"]
    assert html_values and not any(RAW_HTML.search(v) for v in html_values)
    [select] = [s for s in states if s["_model_name"] == "SelectModel"]  # labels are text, not HTML
    assert "Say\u00a0<script>" in select["_options_labels"][0]

    browser.code_button.value = True
    code = browser.code()
    assert "&lt;script&gt;" in browser.code_view.value and "user-select:all" in browser.code_view.value
    compile(code, "<copied>", "exec")  # valid Python
    assert "model='gpt-4o-mini'" in code and "temperature=0.3" in code and "max_tokens=50" in code
    assert "{'role': 'system', 'content': 'Be brief.'}" in code
    sent = len(llm.requests)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # pasted into a notebook: the same request, so the cache answers it
    assert namespace["message"]["content"] == run.answer and len(llm.requests) == sent
    llmkit.force_api_cache(False)
    exec(code, namespace)  # and without the cache the server gets the same body
    assert llm.requests[-1].body == llm.requests[sent - 1].body
    assert (llm.requests[-1].body["model"], llm.requests[-1].body["temperature"]) == ("gpt-4o-mini", 0.3)
    with capture_output():
        browser.rows.value = None
    assert browser.code_view.value == "" and browser.detail.value == ""


def test_open_in_playground_gives_a_playground_with_the_runs_prompt(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    LLMCall("Be brief.", "Tell me about {{ fruit }}.", temperature=0.5).call(fruit="figs")
    literal = "Keep {{ braces }} and {% tags %} as they are"
    llmkit.OpenAIClient().send_message([{"role": "user", "content": literal}], model="gpt-4o")
    browser, _ = magic(ip, "figs")
    assert browser.open_playground() is None  # nothing selected yet
    with capture_output():
        browser.rows.value = 0
    pg = browser.open_playground()
    assert pg is not None and list(browser.playground_box.children) == [pg]
    assert (pg.system.value, pg.user.value) == ("Be brief.", "Tell me about figs.")
    assert pg.model.value == "gpt-4o-mini" and pg.temperature.value == 0.5
    played = pg.run()
    assert played is not None and played.result == "echo: Tell me about figs."
    assert played.result.cached  # the very request of the run: the cache answers

    browser.search.value = "braces"
    with capture_output():
        browser.rows.value = 0
    assert browser.playground is None and browser.playground_box.children == ()  # closed on select
    pg = browser.open_playground()
    assert pg is not None and pg.fields == {}  # no variable: the braces are text
    played = pg.run()
    assert played is not None and llm.requests[-1].body["messages"][-1]["content"] == literal


def test_an_embedding_run_shows_and_says_why_it_has_no_playground(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llmkit.OpenAIClient().get_embedding(["a <b>x</b>", "b"], model="text-embedding-3-small")
    browser, _ = magic(ip, "")
    with capture_output():
        browser.rows.value = 0
    assert "[embedding]" in browser.rows.options[0][0]
    assert "a &lt;b&gt;x&lt;/b&gt;" in browser.detail.value
    code = browser.code()
    compile(code, "<copied>", "exec")
    assert ".get_embedding(" in code and "['a <b>x</b>', 'b']" in code
    assert browser.open_playground() is None
    assert "cannot open this run in the playground" in browser.playground_box.children[0].value


# -- %llm_cost ---------------------------------------------------------------------------------

def test_llm_cost_shows_today_this_kernel_and_what_is_left(ip: InteractiveShell,
                                                           llm: OpenAITestServer) -> None:
    with capture_output() as out:
        ip.run_line_magic("llm_cost", "")
    [data] = [o.data for o in out.outputs]
    assert data["text/plain"].splitlines() == ["today, all processes: $0 · 0 runs · 0 tokens",
                                               "this kernel: $0"]
    calls(llm)
    today = llmkit.spend(since=midnight())
    assert today.cost > 0 and budget.spent() == pytest.approx(today.cost)
    config.force_default_value("budget_usd", 1.0)
    config.force_default_value("daily_budget_usd", 0.5)
    with capture_output() as out:
        ip.run_line_magic("llm_cost", "")
    [data] = [o.data for o in out.outputs]
    assert set(data) == FALLBACKS
    tokens = int(today.total["total_tokens"])
    assert data["text/plain"].splitlines() == [
        f"today, all processes: {format_cost(today.cost)} · 5 runs · {tokens:,} tokens",
        f"this kernel: {format_cost(budget.spent())}",
        f"BUDGET_USD: $1.00 · {format_cost(1.0 - budget.spent())} left",
        f"DAILY_BUDGET_USD: $0.50 · {format_cost(0.5 - today.cost)} left"]
    assert 'class="llmkit-cost"' in data["text/html"] and "BUDGET_USD" in data["text/html"]
    with pytest.raises(UsageError, match="takes no arguments"):
        ip.run_line_magic("llm_cost", "today")


# -- progress against the budget ---------------------------------------------------------------

def test_progress_shows_spend_against_the_budgets_reading_the_history_once(
        llm: OpenAITestServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    call = LLMCall("Be brief.", "Question {{ i }}")
    call.map([{"i": 0}])
    assert "budget" not in capsys.readouterr().err  # none set: none shown
    config.force_default_value("budget_usd", 1.0)
    config.force_default_value("daily_budget_usd", 5.0)
    reads: list[str] = []

    def counted(path: str) -> float:
        reads.append(path)
        return spent_today(path)
    spent_today = progress_line.spent_today
    monkeypatch.setattr(progress_line, "spent_today", counted)
    call.map([{"i": i} for i in range(1, 9)], max_concurrency=2)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    today = llmkit.spend(since=midnight()).cost
    assert f", {format_cost(budget.spent())} of $1.00 budget, " in last
    assert f", {format_cost(today)} of $5.00 daily budget, " in last
    assert len(reads) == 1  # once at the start, not at every refresh
    p = progress.Progress(3, enabled=False)
    assert p.budget_items() == []  # a progress that shows nothing reads nothing


def test_progress_html_shows_the_budget_as_items(llm: OpenAITestServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config.force_default_value("budget_usd", 2.0)
    results = LLMCall("Be brief.", "Q {{ i }}").map([{"i": 1}, {"i": 2}], progress=False)
    monkeypatch.setattr(progress, "in_kernel", lambda: False)
    p = progress.Progress(2)
    for r in results:
        p.add(r)
    items = re.findall(r'<span style="white-space:nowrap">([^<]*)</span>', p.html())
    assert f"{format_cost(budget.spent())} of $2.00 budget" in items
    assert not any("daily" in item for item in items)
    p.close()


def test_runs_display_is_reached_through_the_display_module(llm: OpenAITestServer) -> None:
    LLMCall("s", "u").call()
    run = llmkit.history()[0]
    assert display.mimebundle(run) == run._repr_mimebundle_()
    assert display.mimebundle(llmkit.history())["text/plain"].startswith("1 run, newest first")


# -- a saved notebook ----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_saved_notebook_keeps_the_static_table_beside_the_widget(
        llm: OpenAITestServer, tmp_path: Path) -> None:
    """The static output comes first and holds the table; the widget view after it. nbconvert
    (no widget state) shows the table."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    from tests.helpers import kernel_env
    cells = ["%load_ext llmkit",
             "from llmkit import LLMCall\nLLMCall('Be brief.', 'Hello <b>there</b>').call()",
             "%llm_history there"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, kernel_name="python3", timeout=60, store_widget_state=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=kernel_env(llm, tmp_path / "home"), cwd=str(tmp_path))
    static, widget = nb.cells[2].outputs
    assert static["output_type"] == "display_data" and set(static["data"]) == FALLBACKS
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in static["data"]["text/html"]
    assert widget["output_type"] == "execute_result"
    assert "application/vnd.jupyter.widget-view+json" in widget["data"]
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert 'class="llmkit-run-history-static"' in page and "Hello &lt;b&gt;there&lt;/b&gt;" in page
    assert SECRET not in nbformat.writes(nb)
