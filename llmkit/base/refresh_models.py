"""Regenerate ``llmkit/base/models.json``, the data of `llmkit.base.models`, from LiteLLM.

Run it when OpenAI or Azure add models or change prices, then review the diff and commit it::

    python -m llmkit.base.refresh_models                # pip-downloads the latest litellm wheel
    python -m llmkit.base.refresh_models --wheel PATH   # or reads a litellm wheel you already have

It reads ``litellm/model_prices_and_context_window_backup.json`` (MIT) out of the wheel; litellm
is never imported, and llmkit never needs it at run time. Kept: OpenAI chat, Responses and
embedding models, plus the Azure entries whose name (``gpt-35`` spelled ``gpt-3.5``) is not
already an OpenAI entry. Dropped: ``ft:`` templates, regional Azure prices (``azure/eu/...``),
non-OpenAI models on Azure, and audio, realtime, image, speech and moderation models. Prices
are written in USD per 1M tokens.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

DATA = "litellm/model_prices_and_context_window_backup.json"
OUTPUT = Path(__file__).with_name("models.json")
_MODES = {"chat": "chat", "responses": "responses", "embedding": "embedding"}
_NOT_TEXT = re.compile(r"audio|realtime|image|tts|transcri|moderation|container|router")
_OPENAI_FAMILY = re.compile(r"(?:gpt-|o\d|text-embedding-|ada$|codex-|computer-use-|chat-latest)")


def read_wheel(wheel: Path) -> tuple[dict[str, Any], str]:
    """litellm's model table and litellm's version, from a litellm wheel."""
    with zipfile.ZipFile(wheel) as z:
        metadata = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        version = re.search(r"^Version: (\S+)", z.read(metadata).decode(), re.M)
        return json.loads(z.read(DATA)), version.group(1) if version else "unknown"


def _per_million(value: Any) -> float | None:
    return round(float(value) * 1e6, 6) if isinstance(value, (int, float)) else None


def _tokens(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def _entry(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_input_tokens": _tokens(spec.get("max_input_tokens")),
        "max_output_tokens": _tokens(spec.get("max_output_tokens")),
        "input_price": _per_million(spec.get("input_cost_per_token")),
        "cached_input_price": _per_million(spec.get("cache_read_input_token_cost")),
        "output_price": _per_million(spec.get("output_cost_per_token")),
        "reasoning": spec.get("supports_reasoning") is True,
        "mode": _MODES[spec["mode"]],
    }


def select(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The kept models of litellm's table, by name, as `llmkit.base.models` reads them."""
    specs = {k: v for k, v in data.items()
             if isinstance(v, dict) and v.get("mode") in _MODES and not _NOT_TEXT.search(k)}
    models = {name: _entry(spec) for name, spec in specs.items()
              if spec.get("litellm_provider") == "openai" and "/" not in name and ":" not in name}
    for key, spec in specs.items():
        name = key.removeprefix("azure/").replace("gpt-35", "gpt-3.5")
        if (spec.get("litellm_provider") == "azure" and key.startswith("azure/") and "/" not in name
                and _OPENAI_FAMILY.match(name) and name not in models):
            models[name] = _entry(spec)
    return models


def render(models: dict[str, dict[str, Any]], version: str, refreshed: str) -> str:
    """models.json's text: a header, then one model a line, sorted."""
    lines = [f"    {json.dumps(name)}: {json.dumps(models[name], sort_keys=True)}" for name in sorted(models)]
    header = {"source": "LiteLLM model_prices_and_context_window_backup.json (MIT)",
              "litellm_version": version, "refreshed": refreshed}
    head = "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in header.items())
    return "{\n" + head + '  "models": {\n' + ",\n".join(lines) + "\n  }\n}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a litellm wheel (default: pip download the latest)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    if args.wheel:
        data, version = read_wheel(args.wheel)
    else:
        with tempfile.TemporaryDirectory(prefix="litellm-wheel-") as folder:
            subprocess.run([sys.executable, "-m", "pip", "download", "litellm", "--no-deps",
                            "--only-binary=:all:", "--quiet", "-d", folder], check=True)
            data, version = read_wheel(next(Path(folder).glob("litellm-*.whl")))
    models = select(data)
    args.output.write_text(render(models, version, datetime.date.today().isoformat()), encoding="utf-8")
    print(f"wrote {len(models)} models from litellm {version} to {args.output}")


if __name__ == "__main__":
    main()
