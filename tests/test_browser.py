"""One real-browser test: JupyterLab on 127.0.0.1, driven by Playwright in Debian's Chromium.

Opens tests/notebooks/llmkit_tour.ipynb, runs all cells against the test server, checks what a user
sees (an LLMCall widget with its token counts and escaped output, the playground's history), clicks
the playground's Run button, pins both runs to compare them and saves a screenshot to
test-artifacts/browser/. Needs ``apt-get install -y chromium``; without it the test fails under CI
(``CI=true``) and is skipped elsewhere.
"""

from __future__ import annotations

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

import pytest

from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer
from tests.test_notebooks_exec import TOUR, kernel_env

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


@pytest.fixture
def lab(openai_server: OpenAITestServer, tmp_path: Path) -> Iterator[str]:
    """JupyterLab serving a copy of the tour, its kernels pointed at the test server; its URL."""
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    shutil.copy(TOUR, root / TOUR.name)
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
        env=kernel_env(openai_server, home), cwd=root, stdout=log, stderr=subprocess.STDOUT,
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
        yield f"{url}/lab/tree/{TOUR.name}?token={token}"
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
                assert dialogs == [] and SECRET not in page.content()
            finally:
                page.screenshot(path=str(ARTIFACTS / "jupyterlab-playground.png"), full_page=True)
        finally:
            browser.close()
