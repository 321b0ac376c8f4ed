"""The tutorials in notebooks/ run top to bottom in real kernels with no key and no network.

Every tutorial is executed by nbclient from notebooks/recording.jsonl (``LLMKIT_REPLAY``), which must
not start the local model; the quickstart is also executed against the real local model. A failing
cell raises `CellExecutionError`, which fails the test. After changing a notebook's calls, delete
the recording and make it again (an empty cache folder: every answer comes from the model):

    rm notebooks/recording.jsonl; export LLMKIT_CACHE_DIR=$(mktemp -d)
    python -m llmkit.clients.replay record notebooks/0*.ipynb --out notebooks/recording.jsonl
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import _ENV, SECRET

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RECORDING = NOTEBOOKS / "recording.jsonl"
TUTORIALS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
PROBE = "import llmkit.clients.local\nprint('local server:', llmkit.clients.local.server_url())"
SECRET_LOOKING = re.compile(r"sk-[A-Za-z0-9_-]{8,}|bearer\s|api[_-]?key|authorization|password",
                            re.IGNORECASE)


def kernel_env(home: Path, **extra: str) -> dict[str, str]:
    """A kernel environment with no key, no base URL and no llmkit setting of the developer's:
    a fresh cache folder and Jupyter/IPython folders under ``home``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV and not k.startswith("LLMKIT_")}
    env.update(HOME=str(home), LLMKIT_CACHE_DIR=str(home / "cache"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_CONFIG_DIR=str(home / "jupyter"), JUPYTER_DATA_DIR=str(home / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"), PYDEVD_DISABLE_FILE_VALIDATION="1",
               **extra)
    return env


def execute(path: Path, env: dict[str, str]) -> Any:
    """Run a tutorial top to bottom in its folder (as JupyterLab would), then a cell that prints
    whether a local model server was started; return the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(nb, timeout=120, startup_timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute(env=env)
    return nb


def text_of(cell: Any) -> str:
    """Everything a cell printed or displayed as plain text."""
    parts = [o.get("text", "") if o["output_type"] == "stream" else o.get("data", {}).get("text/plain", "")
             for o in cell.get("outputs", [])]
    return "".join(parts)


def cell_with(nb: Any, source: str) -> Any:
    [cell] = [c for c in nb.cells if c.cell_type == "code" and source in c.source]
    return cell


def test_tutorials_are_numbered_and_committed_without_outputs() -> None:
    assert [p.name[:2] for p in TUTORIALS] == [f"{i:02d}" for i in range(1, len(TUTORIALS) + 1)]
    assert len(TUTORIALS) >= 7
    for path in TUTORIALS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3", path.name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), path.name
        setup = code[0].source
        assert "%load_ext llmkit" in setup and "%llm_api local" in setup, path.name


def test_recording_is_readable_json_lines_without_secrets() -> None:
    text = RECORDING.read_text(encoding="utf-8")
    assert len(text.encode()) < 400_000  # small enough to ship beside the notebooks
    assert SECRET not in text and not SECRET_LOOKING.search(text)
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries and all(set(e) == {"key", "request", "value"} for e in entries)
    assert len({e["key"] for e in entries}) == len(entries)
    for entry in entries:
        request = entry["request"]
        assert request["model"] and ("messages" in request or "input" in request)
        assert "choices" in entry["value"] or "embedding" in entry["value"]


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_from_the_recording_without_starting_a_model(
        path: Path, tmp_path: Path) -> None:
    nb = execute(path, kernel_env(tmp_path, LLMKIT_REPLAY=str(RECORDING)))
    assert text_of(nb.cells[-1]).strip() == "local server: None"
    if path.name.startswith("03-"):
        missed = text_of(cell_with(nb, "except ReplayMissError"))
        assert "not in the recording" in missed and "What is the capital of Peru?" in missed
        assert "OPENAI_API_KEY" in missed and "%llm_api local" in missed
    if path.name.startswith("07-"):  # map() keeps failures in their rows: only the bad row failed
        table = text_of(cell_with(nb, "isinstance(result, FailedRow)"))
        assert table.count("FAILED") == 1 and "needs the variable 'review'" in table
        assert text_of(cell_with(nb, "again = label.map")).endswith(", 0 failed\n")


def test_quickstart_runs_against_the_local_model(tmp_path: Path) -> None:
    [quickstart] = [p for p in TUTORIALS if p.name.startswith("01-")]
    nb = execute(quickstart, kernel_env(tmp_path))
    assert text_of(nb.cells[-1]).startswith("local server: http://127.0.0.1:")
    shown = text_of(cell_with(nb, "print(answer)"))
    assert "Paris" in shown and "from the cache: False" in shown
    assert "model: smollm2-135m-instruct" in shown
    assert "needs the variable 'review'" in text_of(cell_with(nb, "except MissingVariableError"))
