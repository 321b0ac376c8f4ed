"""`CallView`, built directly (ipywidgets objects need no kernel)."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets

from llmkit import LLMCall
from llmkit.notebook.kit import markdown_html
from llmkit.notebook.widgets import CallView
from tests.openai_server import OpenAITestServer


def widget_states(widget: ipywidgets.Widget) -> list[dict[str, Any]]:
    """The synced state of ``widget`` and of every widget it holds, recursively."""
    states = [widget.get_state()]
    for name in widget.keys:
        value = getattr(widget, name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, ipywidgets.Widget):
                states += widget_states(item)
    return states


def test_view_of_a_completion(llm: OpenAITestServer) -> None:
    call = LLMCall("Be brief.", "Describe {{ thing }}.", temperature=0)
    llm.reply("A **red** apple.")
    result = call.call(thing="an apple")
    view = CallView(result.completion)
    assert "llmkit-call" in view._dom_classes
    header, messages, output, tokens = view.children
    assert "llmkit-header" in header._dom_classes and "gpt-4o-mini" in header.value
    assert "temperature=0" in header.value and "cost $0.0" in header.value  # what was paid, rounded
    assert "llmkit-cache-hit" not in header.value
    assert [child.value.count("llmkit-message") for child in messages.children] == [1, 1]
    assert ">system</span>" in messages.children[0].value and "Be brief." in messages.children[0].value
    assert "tokens</span>" in messages.children[1].value
    assert "llmkit-output" in output._dom_classes and "<strong>red</strong>" in output.value
    assert "llmkit-tokens" in tokens._dom_classes
    assert tokens.value == (f"tokens: prompt {result.usage['prompt_tokens']} · completion "
                            f"{result.usage['completion_tokens']} · total {result.usage['total_tokens']}")

    cached = call.call(thing="an apple")
    view.update(cached)
    assert "llmkit-cache-hit" in header.value and "Result" in header.value


def test_update_replaces_and_releases_the_message_widgets(llm: OpenAITestServer) -> None:
    call = LLMCall("System {{ a }}", "User {{ b }}")
    view = CallView(call)  # before any call: the templates
    old = list(view.children[1].children)
    assert len(old) == 2 and "{{ a }}" in old[0].value and view.children[2].value == ""
    assert view.children[3].layout.display == "none"
    view.update(call.call(a="one", b="two"))
    assert all(child.comm is None for child in old)
    assert "User two" in view.children[1].children[1].value
    assert "echo: User two" in view.children[2].value
    assert view.children[3].layout.display is None


def test_streamed_pieces_show_as_they_arrive(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "{{ q }}")
    view = CallView(call)
    seen: list[str] = []

    def on_delta(piece: str) -> None:
        view.append(piece)
        seen.append(view.children[2].value)

    result = call.call(q="one two three", stream=True, on_delta=on_delta)
    assert len(seen) > 2 and seen[-1] == markdown_html("echo: one two three")
    assert "echo:" in seen[0] and "three" not in seen[0]
    view.update(result)
    assert view.children[2].value == markdown_html(result)
    json.dumps(widget_states(view))  # every state is plain JSON
