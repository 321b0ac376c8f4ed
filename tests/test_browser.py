"""One real-browser test: JupyterLab on 127.0.0.1, driven by Playwright in Debian's Chromium.

Opens tests/notebooks/llmkit_tour.ipynb, runs all cells against the test server, checks what a user
sees (an LLMCall widget with its token counts and escaped output, the playground's history), clicks
the playground's Run button, pins both runs to compare them and saves a screenshot to
test-artifacts/browser/. Needs ``apt-get install -y chromium``; without it the test fails under CI
(``CI=true``) and is skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRET
from tests.helpers import kernel_env
from tests.openai_server import OpenAITestServer
from tests.test_notebooks_exec import TOUR

pytestmark = pytest.mark.slow  # JupyterLab in Chromium: make test runs it, make check does not

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage"]
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: run `apt-get install -y chromium` (Debian) first"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _jupyterlab(openai_server: OpenAITestServer, tmp_path: Path, notebook: Path,
                **env: str) -> Iterator[str]:
    """JupyterLab serving a copy of ``notebook`` (and its templates folder), its kernels pointed
    at the test server; yields the notebook's URL."""
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    shutil.copy(notebook, root / notebook.name)
    if (notebook.parent / "templates").is_dir():
        shutil.copytree(notebook.parent / "templates", root / "templates")
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps(NO_NEWS))
    port, token = _free_port(), secrets.token_hex(16)
    openai_server.required_api_key = SECRET  # the kernel must send the key from its environment
    log = (tmp_path / "jupyter.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.allow_root=True",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={home / 'lab-settings'}",
         f"--LabApp.workspaces_dir={home / 'workspaces'}"],
        env={**kernel_env(openai_server, home), **env}, cwd=root, stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + (tmp_path / "jupyter.log").read_text(errors="replace")[-3000:])
                time.sleep(0.2)
        yield f"{url}/lab/tree/{notebook.name}?token={token}"
    finally:
        server.terminate()  # jupyter_server shuts its kernels down on SIGTERM
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        try:
            os.killpg(server.pid, signal.SIGKILL)  # a kernel it left behind (same session)
        except ProcessLookupError:
            pass
        log.close()
        openai_server.required_api_key = None


def _kernel_prints(page: Any, code: str) -> str:
    """What ``code`` prints when run in the open notebook's kernel (through JupyterLab's API)."""
    return str(page.evaluate("""async (code) => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        let out = "";
        const future = kernel.requestExecute({code});
        future.onIOPub = (m) => { if (m.header.msg_type === "stream") out += m.content.text; };
        await future.done;
        return out;
    }""", code))


@pytest.fixture
def lab(openai_server: OpenAITestServer, tmp_path: Path) -> Iterator[str]:
    """JupyterLab serving a copy of the tour; its URL."""
    with _jupyterlab(openai_server, tmp_path, TOUR) as url:
        yield url


@pytest.mark.timeout(120)
def test_notebook_runs_in_jupyterlab_and_the_playground_runs(chromium: Path, lab: str) -> None:
    from playwright.sync_api import expect, sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            try:
                page.goto(lab)
                # a Run All sent before the kernel is ready is dropped: wait for it first
                expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=30_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

                call = page.locator(".llmkit-call", has_text="tokens: prompt 15 · completion 5 · total 20")
                expect(call.first).to_be_visible(timeout=30_000)
                expect(call.first.locator(".llmkit-output")).to_have_text(
                    "echo: Repeat: <b>bold</b> & <script>alert(1)</script>")  # escaped: shown as text
                entries = page.locator(".llmkit-playground .llmkit-history-entry")
                expect(entries).to_have_count(1, timeout=30_000)  # pg.run() in the cell

                page.locator(".llmkit-playground .llmkit-run").click()
                expect(entries).to_have_count(2, timeout=15_000)
                newest = entries.first
                expect(newest).to_contain_text("run 2")
                expect(newest).to_contain_text("echo: Repeat: tides")
                expect(newest.locator(".llmkit-cache-hit")).to_be_visible()  # same prompt again
                for pin in entries.locator(".llmkit-pin").all():
                    pin.click()
                compare = page.locator(".llmkit-playground .llmkit-compare")
                expect(compare).to_contain_text("run 2")
                expect(compare).to_contain_text("run 1")

                # Apply hands the edited template back to `call`, which code then uses
                user = page.locator(".llmkit-playground textarea").nth(1)
                user.fill("Say: {{ text }}")
                page.locator(".llmkit-playground .llmkit-apply").click()
                expect(page.locator(".llmkit-playground .llmkit-apply")).to_contain_text("Applied")
                assert _kernel_prints(page, "print(call.user_template.source)") == "Say: {{ text }}\n"
                assert dialogs == [] and SECRET not in page.content()

                page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                              "{theme: 'JupyterLab Dark'})")
                expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1,
                                                                                        timeout=15_000)
                expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=15_000)
                call.first.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / "jupyterlab-dark.png"))
            finally:
                page.screenshot(path=str(ARTIFACTS / "jupyterlab-playground.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.timeout(150)
def test_a_tutorial_reads_the_same_after_save_close_and_reopen(
        chromium: Path, openai_server: OpenAITestServer, tmp_path: Path) -> None:
    """Run all, save, shut the kernel down through the server, reload: the outputs are still
    there (static HTML, no "Error displaying widget")."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_tutorials import RECORDING, TUTORIALS
    quickstart = TUTORIALS[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with _jupyterlab(openai_server, tmp_path, quickstart, LLMKIT_REPLAY=str(RECORDING)) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=30_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            answers = page.locator(".llmkit-call .llmkit-output", has_text="Paris")
            expect(answers.first).to_be_visible(timeout=40_000)
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=40_000)
            page.keyboard.press("Control+s")
            expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=15_000)

            base, token = url.split("/lab/")[0], url.split("token=")[1]
            sessions = page.request.get(f"{base}/api/sessions?token={token}").json()
            for session in sessions:  # the kernel is gone: widgets could not come back
                page.request.delete(f"{base}/api/sessions/{session['id']}?token={token}")
            page.reload()
            expect(page.locator(".jp-Notebook")).to_be_visible(timeout=30_000)
            answers = page.locator(".llmkit-call .llmkit-output", has_text="Paris")
            expect(answers.first).to_be_visible(timeout=20_000)
            expect(page.locator(".llmkit-call .llmkit-tokens", has_text="tokens: prompt").first
                   ).to_be_attached()
            assert "Error displaying widget" not in page.content()
            page.screenshot(path=str(ARTIFACTS / "jupyterlab-reopened.png"), full_page=True)
        finally:
            browser.close()


def _history_notebook(folder: Path) -> Path:
    """A notebook that makes three calls and browses them with ``%llm_history``."""
    import nbformat
    cells = ["%load_ext llmkit",
             "from llmkit import LLMCall\n"
             "call = LLMCall('Be brief.', 'Tell me about {{ fruit }}.')\n"
             "for fruit in ['apples', 'pears', '<script>alert(1)</script>']:\n"
             "    call.call(fruit=fruit)",
             "%llm_history"]
    folder.mkdir()
    path = folder / "history.ipynb"
    kernel = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells],
                                            metadata={"kernelspec": kernel}), path)
    return path


@pytest.mark.timeout(150)
def test_llm_history_browses_in_jupyterlab_and_leaves_a_static_table_after_reopen(
        chromium: Path, openai_server: OpenAITestServer, tmp_path: Path) -> None:
    """Live: the widget (search, a selected run in full, copy as code, open in the playground),
    its static twin hidden. Saved, kernel gone, reloaded: the static table and the selected run,
    and no "Error displaying widget" in sight."""
    from playwright.sync_api import expect, sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    notebook = _history_notebook(tmp_path / "src")
    with _jupyterlab(openai_server, tmp_path, notebook) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=30_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            widget = page.locator(".llmkit-run-history")
            rows = widget.locator(".llmkit-run-rows select option")
            expect(rows).to_have_count(3, timeout=30_000)
            static = page.locator(".llmkit-run-history-static")
            expect(static).to_be_attached()
            expect(static).to_be_hidden()  # the live widget stands in for it
            expect(rows.first).to_contain_text("Tell me about <script>")  # text, not a tag
            widget.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "llm-history-live.png"))

            search = widget.locator(".llmkit-run-search input")
            search.fill("pears")
            search.press("Enter")
            expect(rows).to_have_count(1, timeout=15_000)
            widget.locator(".llmkit-run-rows select").select_option(index=0)
            detail = widget.locator(".llmkit-run-detail .llmkit-run")
            expect(detail).to_be_visible(timeout=15_000)
            expect(detail.locator(".llmkit-output")).to_have_text("echo: Tell me about pears.")
            widget.locator(".llmkit-run-code-toggle").click()
            expect(widget.locator(".llmkit-run-code-view pre")).to_contain_text(
                "'content': 'Tell me about pears.'")
            widget.locator(".llmkit-run-open").click()
            played = widget.locator(".llmkit-run-playground .llmkit-playground")
            expect(played).to_be_visible(timeout=15_000)
            expect(played.locator("textarea").nth(1)).to_have_value("Tell me about pears.")
            assert dialogs == [] and SECRET not in page.content()
            widget.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "llm-history-selected.png"))
            page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                          "{theme: 'JupyterLab Dark'})")
            expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=15_000)
            expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=15_000)
            widget.locator(".llmkit-run-rows").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "llm-history-dark.png"))

            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=30_000)
            page.keyboard.press("Control+s")
            expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=15_000)
            base, token = url.split("/lab/")[0], url.split("token=")[1]
            for session in page.request.get(f"{base}/api/sessions?token={token}").json():
                page.request.delete(f"{base}/api/sessions/{session['id']}?token={token}")
            page.reload()
            expect(page.locator(".jp-Notebook")).to_be_visible(timeout=30_000)
            static = page.locator(".llmkit-run-history-static")
            expect(static).to_be_visible(timeout=20_000)
            expect(static.locator(".llmkit-runs")).to_contain_text("echo: Tell me about pears.")
            expect(static.locator(".llmkit-run .llmkit-output")).to_have_text(
                "echo: Tell me about pears.")  # the run that was selected
            expect(page.get_by_text("Error displaying widget")).to_be_hidden()
            static.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "llm-history-reopened.png"))
        finally:
            browser.close()
