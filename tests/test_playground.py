"""The playground widget, built and run without a kernel, against the test server."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

import llmkit
from llmkit import LLMCall, LLMKitError, LLMKitWarning, OpenAIClient, TemplateError
from llmkit.base.templates import Template
from llmkit.notebook.kit import markdown_html
from llmkit.notebook.playground import Playground, diff_html, playground
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer
from tests.test_widgets import widget_states


def state_text(pg: Playground) -> str:
    """Everything the widget tree would sync to the browser (and store in a notebook)."""
    return json.dumps(widget_states(pg))


def entries(pg: Playground) -> list[str]:
    """The history entries' HTML, newest first."""
    assert "llmkit-history" in pg.history._dom_classes
    found = []
    for entry in pg.history.children:
        assert "llmkit-history-entry" in entry._dom_classes
        pin, body = entry.children
        assert "llmkit-pin" in pin._dom_classes
        found.append(body.value)
    return found


def test_one_field_per_template_variable_following_edits(llm: OpenAITestServer) -> None:
    pg = LLMCall("You are a {{ persona }}.", "Explain {{ topic }}.").playground()
    assert isinstance(pg, Playground) and "llmkit-playground" in pg._dom_classes
    assert [f.description for f in pg.variables_box.children] == ["persona", "topic"]
    pg.fields["topic"].value = "entropy"
    pg.user.value = "Explain {{ topic }} to a {{ audience }}."
    assert [f.description for f in pg.variables_box.children] == ["persona", "topic", "audience"]
    assert pg.fields["topic"].value == "entropy"  # kept across edits
    pg.user.value = ""
    assert [f.description for f in pg.variables_box.children] == ["persona"]

    pg.system.value = "Broken {{ persona"  # mid-edit: say so, keep the fields
    assert pg.error.layout.display is None and "TemplateError" in pg.error.value
    assert [f.description for f in pg.variables_box.children] == ["persona"]
    pg.system.value = "Fixed {{ tone }}"
    assert pg.error.value == "" and pg.error.layout.display == "none"
    assert [f.description for f in pg.variables_box.children] == ["tone"]


def test_prefilled_variables_and_bad_arguments() -> None:
    call = LLMCall("s", "Explain {{ topic }}.")
    assert call.playground().fields["topic"].value == ""
    assert llmkit.playground(call, topic="tides").fields["topic"].value == "tides"  # not shadowed
    with pytest.raises(TemplateError, match=r"no variable 'topc'.*they use: topic"):
        playground(call, topc="tides")
    with pytest.raises(LLMKitError, match="expected an LLMCall, got str"):
        playground("You are terse.")  # type: ignore[arg-type]


def test_run_sends_the_edited_prompt_and_records_it_in_the_history(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("Be {{ tone }}.", "Explain {{ topic }}.", temperature=0.3),
                    tone="brief", topic="entropy")
    assert pg.temperature.value == 0.3 and pg.model.value == "gpt-4o-mini"
    assert {"gpt-4o-mini", "gpt-4o"} <= set(pg.model.options)
    pg.model.value, pg.temperature.value, pg.max_tokens.value = "gpt-4o", 0.5, 50
    pg.user.value = "Explain {{ topic }} in **bold**."
    run = pg.run()
    assert run is not None and run.number == 1 and run.result == "echo: Explain entropy in **bold**."
    body = llm.requests[-1].body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-4o", 0.5, 50)
    assert body["messages"][0]["content"] == "Be brief."

    [entry] = entries(pg)
    usage = run.result.usage
    assert "run 1" in entry and "gpt-4o" in entry and "temperature=0.5" in entry
    assert markdown_html(run.result) in entry and "<strong>bold</strong>" in entry
    assert f"total {usage['total_tokens']}" in entry and f"prompt {usage['prompt_tokens']}" in entry
    assert re.search(r"\d+\.\d\d s", entry) and re.search(r"cost \$0\.0*[1-9]\d?<", entry)
    assert "llmkit-cache-hit" not in entry and "topic = &#x27;entropy&#x27;" in entry

    again = pg.run()  # same prompt and settings: answered from the cache
    assert again is not None and again.result.cached and len(llm.requests) == 1
    newest, oldest = entries(pg)
    assert "run 2" in newest and "llmkit-cache-hit" in newest and "cost $0<" in newest
    assert "run 1" in oldest and pg.runs == [run, again]


def test_the_run_button_runs(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("s", "Say {{ word }}."), word="hi")
    assert "llmkit-run" in pg.run_button._dom_classes
    pg.run_button.click()
    assert len(entries(pg)) == 1 and "echo: Say hi." in pg.runs[0].result
    assert not pg.run_button.disabled


def test_pinned_runs_are_compared_side_by_side(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("s", "Name a {{ thing }}."))
    for thing in ("fruit", "colour", "river"):
        pg.fields["thing"].value = thing
        pg.run()
    assert "llmkit-compare" in pg.compare._dom_classes and pg.compare.layout.display == "none"
    first, _, third = pg.runs
    first.pin.value = True
    assert "pin another run" in pg.compare.children[0].value
    third.pin.value = True
    assert pg.compare.layout.display is None
    left, right = (column.value for column in pg.compare.children)
    assert "run 1" in left and "echo: Name a fruit." in left and "<ins" not in left
    assert "run 3" in right and "changes from run 1" in right
    assert re.search(r"echo: Name a <del[^>]*>fruit\.</del> <ins[^>]*>river\.</ins>", right)
    for column in (left, right):  # each run's templates and parameters, each shown once
        assert "system template" in column and "Name a {{ thing }}." in column
        assert column.count("max_tokens=1024") == 1 and column.count("temperature=1.0") == 1
        assert column.count("gpt-4o-mini") == 1 and column.count("tokens: prompt") == 1
    first.pin.value = third.pin.value = False
    assert pg.compare.children == () and pg.compare.layout.display == "none"


def test_errors_show_in_the_widget_which_keeps_working(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("s", "Explain {{ topic }}."))
    assert pg.run() is None and llm.requests == []  # the field is empty: nothing is sent
    assert "llmkit-error" in pg.error._dom_classes and pg.error.layout.display is None
    assert "{{ topic }}" in pg.error.value and "fill in the field &#x27;topic&#x27;" in pg.error.value

    pg.fields["topic"].value = "tides"
    llm.fail(400, message="Invalid value for 'messages': <b>too odd</b>")
    assert pg.run() is None and len(llm.requests) == 1
    assert "InvalidRequestError" in pg.error.value and "&lt;b&gt;too odd&lt;/b&gt;" in pg.error.value
    assert "<b>too odd" not in state_text(pg) and pg.history.children == ()

    run = pg.run()
    assert run is not None and run.result == "echo: Explain tides."
    assert pg.error.value == "" and len(entries(pg)) == 1

    pg.user.value = "Use {{ cache }}."  # a name LLMCall.call takes: fine, variables go as a dict
    pg.fields["cache"].value = "memory"
    assert pg.run() is not None and llm.requests[-1].body["messages"][1]["content"] == "Use memory."


def test_model_and_user_text_is_escaped_and_no_key_reaches_the_state(llm: OpenAITestServer) -> None:
    attack = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    pg = playground(LLMCall("s", "{{ text }}"), text=attack)
    run = pg.run()
    assert run is not None and attack in run.result  # the server echoed it back
    llm.fail(401, message=f"Incorrect API key provided: {SECRET}")
    pg.fields["text"].value = "again"
    assert pg.run() is None and "AuthenticationError" in pg.error.value
    state = state_text(pg)
    for raw in ("<img", "<script", "onerror=\"alert"):
        assert raw not in state.replace("\\u003c", "<").replace('\\"', '"'), raw
    assert "&lt;img" in entries(pg)[0] and "&lt;script&gt;alert(2)" in entries(pg)[0]
    assert SECRET not in state and SECRET not in repr(pg)


def test_streaming_fills_the_output_as_tokens_arrive(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("s", "Count {{ n }}."), n="one two three four")
    pg.stream.value = True
    seen: list[tuple[str, str | None]] = []
    pg.view.output.observe(lambda change: seen.append((change["new"], pg.view.layout.display)), "value")
    run = pg.run()
    assert run is not None and llm.requests[-1].body["stream"] is True
    assert all(shown is None for _, shown in seen) and "llmkit-call" in pg.view._dom_classes
    partial = [value for value, _ in seen if value and "four" not in value]
    assert partial and seen[-1][0] == markdown_html("echo: Count one two three four.")
    assert pg.view.layout.display == "none"  # the answer is now in the history
    assert run.result.usage["completion_tokens"] == 6
    assert f"total {run.result.usage['total_tokens']}" in entries(pg)[0]


def test_reasoning_models_take_no_temperature(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("s", "hi"))
    pg.model.value = "o4-mini"
    assert pg.temperature.disabled
    assert pg.run() is not None
    body = llm.requests[-1].body
    assert "temperature" not in body and body["max_completion_tokens"] == pg.max_tokens.value
    pg.model.value = ""  # back to the default model
    assert not pg.temperature.disabled


def test_responses_only_models_are_offered_and_run_on_the_responses_api(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("Be brief.", "Explain {{ topic }}."), topic="tides")
    assert {"o3-pro", "gpt-5-pro", "gpt-4o-mini"} <= set(pg.model.options)
    assert pg.model.tooltip == ""
    pg.model.value = "o3-pro"
    assert "Responses API only" in pg.model.tooltip and pg.temperature.disabled
    run = pg.run()
    assert run is not None and run.result == "echo: Explain tides."
    sent = llm.requests[-1]
    assert sent.path == "/v1/responses" and sent.body["model"] == "o3-pro"
    assert sent.body["max_output_tokens"] == pg.max_tokens.value and "temperature" not in sent.body
    pg.model.value = "gpt-4o"
    assert pg.model.tooltip == "" and pg.run() is not None
    assert llm.requests[-1].path == "/v1/chat/completions"


class _FailingClient(OpenAIClient):
    """A client whose failure is not one of llmkit's errors and quotes the configured key."""

    def execute(self, prepared: Any, on_delta: Any = None) -> Any:
        raise RuntimeError(f"proxy refused key {self.settings()['api_key']}")


def test_other_errors_show_too_without_the_key(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("s", "hi", client=_FailingClient()))
    assert pg.run() is None and isinstance(pg.last_error, RuntimeError)
    assert "RuntimeError: proxy refused key &lt;hidden&gt;" in pg.error.value
    assert SECRET not in state_text(pg)


def test_apply_hands_the_edits_to_the_call_and_map_uses_them(llm: OpenAITestServer) -> None:
    call = LLMCall("s", "Explain {{ topic }}.")
    params, system = call.model_params, call.system_template
    pg = call.playground()
    assert "llmkit-apply" in pg.apply_button._dom_classes and pg.call is call
    pg.user.value = "Explain {{ topic }} in a {{ tone }} tone."
    pg.model.value, pg.temperature.value, pg.max_tokens.value = "gpt-4o", 0.5, 50
    row = {"topic": "tides", "tone": "dry"}
    with pytest.warns(LLMKitWarning, match="rows carry 'tone'"):  # not the call's until applied
        call.map([row], progress=False)
    assert llm.requests[-1].body["messages"][1]["content"] == "Explain tides."

    pg.apply_button.click()
    assert pg.apply_button.description == "Applied" and pg.last_error is None
    assert isinstance(call.user_template, Template) and call.system_template is not system
    assert call.model_params == {"model": "gpt-4o", "temperature": 0.5, "max_tokens": 50}
    assert call.model_params is not params and params == {}  # a new dict: readers see old or new
    [result] = call.map([row], progress=False)
    assert result == "echo: Explain tides in a dry tone."
    body = llm.requests[-1].body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-4o", 0.5, 50)

    pg.user.value = ""  # no user template; a reasoning model takes no temperature
    assert pg.apply_button.description == "Apply"  # edited since
    pg.model.value = "o4-mini"
    assert pg.apply() is call and call.user_template is None
    assert call.model_params == {"model": "o4-mini", "max_tokens": 50}

    pg.system.value = "Broken {{ x"  # nothing changes, the widget says why
    assert pg.apply() is None and "TemplateError" in pg.error.value
    assert call.system_template.source == "s"


def test_code_builds_an_equal_call(llm: OpenAITestServer) -> None:
    call = LLMCall("You are a {{ persona }}.\nSay 'hi' \"twice\".", "Explain {{ topic }}.", top_p=0.9)
    pg = call.playground()
    pg.temperature.value, pg.max_tokens.value = 0.25, 99
    code = pg.code()
    assert code.startswith("LLMCall(") and "top_p=0.9" in code
    namespace: dict[str, Any] = {"LLMCall": LLMCall}
    exec(f"copy = {code}", namespace)
    copy = namespace["copy"]
    assert copy.system_template.source == call.system_template.source
    assert copy.user_template.source == "Explain {{ topic }}."
    assert copy.model_params == {"top_p": 0.9, "max_tokens": 99, "model": "gpt-4o-mini",
                                 "temperature": 0.25}
    pg.apply()
    assert (copy.model_params, copy.variables) == (call.model_params, call.variables)

    pg.user.value = ""
    exec(f"copy = {pg.code()}", namespace)
    assert namespace["copy"].user_template is None

    assert pg.code_view.layout.display == "none" and pg.code_view.value == ""
    pg.code_button.value = True  # the Code button shows it, escaped, and follows edits
    assert "llmkit-code" in pg.code_view._dom_classes and pg.code_view.layout.display is None
    pg.system.value = "<b>{{ persona }}</b>"
    shown = re.sub(r"^<pre[^>]*>|</pre>$", "", pg.code_view.value)
    assert html.unescape(shown) == pg.code() and "&lt;b&gt;" in shown and "<b>" not in shown
    assert pg.apply_button.description == "Apply"
    pg.code_button.value = False
    assert pg.code_view.layout.display == "none"


def test_code_and_comparisons_never_show_a_credential(llm: OpenAITestServer) -> None:
    client = OpenAIClient(api_key=SECRET, base_url=llm.base_url)
    pg = playground(LLMCall("s", "hi", client=client,
                            extra_headers={"Authorization": f"Bearer {SECRET}"}))
    pg.code_button.value = True
    code = pg.code()
    assert SECRET not in code and "# extra_headers=<hidden>" in code and "# client=" in code
    for _ in range(2):
        assert pg.run() is not None
        pg.runs[-1].pin.value = True
    assert SECRET not in state_text(pg) and "extra_headers=&lt;hidden&gt;" in state_text(pg)


def test_compared_answers_are_escaped_and_diffed_by_word(llm: OpenAITestServer) -> None:
    pg = playground(LLMCall("s", "{{ text }}"))
    for text in ("<script>alert(1)</script> one <b>two</b>", "<script>alert(2)</script> one <i>3</i>"):
        pg.fields["text"].value = text
        pg.run()
        pg.runs[-1].pin.value = True
    left, right = (column.value for column in pg.compare.children)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; one &lt;b&gt;two&lt;/b&gt;" in left
    assert re.search(r"<del[^>]*>&lt;script&gt;alert\(1\)&lt;/script&gt;</del> "
                     r"<ins[^>]*>&lt;script&gt;alert\(2\)&lt;/script&gt;</ins> one ", right)
    pg.fields["text"].value = ""  # the text field itself holds what was typed, as text
    state = state_text(pg).replace("\\u003c", "<")
    for raw in ("<script", "<b>two", "<i>3"):
        assert raw not in state, raw


def test_diff_html_marks_words() -> None:
    assert diff_html("a b c", "a b c") == "a b c"
    assert re.fullmatch(r"<ins[^>]*>new words</ins>", diff_html("", "new words"))
    marks = re.findall(r'<(?:ins|del) style="([^"]*)"', diff_html("a", "b"))
    for style in marks:  # readable in the dark theme: the theme's text colour on a translucent tint
        assert "color:var(--jp-content-font-color" in style and re.search(r"background:rgba\(", style)
    assert len(marks) == 2
    marked = diff_html("the cat sat on the mat", "the dog sat on the mat today")
    assert re.fullmatch(r"the <del[^>]*>cat</del> <ins[^>]*>dog</ins> sat on the mat "
                        r"<ins[^>]*>today</ins>", marked)
    assert re.fullmatch(r"keep <del[^>]*>&lt;gone&gt;</del>", diff_html("keep <gone>", "keep"))
    assert re.fullmatch(r"a <del[^>]*>b</del> c", diff_html("a b c", "a c"))
    assert re.fullmatch(r"<del[^>]*>x</del> <ins[^>]*>y</ins>", diff_html("x", "y"))
