"""The package's public surface, import cost, shipped files, and names the text refers to."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import llmkit
from llmkit.base.config import SCHEMA

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("openai", "tiktoken", "IPython", "ipywidgets", "pydantic", "redis", "jinja2", "diskcache",
         "sqlite3")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_import_stays_light() -> None:
    out = _run(f"import sys, llmkit; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_public_api() -> None:
    for name in llmkit.__all__:
        assert hasattr(llmkit, name), name
    for name in ["LLMCall", "OpenAIClient", "AzureClient", "client", "register_client", "force_api_type",
                 "force_api_cache", "force_default_value", "count_tokens", "InvalidRequestError",
                 "NonTerminalError"]:
        assert name in llmkit.__all__
    assert callable(llmkit.load_ipython_extension)


def test_the_package_says_it_is_typed_and_ships_its_data_files() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib is 3.11+
    section = pyproject.split("[tool.setuptools.package-data]\n", 1)[1].split("\n[", 1)[0]
    listed = re.search(r"^llmkit = \[(.*)\]$", section, re.M)
    assert listed, section
    patterns = re.findall(r'"([^"]+)"', listed[1])
    assert "py.typed" in patterns  # PEP 561: mypy and pyright read llmkit's hints in user code
    for pattern in patterns:
        assert list((ROOT / "llmkit").glob(pattern)), pattern


# A dotted name (``llmkit.<module>.<attribute>``) or a path (``llmkit/<folder>/<file>``) written in a
# docstring, message, test, README or notebook; not one inside a longer path (``~/.cache/llmkit/...``)
# nor a CSS class (``llmkit-call``).
_MENTION = re.compile(r"(?<![\w./~-])(llmkit(?:\.[A-Za-z_]\w*)+|llmkit/[\w./-]*\w)")
_TEXT = ("llmkit/**/*.py", "llmkit/**/*.ini", "llmkit/**/*.md", "tests/**/*.py", "tests/**/*.ipynb",
         "benchmarks/**/*.py", "notebooks/**/*.ipynb", "notebooks/**/*.md", "README.md", "Makefile",
         "pyproject.toml")

# Run in a fresh interpreter: importing a submodule binds it on its package, which would change
# what ``llmkit.history`` is in this test process. A name resolves if each part is an attribute
# of the previous one or a module below it; ``__main__`` modules are located, never run.
_RESOLVE = """
import importlib, importlib.util, json, sys
import llmkit

def _module(name):
    if name.endswith("__main__"):
        return importlib.util.find_spec(name) is not None and object()
    try:
        return importlib.import_module(name)
    except ImportError:
        return None

def resolves(name):
    parts = name.split(".")
    obj = llmkit
    for i in range(1, len(parts)):
        if hasattr(obj, parts[i]):
            obj = getattr(obj, parts[i])
            continue
        module = _module(".".join(parts[: i + 1]))  # a submodule not imported yet
        if module is None:  # or the prefix is a module shadowed by a function of the same name
            prefix = _module(".".join(parts[:i]))
            module = getattr(prefix, parts[i], None) if prefix is not None else None
        if module is None:
            return False
        obj = module
    return True

print(json.dumps([n for n in json.load(sys.stdin) if not resolves(n)]))
"""


def _mentions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pattern in _TEXT:
        for path in sorted(ROOT.glob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for name in _MENTION.findall(line):
                    found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_every_llmkit_name_in_the_text_exists() -> None:
    """Docstrings, messages, tests, the README and the notebooks name modules, attributes and files
    that exist in the tree as it is now: a renamed module leaves no stale name behind."""
    mentions = _mentions()
    assert len(mentions) > 50  # the scan reads the text (a wrong glob would find nothing)
    missing_files = [n for n in mentions if "/" in n and not (ROOT / n).exists()]
    dotted = [n for n in mentions if "/" not in n]
    out = subprocess.run([sys.executable, "-c", _RESOLVE], input=json.dumps(dotted), cwd=ROOT,
                         capture_output=True, text=True, check=True)
    stale = sorted(missing_files + json.loads(out.stdout))
    assert not stale, "\n".join(f"{n} (no such module, attribute or file): {', '.join(mentions[n])}"
                                for n in stale)


def _configuration_table() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_configuration_table_lists_every_key() -> None:
    rows = [line for line in _configuration_table().splitlines() if line.startswith("| `")]
    in_table = {key for row in rows for key in re.findall(r"`([A-Z_]+)`", row.split("|")[1])}
    assert in_table == {key.upper() for key in SCHEMA}
def test_every_public_name_imports_in_a_fresh_interpreter_and_is_listed() -> None:
    """Names imported on first use work with ``from llmkit import X`` and show in ``dir()``."""
    code = ("import llmkit\n"
            "missing = sorted(set(llmkit.__all__) - set(dir(llmkit)))\n"
            "for name in llmkit.__all__:\n"
            "    exec(f'from llmkit import {name}')\n"
            "from llmkit import OpenAIClient, client\n"
            "print(missing, client is llmkit.client, OpenAIClient.__module__)")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True", "llmkit.clients.openai_client"]


def test_a_broken_module_fails_loudly_when_its_name_is_used() -> None:
    """Loading a name on first use hides no error: an import error surfaces as itself, and an
    unknown name is an AttributeError."""
    code = ("import sys; sys.modules['llmkit.base.tokens'] = None\n"
            "import llmkit\n"
            "try:\n"
            "    from llmkit import count_tokens\n"
            "except ImportError as exc:\n"
            "    print('ImportError', exc.name)\n"
            "try:\n"
            "    getattr(llmkit, 'no_such_name')\n"
            "except AttributeError as exc:\n"
            "    print('AttributeError', exc)")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "ImportError llmkit.base.tokens",
        "AttributeError module 'llmkit' has no attribute 'no_such_name'"]


def test_the_license_is_an_spdx_string_so_installs_show_no_deprecation_box() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^license = "MIT"$', pyproject, re.M)  # a table ({ text = ... }) is deprecated
    required = re.search(r"^requires = \[\"setuptools>=(\d+)\"\]", pyproject, re.M)
    assert required and int(required[1]) >= 77  # the first to read the SPDX string
    files = re.search(r"^license-files = \[(.*)\]$", pyproject, re.M)
    assert files and all((ROOT / f).is_file() for f in re.findall(r'"([^"]+)"', files[1]))
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
