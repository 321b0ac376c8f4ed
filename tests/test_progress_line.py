"""The text progress line of a batch (`llmkit.calls.progress_line`), and the promise of
`llmkit.base.hooks`: a script's ``map`` loads nothing from the notebook layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmkit import LLMCall
from llmkit.base.money import format_cost
from llmkit.calls.progress_line import ProgressLine
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from llmkit import LLMCall
results = LLMCall("Be brief.", "Question {{{{ i }}}}").map([{{"i": i}} for i in range(3)])
print(json.dumps({{"results": [str(r) for r in results],
                  "notebook": [m for m in sys.modules if m.startswith("llmkit.notebook")],
                  "widgets": [m for m in ("IPython", "ipywidgets") if m in sys.modules]}}))
"""


def test_a_scripts_map_loads_nothing_from_the_notebook_layer(llm: OpenAITestServer) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": SECRET,
           "LLMKIT_BUDGET_USD": "1"}
    code = SCRIPT.format(root=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["results"] == [f"echo: Question {i}" for i in range(3)]  # a real map ran
    assert seen["notebook"] == [] and seen["widgets"] == []
    last = done.stderr.strip().splitlines()[-1]  # stderr is a pipe: whole lines, the last at close
    assert last.startswith("llmkit map: 3/3 rows, 0 errors, 0 cached, ")
    assert " of $1.00 budget, " in last and "rows/s" in last
    assert SECRET not in done.stderr


def test_in_place_on_a_terminal_whole_lines_in_a_log(llm: OpenAITestServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    results = LLMCall("Be brief.", "Q {{ i }}").map([{"i": 1}, {"i": 2}], progress=False)
    for inline in (True, False):
        line = ProgressLine(2, inline=inline)
        for r in results:
            line.add(r)
        line.close()
        err = capsys.readouterr().err
        if inline:  # rewritten in place with "\r", one newline at the end
            assert err.startswith("\rllmkit map: ") and err.count("\n") == 1 and err.endswith("\n")
        else:  # the first row shows at once, then nothing for LOG_EVERY seconds, then the close
            assert err.startswith("llmkit map: 1/2 rows") and "\r" not in err
            assert err.splitlines()[-1].startswith("llmkit map: 2/2 rows, 0 errors, 0 cached, ")
    line = ProgressLine(2, enabled=False)
    line.add(results[0])
    line.close()
    assert capsys.readouterr().err == "" and line.budget_items() == []


def test_an_interrupted_run_says_so_and_how_to_resume(capsys: pytest.CaptureFixture[str]) -> None:
    line = ProgressLine(5, inline=False)
    line.waiting(1)
    assert "interrupted: waiting for 1 request in flight (Ctrl-C again not to wait)" in \
        capsys.readouterr().err
    line.close(interrupted=True)
    line.close(interrupted=True)  # once only
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run again to resume" in err and "last_batch()" in err


def test_the_cost_reads_the_same_while_running_and_at_the_end(llm: OpenAITestServer,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    results = LLMCall("Be brief.", "Q {{ i }}").map([{"i": 1}, {"i": 2}], progress=False)
    again = LLMCall("Be brief.", "Q {{ i }}").map([{"i": 1}], progress=False)
    assert again[0].cached
    line = ProgressLine(3, inline=False)
    line.add(again[0])
    assert "cost $0," in line.counts()  # a cache hit is free
    for r in results:
        line.add(r)
    line.close()
    paid = sum(r.completion.paid for r in results)
    shown = line.counts()
    assert paid > 0 and f"cost {format_cost(paid)}," in shown and "000000" not in shown
    capsys.readouterr()
