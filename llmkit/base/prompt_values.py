"""How a notebook object reads inside a prompt: a pandas DataFrame or Series as a compact Markdown
table (its head, shape and dtypes) instead of its repr, and any object with ``_repr_markdown_`` as
that Markdown. Everything else is left to Jinja (``str``).

pandas is never imported: a DataFrame is recognised by its type's module and name, so ``import
llmkit`` stays light and a notebook without pandas pays nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HEAD_ROWS", "as_prompt_text", "table_markdown"]

HEAD_ROWS = 10
"""Rows of a DataFrame or Series shown in a prompt (the model sees the shape, so it knows more exist)."""
_CELL = 80  # characters of one cell


def as_prompt_text(value: Any) -> Any:
    """``value`` as it should appear in a prompt: Markdown text for a DataFrame, a Series or an
    object with ``_repr_markdown_``; ``value`` itself otherwise."""
    kind = type(value)
    if kind.__module__.split(".")[0] == "pandas" and kind.__name__ in ("DataFrame", "Series"):
        return table_markdown(value)
    shown = getattr(kind, "_repr_markdown_", None)
    if callable(shown) and not isinstance(value, type):
        text = shown(value)
        if isinstance(text, tuple):  # IPython allows (data, metadata)
            text = text[0]
        if isinstance(text, str):
            return text
    return value


def _cell(value: Any) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def table_markdown(data: Any, rows: int = HEAD_ROWS) -> str:
    """A pandas DataFrame or Series as a Markdown table of its first ``rows`` rows, with a line
    giving its shape and dtypes."""
    if type(data).__name__ == "Series":
        name = data.name if data.name is not None else "value"
        columns, dtypes = [str(name)], f"{name}: {data.dtype}"
        body = [[_cell(index), _cell(v)] for index, v in data.head(rows).items()]
        shape = f"{len(data):,} rows"
    else:
        columns = [str(c) for c in data.columns]
        dtypes = ", ".join(f"{c}: {t}" for c, t in zip(columns, data.dtypes, strict=True))
        body = [[_cell(index), *map(_cell, values)]
                for index, *values in data.head(rows).itertuples(name=None)]
        shape = f"{data.shape[0]:,} rows × {data.shape[1]:,} columns"
    header = ["", *map(_cell, columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    more = len(data) - len(body)
    lines.append(f"\n({shape}{f', first {len(body)} shown' if more > 0 else ''}; dtypes: {dtypes})")
    return "\n".join(lines)
