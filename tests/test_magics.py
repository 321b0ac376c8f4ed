"""The IPython magics in a real InteractiveShell, against the test server."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import CapturedIO, RichOutput, capture_output

import llmkit
from llmkit.base.errors import CacheError, ConfigError, MissingVariableError
from llmkit.base.result import Result
from llmkit.clients import local, registry
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer


def run(shell: InteractiveShell, cell: str) -> tuple[CapturedIO, ExecutionResult]:
    """Run a cell, capturing what it prints and displays; the API key must be in none of it."""
    with capture_output() as out:
        result = shell.run_cell(cell)
    shown = out.stdout + out.stderr + json.dumps([o.data for o in out.outputs], default=str)
    assert SECRET not in shown
    return out, result


def one_line_error(out: CapturedIO, result: ExecutionResult, kind: type[BaseException]) -> str:
    """The cell failed with ``kind`` and showed exactly one line about it (no traceback)."""
    assert isinstance(result.error_in_exec, kind)
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def data(out: CapturedIO) -> list[dict[str, Any]]:
    return [o.data for o in out.outputs]


def test_load_ext_registers_the_magics_and_their_settings(ip: InteractiveShell) -> None:
    for kind, name in [("cell", "llm"), ("line", "llm_api"), ("line", "llm_cache"), ("line", "llm_config")]:
        assert name in ip.magics_manager.magics[kind]
    out, _ = run(ip, "%config LLMMagics")
    for trait in ("default_format", "stream", "system", "stream_interval"):
        assert f"LLMMagics.{trait}" in out.stdout
    run(ip, "%reload_ext llmkit")
    assert [type(c).__name__ for c in ip.configurables].count("LLMMagics") == 1


def test_responses_flag_sends_the_cell_to_the_responses_api(ip: InteractiveShell,
                                                            llm: OpenAITestServer) -> None:
    ip.user_ns["topic"] = "tides"
    out, result = run(ip, "%%llm --format text --max-tokens 40\nTell me about {{ topic }}\n")
    assert result.success and llm.requests[-1].path == "/v1/chat/completions"  # unchanged
    assert out.stdout.strip() == "echo: Tell me about tides"
    out, result = run(ip, "%%llm --responses --format text --max-tokens 40 --out answer\n"
                          "Tell me about {{ topic }}\n")
    assert result.success
    sent = llm.requests[-1]
    assert sent.path == "/v1/responses" and sent.body["max_output_tokens"] == 40
    assert "responses_api" not in sent.body
    assert out.stdout.strip() == "echo: Tell me about tides" == ip.user_ns["answer"]
    out, result = run(ip, "%%llm --responses --chat talk --format text\nHello {{ topic }}\n")
    assert result.success and llm.requests[-1].path == "/v1/responses"
    assert out.stdout.strip() == "echo: Hello tides"


def test_cell_is_a_template_of_notebook_variables_and_flags_reach_the_request(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    ip.user_ns["topic"] = "the sea"
    out, result = run(ip, '%%llm --model gpt-4o --temperature 0.2 --max-tokens 40 '
                          '--system "Be terse." --out answer --format text\n'
                          'Tell me about {{ topic }} as JSON like {"k": 1}\n')
    assert result.success
    body = llm.requests[-1].body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-4o", 0.2, 40)
    assert body["messages"] == [{"role": "system", "content": "Be terse."},
                                {"role": "user", "content": 'Tell me about the sea as JSON like {"k": 1}'}]
    assert out.stdout == 'echo: Tell me about the sea as JSON like {"k": 1}\n' and out.outputs == []
    answer = ip.user_ns["answer"]
    assert isinstance(answer, Result) and answer is ip.user_ns["_llm"]
    assert answer.usage["total_tokens"] > 0 and answer.cached is False


def test_defaults_come_from_config_and_traits(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    run(ip, "%config LLMMagics.system = 'Answer in French.'")
    run(ip, "%config LLMMagics.default_format = 'text'")
    out, _ = run(ip, "%%llm\nbonjour\n")
    body = llm.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert (body["model"], body["max_tokens"]) == ("gpt-4o-mini", 1024) and "temperature" not in body
    assert out.stdout == "echo: bonjour\n"


def test_missing_variable_names_itself_in_one_line_and_sends_nothing(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    ip.user_ns["name"] = "Ada"
    out, result = run(ip, "%%llm\nHello {{ name }}, tell {{ who }} a story.\n")
    line = one_line_error(out, result, MissingVariableError)
    assert "{{ who }}" in line and "'who'" in line and "notebook" in line
    assert llm.requests == [] and "_llm" not in ip.user_ns


@pytest.mark.parametrize(("flags", "kind", "expected"), [
    ("--temperature 5", ConfigError, "temperature=5.0 is not valid: expected a number from 0 to 2"),
    ("--max-tokens many", UsageError, "argument --max-tokens: invalid int value: 'many'"),
    ("--out 2x", UsageError, "'2x' is not a Python variable name"),
    ("--format yaml", UsageError, "argument --format/-f: invalid choice: 'yaml'"),
])
def test_bad_arguments_say_which_and_what_was_expected(
        ip: InteractiveShell, llm: OpenAITestServer, flags: str, kind: type, expected: str) -> None:
    out, result = run(ip, f"%%llm {flags}\nhello\n")
    assert expected in one_line_error(out, result, kind)
    assert llm.requests == []


def test_empty_cell_is_refused(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    out, result = run(ip, "%%llm\n\n")
    assert "cell is empty" in one_line_error(out, result, llmkit.TemplateError)


def test_call_errors_are_one_line_too(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llm.fail(401, message="Incorrect API key provided.")
    out, result = run(ip, "%%llm\nhello\n")
    assert one_line_error(out, result, llmkit.AuthenticationError).startswith(
        "AuthenticationError: HTTP 401: Incorrect API key provided.")


def test_format_json_parses_fenced_json(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llm.reply('Here you are:\n```json\n{"name": "Ada", "langs": ["en", "fr"]}\n```\n')
    out, _ = run(ip, "%%llm --format json\nGive me JSON\n")
    [shown] = data(out)
    assert shown["application/json"] == {"name": "Ada", "langs": ["en", "fr"]}
    assert json.loads(shown["text/plain"]) == {"name": "Ada", "langs": ["en", "fr"]}
    assert ip.user_ns["_llm"].startswith("Here you are:")


def test_format_json_failure_says_so_and_shows_the_answer(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llm.reply("Sorry, no JSON today.")
    out, result = run(ip, "%%llm --format json\nGive me JSON\n")
    assert result.success and "not valid JSON" in out.stderr
    [shown] = data(out)
    assert shown == ip.display_formatter.format(ip.user_ns["_llm"])[0]
    assert "Sorry, no JSON today." in shown["text/plain"]


def test_format_code_puts_the_code_into_the_next_cell(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llm.reply("Sure:\n```python\nfor i in range(3):\n    print(i)\n```\nEnjoy.")
    out, _ = run(ip, "%%llm -f code\nWrite a loop\n")
    assert ip.rl_next_input == "for i in range(3):\n    print(i)"
    assert out.outputs == [] and out.stdout == ""


def test_default_markdown_format_shows_the_result(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    out, _ = run(ip, "%%llm\nhello <b>world</b>\n")
    [shown] = data(out)
    assert shown == ip.display_formatter.format(ip.user_ns["_llm"])[0]
    assert "echo: hello" in shown["text/plain"]
    assert "<b>world</b>" not in shown.get("text/html", "")


def stream_run(ip: InteractiveShell, cell: str) -> list[RichOutput]:
    out, result = run(ip, cell)
    assert result.success
    return out.outputs


def test_stream_fills_in_place_and_ends_like_the_plain_display(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    answer = '{"a": 1, "b": [2, 3], "c": "d"}'
    llm.reply(answer)
    run(ip, "%config LLMMagics.stream_interval = 0")  # every delta updates the display
    outputs = stream_run(ip, "%%llm --stream --format json\nGive me JSON\n")
    assert llm.requests[-1].body["stream"] is True
    assert llm.requests[-1].body["stream_options"] == {"include_usage": True}
    assert len({o.transient["display_id"] for o in outputs}) == 1
    assert [o.update for o in outputs] == [False] + [True] * (len(outputs) - 1)
    texts = [o.data["text/plain"] for o in outputs[:-1]]
    pieces = len(answer.split())  # the server streams one word at a time
    assert texts[0] == "" and texts[-1] == answer and len(texts) == 1 + pieces
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(texts))
    assert outputs[-1].data["application/json"] == json.loads(answer)
    usage = ip.user_ns["_llm"].usage
    assert usage["completion_tokens"] == pieces and usage["total_tokens"] > pieces
    # the same cell without streaming (now from the cache) ends with the same display
    plain = stream_run(ip, "%%llm --no-stream --format json\nGive me JSON\n")
    assert len(llm.requests) == 1 and ip.user_ns["_llm"].cached
    assert [o.data for o in plain] == [outputs[-1].data]


def test_stream_updates_are_throttled(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    run(ip, "%config LLMMagics.stream_interval = 60")
    outputs = stream_run(ip, "%%llm --stream --format json\none two three four five six\n")
    assert [o.update for o in outputs] == [False, True]  # the empty start, then the end


def test_stream_markdown_previews_escaped_and_ends_with_the_result_display(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llm.reply("Some **bold** words <script>alert(1)</script> and more")
    run(ip, "%config LLMMagics.stream = True")
    run(ip, "%config LLMMagics.stream_interval = 0")
    outputs = stream_run(ip, "%%llm\nhello\n")
    assert llm.requests[-1].body["stream"] is True
    previews = [o.data["text/html"] for o in outputs[1:-1]]
    assert "<strong>bold</strong>" in previews[-1] and "&lt;script&gt;" in previews[-1]
    assert not any("<script>" in p for p in previews)
    assert outputs[-1].update and outputs[-1].data == ip.display_formatter.format(ip.user_ns["_llm"])[0]


def test_stream_text_prints_as_it_arrives(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    streamed, _ = run(ip, "%%llm --stream -f text\nsome words to stream\n")
    plain, _ = run(ip, "%%llm --no-cache -f text\nsome words to stream\n")
    assert streamed.stdout == plain.stdout == "echo: some words to stream\n"
    assert streamed.outputs == [] and len(llm.requests) == 2


def test_cache_is_used_unless_no_cache(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    cell = "%%llm -f text\nsame question\n"
    run(ip, cell)
    run(ip, cell)
    assert len(llm.requests) == 1 and ip.user_ns["_llm"].cached
    run(ip, "%%llm -f text --no-cache\nsame question\n")
    assert len(llm.requests) == 2 and not ip.user_ns["_llm"].cached


def api_rows(out: CapturedIO) -> dict[str, list[str]]:
    [shown] = data(out)
    lines = shown["text/plain"].splitlines()
    assert lines[0].split() == ["api", "type", "active", "credentials"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_llm_api_table_and_switching(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    local_server = local.server_url()
    out, _ = run(ip, "%llm_api")
    assert local.server_url() == local_server  # listing "local" starts no model server
    rows = api_rows(out)
    assert rows["openai"] == ["yes", "configured,", "server", "answers"] and rows["azure"] == ["missing"]
    assert set(rows) == set(llmkit.registered())
    out, _ = run(ip, "%llm_api Azure")
    assert out.stdout == "active API type: azure (no credentials configured)\n"
    assert registry.client().api_type == "azure"
    out, _ = run(ip, "%llm_api")
    rows = api_rows(out)
    assert rows["openai"][0] == "configured," and rows["azure"] == ["yes", "missing"]


def test_llm_api_unknown_name_lists_the_choices(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    out, result = run(ip, "%llm_api nope")
    line = one_line_error(out, result, ConfigError)
    assert "'nope'" in line and ", ".join(llmkit.registered()) in line
    assert registry.client().api_type == "openai"


def test_llm_api_html_is_escaped(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    llmkit.register_client("<b>x</b>", llmkit.OpenAIClient())
    out, _ = run(ip, "%llm_api")
    html = data(out)[0]["text/html"]
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in html and "<b>x" not in html


def test_llm_cache_stats_clear_export_import(ip: InteractiveShell, llm: OpenAITestServer,
                                             tmp_path: Path) -> None:
    assert run(ip, "%llm_cache")[0].stdout.startswith("entries: 0  size: ")
    run(ip, "%%llm -f text\nremember me\n")
    out, _ = run(ip, "%llm_cache")
    assert out.stdout.startswith("entries: 1 (chat: 1)  size: ") and str(tmp_path / "cache") in out.stdout
    llmkit.client().get_embedding(["one sentence", "another"])
    out, _ = run(ip, "%llm_cache stats")
    assert out.stdout.startswith("entries: 3 (chat: 1, embedding: 2)  size: ")
    out, _ = run(ip, "%llm_cache export 'my answers.jsonl'")
    assert out.stdout == "exported 3 entries (chat: 1, embedding: 2) to my answers.jsonl\n"
    lines = [json.loads(line) for line in (tmp_path / "my answers.jsonl").read_text().splitlines()]
    assert sorted(line["kind"] for line in lines) == ["chat", "embedding", "embedding"]
    out, _ = run(ip, "%llm_cache clear")
    assert out.stdout.startswith("cleared 3 entries")
    assert run(ip, "%llm_cache stats")[0].stdout.startswith("entries: 0 ")
    out, _ = run(ip, "%llm_cache import 'my answers.jsonl'")
    assert out.stdout == "imported 3 entries from my answers.jsonl\n"
    run(ip, "%%llm -f text\nremember me\n")
    assert len(llm.requests) == 2 and ip.user_ns["_llm"].cached  # the chat call and the embeddings


def test_llm_cache_import_refuses_a_contradicting_kind_in_one_line(
        ip: InteractiveShell, llm: OpenAITestServer, tmp_path: Path) -> None:
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps({"key": "k", "kind": "chat", "value": {"embedding": [0.5]}}) + "\n")
    out, result = run(ip, "%llm_cache import mixed.jsonl")
    line = one_line_error(out, result, CacheError)
    assert "mixed.jsonl, line 1: \"kind\" is 'chat' but the value is of kind 'embedding'" in line
    assert run(ip, "%llm_cache stats")[0].stdout.startswith("entries: 0 ")


@pytest.mark.parametrize(("line", "kind", "expected"), [
    ("%llm_cache export", CacheError, "%llm_cache export needs a PATH"),
    ("%llm_cache import missing.jsonl", CacheError, "'missing.jsonl': [Errno 2] No such file"),
    ("%llm_cache stats extra", CacheError, "takes no PATH"),
    ("%llm_cache wipe", UsageError, "invalid choice: 'wipe'"),
])
def test_llm_cache_errors(ip: InteractiveShell, llm: OpenAITestServer, line: str, kind: type,
                          expected: str) -> None:
    out, result = run(ip, line)
    assert expected in one_line_error(out, result, kind)


def test_llm_config_shows_hides_and_sets(ip: InteractiveShell, llm: OpenAITestServer) -> None:
    out, _ = run(ip, "%llm_config")
    lines = out.stdout.splitlines()
    assert "MODEL = gpt-4o-mini" in lines and "API_KEY = <hidden>" in lines
    assert "AZURE_API_KEY = (not set)" in lines and f"BASE_URL = {llm.base_url}" in lines
    assert run(ip, "%llm_config api_key")[0].stdout == "API_KEY = <hidden>\n"
    assert run(ip, "%llm_config TEMPERATURE 0.3")[0].stdout == "TEMPERATURE = 0.3\n"
    run(ip, "%%llm\nhi\n")
    assert llm.requests[-1].body["temperature"] == 0.3


def test_llm_config_says_which_key_goes_to_a_new_endpoint(
        ip: InteractiveShell, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(ip, f"%llm_config base_url {llm.base_url}")[0].stdout.startswith(
        f"note: calls now send your API_KEY to {llm.base_url}\n")
    monkeypatch.setenv("LLMKIT_COMPATIBLE_API_KEY", "gateway-key-1234")
    run(ip, "%llm_api compatible")
    out = run(ip, f"%llm_config base_url {llm.base_url}")[0].stdout
    assert out == (f"note: calls now send your COMPATIBLE_API_KEY to {llm.base_url}\n"
                   f"BASE_URL = {llm.base_url}\n")
    assert "gateway-key-1234" not in run(ip, "%llm_config")[0].stdout


@pytest.mark.parametrize(("line", "expected"), [
    ("%llm_config temperature 5",
     "ConfigError: %llm_config: TEMPERATURE = '5' is not valid; expected a number from 0 to 2 (or empty)"),
    ("%llm_config colour", "ConfigError: %llm_config: unknown configuration key 'colour'; known keys: "),
    ("%llm_config api_key sk-typed-in-a-cell", "set an environment variable instead (OPENAI_API_KEY)"),
])
def test_llm_config_errors(ip: InteractiveShell, llm: OpenAITestServer, line: str, expected: str) -> None:
    out, result = run(ip, line)
    error = one_line_error(out, result, ConfigError)
    assert expected in error and "sk-typed-in-a-cell" not in error
    assert llmkit.client().settings()["temperature"] is None  # unchanged: not set


def test_any_variable_name_works_even_those_llmcall_call_takes(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    ip.user_ns["cache"] = "a cache"
    run(ip, "%%llm --format text\nWhat is {{ cache }}?\n")
    assert llm.requests[-1].body["messages"][-1]["content"] == "What is a cache?"


def test_a_configured_server_that_does_not_answer_is_not_called_configured(
        ip: InteractiveShell, llm: OpenAITestServer) -> None:
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llmkit.register_client("ollama", llmkit.CompatibleClient(base_url=f"http://127.0.0.1:{port}/v1"))
    rows = api_rows(run(ip, "%llm_api")[0])
    assert rows["ollama"] == ["configured,", "no", "server", "answering"]


def test_the_first_five_minutes(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = run(ip, "%reload_ext llmkit")
    assert out.stdout == ("llmkit: api type openai, model gpt-4o-mini (no API key configured: "
                          "%llm_api local runs a model on this machine, no key)\n")
    out, result = run(ip, "%%llm --temprature 0\nhi\n")
    assert "did you mean --temperature?" in str(result.error_in_exec)
    assert "%%llm [" in (ip.find_cell_magic("llm").__doc__ or "")  # what %%llm? shows
    out, result = run(ip, "%%llm\nhi\n")  # no key: the error names the magic that fixes it
    assert "%llm_api local" in str(result.error_in_exec)
    run(ip, "%llm_api local")
    out, _ = run(ip, "%llm_config model")
    assert out.stdout == "MODEL = smollm2-135m-instruct\n"  # what the active client really uses


def test_an_llmkit_warning_is_one_clean_line_and_others_are_left_alone(
        ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings
    before: list[str] = []  # what the showwarning in place before the extension was given
    ip.run_line_magic("unload_ext", "llmkit")
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None,
                        line=None: before.append(f"{filename}:{lineno}: {category.__name__}: {message}"))
    ip.run_line_magic("load_ext", "llmkit")
    cell = ("import warnings\n"
            "from llmkit.base.errors import LLMKitWarning\n"
            "with warnings.catch_warnings():\n"
            "    warnings.simplefilter('always')\n"
            "    warnings.warn('rows do not match the templates', LLMKitWarning)\n"
            "    warnings.warn('something else', UserWarning)\n")
    out, result = run(ip, cell)
    assert result.success
    assert out.stderr == "LLMKitWarning: rows do not match the templates\n"  # no file, no source line
    [other] = before  # another warning is shown as before, with its file and line
    assert other.endswith(":6: UserWarning: something else")
    ip.run_line_magic("unload_ext", "llmkit")
    out, result = run(ip, cell)
    assert result.success and out.stderr == "" and len(before) == 3  # the previous one is back
    assert before[1].endswith(":5: LLMKitWarning: rows do not match the templates")


def test_a_single_braced_notebook_name_in_llm_warns_with_the_fix(ip: InteractiveShell,
                                                                 llm: OpenAITestServer) -> None:
    ip.user_ns["country"] = "France"
    with pytest.warns(llmkit.LLMKitWarning, match=r"\{country\} is sent as written.*\{\{ country \}\}"):
        _, result = run(ip, "%%llm\nWhat is the capital of {country}?\n")
    assert result.success and llm.requests[-1].body["messages"][-1]["content"] == \
        "What is the capital of {country}?"
