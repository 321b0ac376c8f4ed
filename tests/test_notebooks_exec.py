"""tests/notebooks/llmkit_tour.ipynb executed by nbclient in a real kernel against the test server:
displays, streaming, widget state and secrets, as a saved notebook holds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import SECRET
from tests.helpers import kernel_env
from tests.openai_server import OpenAITestServer

pytestmark = pytest.mark.slow  # a real kernel per test: make test runs it, make check does not

TOUR = Path(__file__).with_name("notebooks") / "llmkit_tour.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class _RecordingClient(NotebookClient):
    """Keeps every message the kernel sent, by cell index, to see a display change over time."""

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        self.messages.append((cell_index, msg))
        return super().process_message(msg, cell, cell_index)


@pytest.fixture(scope="module")
def executed(openai_server_session: OpenAITestServer,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, _RecordingClient, list[Any]]:
    """The tour executed once for this module: (notebook, client, the server's requests)."""
    home = tmp_path_factory.mktemp("kernel")
    server = openai_server_session
    server.reset()
    server.latency, server.rate_limit_rps, server.required_api_key = 0.0, None, SECRET
    nb = nbformat.read(TOUR, as_version=4)
    client = _RecordingClient(nb, timeout=60, startup_timeout=60, kernel_name="python3",
                              store_widget_state=True, resources={"metadata": {"path": str(home)}})
    client.messages = []
    try:
        client.execute(env=kernel_env(server, home), cwd=str(home))  # a failing cell raises here
    finally:
        server.required_api_key = None
    return nb, client, list(server.requests)


def outputs(nb: Any, index: int) -> list[dict[str, Any]]:
    return [o["data"] for o in nb.cells[index].get("outputs", []) if "data" in o]


def test_llmcall_shows_escaped_html_with_token_counts(executed: tuple[Any, Any, list[Any]]) -> None:
    nb, _, requests = executed
    assert requests[0].body["messages"][1]["content"] == "Repeat: <b>bold</b> & <script>alert(1)</script>"
    [shown] = outputs(nb, 2)  # the LLMCall after its call
    assert set(shown) == {"text/plain", "text/html", "text/markdown"}  # static: survives a reopen
    page = shown["text/html"]
    assert "echo: Repeat: &lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page and "<b>bold" not in page
    # the server counts words: 4 per message plus its words; "echo:" and the user's 4 words
    assert '<span class="llmkit-tokens">tokens: prompt 15 · completion 5 · total 20</span>' in page


def test_streamed_cell_fills_in_and_ends_like_the_plain_display(
        executed: tuple[Any, _RecordingClient, list[Any]]) -> None:
    nb, client, requests = executed
    assert requests[1].body["stream"] is True and requests[1].body["messages"][1]["content"] == (
        "Say hello twice.")
    updates = [m["content"]["data"]["text/plain"] for i, m in client.messages
               if i == 4 and m["msg_type"] == "update_display_data"]
    assert "echo:" in updates[0] and "twice." not in updates[0]  # partial answers were shown
    assert len(updates) >= 3
    [final] = outputs(nb, 4)
    [plain] = outputs(nb, 5)  # `_llm`, the same answer displayed without streaming
    assert final["text/html"] == plain["text/html"] and final["text/plain"] == plain["text/plain"]
    assert "echo: Say hello twice." in final["text/html"]
    assert "tokens: prompt 16 · completion 4 · total 20" in final["text/html"]


def test_widget_state_holds_the_answers_and_the_history(executed: tuple[Any, Any, list[Any]]) -> None:
    nb, _, requests = executed
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    views = [o[WIDGET_VIEW]["model_id"] for i in range(len(nb.cells)) for o in outputs(nb, i)
             if WIDGET_VIEW in o]
    assert len(views) == 1 and all(model_id in state for model_id in views)  # the playground alone
    playground = state[views[-1]]["state"]
    assert "llmkit-playground" in playground["_dom_classes"]
    [entry] = [m["state"] for m in state.values()
               if "llmkit-history-entry" in m["state"].get("_dom_classes", ())]
    body = state[entry["children"][1].removeprefix("IPY_MODEL_")]["state"]["value"]
    assert "run 1" in body and "echo: Repeat: tides" in body and "tokens: prompt" in body
    assert requests[-1].body["messages"][1]["content"] == "Repeat: tides"


def test_the_key_is_used_but_saved_nowhere(executed: tuple[Any, Any, list[Any]]) -> None:
    nb, _, requests = executed
    assert len(requests) == 3 and requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in nbformat.writes(nb)
