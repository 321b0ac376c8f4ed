"""The package is layered: base <- clients <- calls <- notebook, with no import cycles.

Every ``import`` statement in every module counts, including those inside functions: a lower
layer never imports a higher one (the notebook layer is reached by name through
`llmkit.base.hooks`, and only from below), and no set of modules imports itself in a circle.
A name private to a module (a leading underscore) is used by that module alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import llmkit

ROOT = Path(llmkit.__file__).parent
LAYERS = {"base": 0, "clients": 1, "calls": 2, "notebook": 3}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").exists() or (ROOT.parent / rel / "__init__.py").exists()


def _package(path: Path) -> str:
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def _target(node: ast.ImportFrom, package: str) -> str:
    """The absolute name of the module a ``from ... import`` statement imports from."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(path: Path) -> set[str]:
    """The llmkit modules that ``path`` imports."""
    package = _package(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "llmkit")
        elif isinstance(node, ast.ImportFrom):
            target = _target(node, package)
            if target.split(".")[0] != "llmkit":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if _is_module(sub) else target)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_module_imports_a_layer_above_it() -> None:
    upward = []
    for module, targets in _graph().items():
        mine = _layer(module)
        if mine is None:  # llmkit/__init__.py: the public facade sits on top
            continue
        for target in targets:
            theirs = _layer(target)
            if theirs is None or theirs > mine:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_check_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    graph = _graph()
    assert "llmkit.notebook.magics" in graph["llmkit"]  # imported inside load_ipython_extension
    assert "llmkit.base.errors" in graph["llmkit.clients.openai_client"]
    # the display reaches its views by import statements, so a circle through them would show
    assert "llmkit.notebook.runs_display" in graph["llmkit.notebook.display"]


def _imports_by_name(path: Path) -> bool:
    """Whether ``path`` imports a module by a name in a string (``importlib.import_module``,
    ``__import__``): an edge the graph above cannot see."""
    return any((isinstance(node, ast.Attribute) and node.attr == "import_module")
               or (isinstance(node, ast.Name) and node.id == "__import__")
               for node in ast.walk(ast.parse(path.read_text(), str(path))))


def test_only_hooks_imports_by_name_and_the_notebook_layer_never_uses_it() -> None:
    """`llmkit.base.hooks` is the one seam by which a lower layer reaches the notebook layer. A
    notebook module that reached another through it would hide an edge (and maybe a circle) from
    the checks above, as ``display -> runs_display`` once did."""
    assert sorted(_module_name(p) for p in ROOT.rglob("*.py") if _imports_by_name(p)) == [
        "llmkit.base.hooks"]
    assert [_module_name(p) for p in (ROOT / "notebook").rglob("*.py") if _reaches_by_name(p)] == []


def _reaches_by_name(path: Path) -> bool:
    """Whether ``path`` uses the hooks that load a notebook module by name (``notebook``,
    ``mimebundle``); asking `llmkit.base.hooks.in_kernel` is fine."""
    by_name = {"notebook", "mimebundle"}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("hooks") and \
                any(a.name in by_name for a in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr in by_name and \
                isinstance(node.value, ast.Name) and node.value.id == "hooks":
            return True
    return False


def _private_uses(source: str, package: str) -> list[str]:
    """Names private to another llmkit module (a leading underscore, not a dunder) that
    ``source``, a module of ``package``, uses: imported from it (``from .x import _name``), or
    read off it (``x._name``, where ``x`` is an llmkit module it imported)."""
    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> llmkit module
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _target(node, package)
            if target.split(".")[0] != "llmkit":
                continue
            for alias in node.names:
                if private(alias.name):
                    found.append(f"{target}.{alias.name}")
                elif _is_module(f"{target}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "llmkit" and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in modules):
            found.append(f"{modules[node.value.id]}.{node.attr}")
    return found


# Modules being re-cut on other branches of the same change; they import their helpers' privates
# until then. Empty this when those branches are merged.
PENDING = {"llmkit.base.cache", "llmkit.base.cache_db", "llmkit.base.output_types"}


def test_no_module_uses_another_modules_private_names() -> None:
    used = {_module_name(p): _private_uses(p.read_text(), _package(p)) for p in ROOT.rglob("*.py")}
    assert {m: names for m, names in used.items() if names and m not in PENDING} == {}


def test_the_private_name_check_sees_imports_and_attributes() -> None:
    source = ("from . import display\nfrom .kit import _markdown, fence\n"
              "from ..base import config as c\nimport llmkit.base.secrets as s\n"
              "display._scrub(None); c._forced; s._SECRET_NAME; display.__name__; fence._x\n")
    assert sorted(_private_uses(source, "llmkit.notebook")) == [
        "llmkit.base.config._forced", "llmkit.base.secrets._SECRET_NAME",
        "llmkit.notebook.display" + "._scrub", "llmkit.notebook.kit._markdown"]
