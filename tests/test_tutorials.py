"""The tutorials in notebooks/ run top to bottom in real kernels with no key and no network, in
any order and whatever the cache holds.

Every tutorial (``notebooks/[0-9][0-9]-*.ipynb``: a new one joins every run below) is executed by
nbclient three ways:

- from notebooks/recording.jsonl (``LLMKIT_REPLAY``), each on a fresh cache; this must not start
  the local model;
- newest first, all sharing one cache folder that already holds every recorded answer (what running
  them all would leave), live on the local model: each sees what the ones after it left;
- live on the local model with the cache off (``LLMKIT_CACHE_API_CALLS=false``), each on its own.

A failing cell raises `CellExecutionError`, which fails the test. Live, a small model's answers may
differ from the recording, so the checks here (and the cells) only rely on model text where the
answer is deterministic (temperature 0 and a seed). After changing a notebook's calls, delete the
recording and make it again (an empty cache folder: every answer comes from the model):

    rm notebooks/recording.jsonl; export LLMKIT_CACHE_DIR=$(mktemp -d)
    python -m llmkit replay record notebooks/0*.ipynb --out notebooks/recording.jsonl
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from llmkit.base.cache import ResponseCache
from tests.conftest import SECRET
from tests.helpers import kernel_env

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RECORDING = NOTEBOOKS / "recording.jsonl"
TUTORIALS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
PROBE = "import llmkit.clients.local\nprint('local server:', llmkit.clients.local.server_url())"
SECRET_LOOKING = re.compile(r"sk-[A-Za-z0-9_-]{8,}|bearer\s|api[_-]?key|authorization|password",
                            re.IGNORECASE)


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


def _committed(path: Path) -> str:
    """The notebook as git holds it (staged or committed), not as JupyterLab last saved it: after
    ``make lab`` the working copy may hold outputs, and that is fine."""
    shown = subprocess.run(["git", "show", f":{path.relative_to(ROOT).as_posix()}"], cwd=ROOT,
                           capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else path.read_text(encoding="utf-8")


def test_tutorials_are_numbered_and_committed_without_outputs() -> None:
    assert [p.name[:2] for p in TUTORIALS] == [f"{i:02d}" for i in range(1, len(TUTORIALS) + 1)]
    assert len(TUTORIALS) >= 7
    for path in TUTORIALS:
        nb = nbformat.reads(_committed(path), as_version=4)
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


def check_tutorial(path: Path, nb: Any) -> None:
    """What a tutorial must show in every run (replayed or live, warm cache or none)."""
    if path.name.startswith("03-"):
        again = text_of(cell_with(nb, "again = capital.call"))
        assert "cached: True" in again  # its own cache folder, on whatever the settings say
        kinds = [line.split()[0] for line in text_of(cell_with(nb, "%llm_cache export")).splitlines()]
        assert kinds[0] == "exported" and sorted(kinds[1:]) == ["chat", "embedding"]
        missed = text_of(cell_with(nb, "except ReplayMissError"))
        assert "not in the recording" in missed and "What is the capital of Peru?" in missed
        assert "turn replay off" in missed and "the local model will answer" in missed  # on local
    if path.name.startswith("07-"):  # map() keeps failures in their rows: only the bad row failed
        table = text_of(cell_with(nb, "isinstance(result, FailedRow)"))
        assert table.count("FAILED") == 1 and "needs the variable 'review'" in table
        assert text_of(cell_with(nb, "again = label.map")).endswith(", 0 failed\n")


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
@pytest.mark.slow
def test_tutorial_runs_from_the_recording_without_starting_a_model(
        path: Path, tmp_path: Path) -> None:
    nb = execute(path, kernel_env(None, tmp_path, LLMKIT_REPLAY=str(RECORDING)))
    assert text_of(nb.cells[-1]).strip() == "local server: None"
    check_tutorial(path, nb)


@pytest.mark.slow
def test_tutorials_run_newest_first_on_one_warm_cache(tmp_path: Path) -> None:
    """As a user meets them: one cache folder for all, already holding every recorded answer (as
    running them all leaves it: chat answers and embeddings), then newest first, live, cache on."""
    with ResponseCache(tmp_path / "cache") as cache:
        cache.import_jsonl(RECORDING)
        warm = cache.stats()["kinds"]
    assert warm["chat"] and warm["embedding"]
    failed = []
    for path in reversed(TUTORIALS):
        try:
            nb = execute(path, kernel_env(None, tmp_path))
        except CellExecutionError as exc:
            failed.append(f"{path.name}: {exc}")
        else:
            check_tutorial(path, nb)
    assert not failed, "\n\n".join(failed)


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
@pytest.mark.slow
def test_tutorial_runs_live_on_the_local_model_with_the_cache_off(path: Path, tmp_path: Path) -> None:
    nb = execute(path, kernel_env(None, tmp_path, LLMKIT_CACHE_API_CALLS="false"))
    check_tutorial(path, nb)
    if path.name.startswith("01-"):
        assert text_of(nb.cells[-1]).startswith("local server: http://127.0.0.1:")
        shown = text_of(cell_with(nb, "print(answer)"))
        assert "Paris" in shown and "from the cache: False" in shown
        assert "model: smollm2-135m-instruct" in shown
        assert "needs the variable 'review'" in text_of(cell_with(nb, "except MissingVariableError"))
