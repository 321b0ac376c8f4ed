"""The package is layered: base <- clients <- calls <- notebook, with no import cycles.

Every ``import`` statement in every module counts, including those inside functions: a lower
layer never imports a higher one (the notebook layer is reached by name through
`llmkit.base.hooks`), and no set of modules imports itself in a circle.
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


def _imports(path: Path) -> set[str]:
    """The llmkit modules that ``path`` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "llmkit")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
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
