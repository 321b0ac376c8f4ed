"""LLMChat and @llm against the test server (it answers ``echo: <last user message>``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import llmkit
from llmkit import LLMChat
from llmkit.base.errors import ConfigError
from tests.openai_server import OpenAITestServer


def test_a_conversation_continues_and_resets(llm: OpenAITestServer) -> None:
    chat = LLMChat(system_prompt="You are terse.", user_prompt="Capital of {{ country }}?")
    assert chat.call(country="France") == "echo: Capital of France?"
    assert chat.continue_conversation("And of Peru?") == "echo: And of Peru?"
    sent = llm.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == "echo: Capital of France?"  # the earlier answer is remembered
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert chat.completion is not None and chat.completion.usage["total_tokens"] > 0
    chat.reset_conversation()
    assert chat.messages == [] and chat.completion is None
    chat.call(country="Chile")
    assert [m["role"] for m in llm.requests[-1].body["messages"]] == ["system", "user"]


def test_messages_added_by_hand_and_from_templates(llm: OpenAITestServer) -> None:
    chat = LLMChat(temperature=0)
    chat.add_system_message("Be brief.")
    chat.add_user_message(template_name="Summarize {{ subject }}", subject="the report")
    chat.add_assistant_message("Sure.")
    answer = chat.continue_conversation("Go on.")
    body = llm.requests[-1].body
    assert answer == "echo: Go on." and body["temperature"] == 0.0
    assert [m["content"] for m in body["messages"]] == [
        "Be brief.", "Summarize the report", "Sure.", "Go on."]
    with pytest.raises(ConfigError, match="give the text or a template_name"):
        chat.add_user_message()
    with pytest.raises(ConfigError, match="nothing to send"):
        LLMChat(system_prompt="s").call()


def test_turns_go_through_the_cache(llm: OpenAITestServer) -> None:
    LLMChat(user_prompt="hello").call()
    again = LLMChat(user_prompt="hello")
    again.call()
    assert again.completion is not None and again.completion.cached is True
    assert len(llm.requests) == 1


def test_threads_sharing_one_conversation_take_turns(llm: OpenAITestServer) -> None:
    llm.latency = 0.01
    chat = LLMChat(system_prompt="s")
    threads = [threading.Thread(target=chat.continue_conversation, args=(f"q{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    roles = [m["role"] for m in chat.messages]
    assert roles == ["system"] + ["user", "assistant"] * 8  # never two user turns in a row
    pairs = list(zip(chat.messages[1::2], chat.messages[2::2], strict=True))
    assert all(a["content"] == "echo: " + u["content"] for u, a in pairs)


def test_the_llm_decorator(llm: OpenAITestServer) -> None:
    @llmkit.llm(temperature=0)
    def shout(word: str) -> str:
        """You repeat words loudly."""
        return f"Repeat {word}"

    assert shout("hi") == "echo: Repeat hi"
    body = llm.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "You repeat words loudly."}
    assert body["temperature"] == 0.0 and shout.__name__ == "shout"

    @llmkit.llm()
    def broken() -> str:
        """s"""
        return None  # type: ignore[return-value]

    with pytest.raises(ConfigError, match="must return the user prompt"):
        broken()


def test_a_misspelt_parameter_fails_when_the_chat_or_function_is_built(llm: OpenAITestServer) -> None:
    with pytest.raises(ConfigError, match=r"^LLMChat: unknown chat parameter 'temprature' "
                                          r"\(did you mean 'temperature'\?\)"):
        LLMChat(system_prompt="s", temprature=0)
    with pytest.raises(ConfigError, match=r"^@llm: unknown chat parameter 'max_token' "
                                          r"\(did you mean 'max_tokens'\?\)"):
        @llmkit.llm(max_token=5)
        def never(word: str) -> str:
            """s"""
            return word
    with pytest.raises(ConfigError, match=r"^@llm: chat parameter top_p=3 is not valid"):
        llmkit.llm(top_p=3)
    assert llm.requests == []


def test_chat_displays_as_a_transcript(llm: OpenAITestServer) -> None:
    chat = LLMChat(system_prompt="sys", user_prompt="first")
    chat.call()
    chat.continue_conversation("second <b>")
    bundle: dict[str, Any] = chat._repr_mimebundle_()
    page = bundle["text/html"]
    assert "LLMChat" in bundle["text/plain"] and "echo: second &lt;b&gt;" in page
    assert page.count('class="llmkit-message"') == 4  # system, user, assistant, user; then the answer


def test_llm_magic_chat_continues_across_cells(ip: Any, llm: OpenAITestServer) -> None:
    from IPython.utils.capture import capture_output
    ip.user_ns["who"] = "Ada"
    with capture_output() as out:
        ip.run_cell_magic("llm", "--chat tutor --format text", "Hi, I am {{ who }}.")
        ip.run_cell_magic("llm", "--chat tutor --format text", "What is my name?")
    assert out.stdout.splitlines() == ["echo: Hi, I am Ada.", "echo: What is my name?"]
    assert [m["role"] for m in llm.requests[-1].body["messages"]] == [
        "system", "user", "assistant", "user"]
    with capture_output() as shown:
        ip.run_line_magic("llm_chat", "tutor")
    assert "echo: What is my name?" in shown.outputs[0].data["text/html"]
    with capture_output() as out:
        ip.run_line_magic("llm_chat", "tutor reset")
    assert "reset" in out.stdout
    result = ip.run_cell("%llm_chat nobody")
    assert "no conversation 'nobody'" in str(result.error_in_exec)


PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def test_an_image_variable_becomes_an_image_part_with_a_thumbnail(llm: OpenAITestServer) -> None:
    picture = llmkit.image(PNG_1x1)
    result = llmkit.LLMCall("s", "Describe {{ photo }} briefly.").call(photo=picture)
    content = llm.requests[-1].body["messages"][1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "text"]
    assert content[0]["text"] == "Describe " and content[2]["text"] == " briefly."
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    page = result._repr_mimebundle_()["text/html"]
    assert '<img src="data:image/png;base64,' in page
    chat = LLMChat(system_prompt="s")
    chat.add_user_message(["What is this?", picture])
    chat.continue_conversation("Answer in one word.")
    sent = llm.requests[-1].body["messages"][1]["content"]
    assert sent[0] == {"type": "text", "text": "What is this?"} and sent[1]["type"] == "image_url"


# -- a failed turn leaves the conversation as it was --------------------------------------------


def _interrupt() -> str:
    """Stop everything (as Ctrl-C does)."""
    raise KeyboardInterrupt


@pytest.mark.parametrize("failure", ["server error", "invalid typed answer", "ctrl-c"])
def test_a_failed_turn_leaves_the_conversation_as_it_was(llm: OpenAITestServer, failure: str) -> None:
    chat = LLMChat(system_prompt="s", user_prompt="Count {{ what }}.", tools=[_interrupt])
    llm.reply('{"value": 3}')
    assert chat.call(output_type=int, what="sheep") == 3
    before, answered = chat.messages, chat.completion
    if failure == "server error":
        llm.fail(400, message="bad request")
        with pytest.raises(llmkit.InvalidRequestError):
            chat.call(what="goats")
    elif failure == "invalid typed answer":
        llm.reply('{"value": "many"}')
        with pytest.raises(llmkit.OutputTypeError):
            chat.call(output_type=int, what="goats")
    else:
        llm.reply_tool_calls([("_interrupt", {})])
        with pytest.raises(KeyboardInterrupt):
            chat.continue_conversation("Count goats.")
    assert chat.messages == before and chat.completion is answered
    assert chat.continue_conversation("And cows?") == "echo: And cows?"
    assert [m["role"] for m in llm.requests[-1].body["messages"]] == ["system", "user", "assistant",
                                                                    "user"]


def test_a_failed_first_turn_starts_nothing(llm: OpenAITestServer) -> None:
    chat = LLMChat(system_prompt="sys {{ n }}", user_prompt="q {{ n }}")
    llm.fail(400)
    with pytest.raises(llmkit.InvalidRequestError):
        chat.call(n=1)
    assert chat.messages == [] and chat.completion is None
    chat.call(n=2)
    assert llm.requests[-1].body["messages"] == [{"role": "system", "content": "sys 2"},
                                                 {"role": "user", "content": "q 2"}]


# -- tool calls stay in the transcript -----------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


def _asked(call_id: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "add", "arguments": arguments}}


def test_tool_calls_and_results_stay_in_the_conversation(llm: OpenAITestServer) -> None:
    chat = LLMChat(system_prompt="You add.", tools=[add])
    llm.reply_tool_calls([("add", {"a": 2, "b": 3}), ("add", {"a": 1, "b": 1})])
    llm.reply_tool_calls([("add", {"a": 5, "b": 2})])
    llm.reply("7 and 2")
    assert chat.continue_conversation("2 + 3 + 2, and 1 + 1?") == "7 and 2"
    exchange = [
        {"role": "assistant", "content": None, "tool_calls": [
            _asked("call_1", '{"a": 2, "b": 3}'),
            _asked("call_2", '{"a": 1, "b": 1}'),
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
        {"role": "tool", "tool_call_id": "call_2", "content": "2"},
        {"role": "assistant", "content": None, "tool_calls": [
            _asked("call_3", '{"a": 5, "b": 2}'),
        ]},
        {"role": "tool", "tool_call_id": "call_3", "content": "7"},
    ]
    first = [{"role": "system", "content": "You add."},
             {"role": "user", "content": "2 + 3 + 2, and 1 + 1?"}]
    assert chat.messages == [*first, *exchange, {"role": "assistant", "content": "7 and 2"}]
    assert [s.result for s in chat.steps] == ["5", "2", "7"]
    assert chat.continue_conversation("Thanks.") == "echo: Thanks."
    assert llm.requests[-1].body["messages"] == [
        *first, *exchange, {"role": "assistant", "content": "7 and 2"},
        {"role": "user", "content": "Thanks."}]
    assert chat.steps == []  # the last turn ran none


def test_a_chat_call_keyword_the_prompts_do_not_use(llm: OpenAITestServer) -> None:
    chat = LLMChat(system_prompt="s", user_prompt="about {{ topic }}")
    with pytest.raises(ConfigError, match=r"^LLMChat.call\(model=...\): model is not a variable of "
                                          r"the templates \(they use: topic\); .* LLMChat\(..., model=...\)"):
        chat.call(topic="x", model="gpt-4o")
    assert chat.messages == [] and llm.requests == []
    with pytest.warns(llmkit.LLMKitWarning, match=r"LLMChat.call\(topik=...\): topik is not a variable"):
        chat.call(topic="x", topik="y")
    chat.call(topic="z", topik="y")  # once per chat and name: warnings are errors in this suite


# -- on the Responses API ------------------------------------------------------------------------

def test_on_responses_each_turn_sends_the_transcript_with_its_reasoning_and_is_cached(
        llm: OpenAITestServer) -> None:
    def talk() -> tuple[LLMChat, list[str]]:
        chat = LLMChat(system_prompt="Be brief.", user_prompt="say {{ what }}", model="gpt-5",
                       reasoning_summary="auto")
        return chat, [chat.call(what="hi"), chat.continue_conversation("and again")]

    _, answers = talk()
    assert answers == ["echo: say hi", "echo: and again"]
    assert answers[1].reasoning == "thought about: echo: and again"
    second = llm.requests[1].body
    assert llm.requests[1].path == "/v1/responses" and second["instructions"] == "Be brief."
    assert "previous_response_id" not in second and second["store"] is False
    assert [(i.get("type"), i.get("role")) for i in second["input"]] == [
        (None, "user"), ("reasoning", None), (None, "assistant"), (None, "user")]
    assert second["input"][1]["encrypted_content"] == "ENC"
    assert second["input"][2]["content"] == "echo: say hi"
    again, replayed = talk()
    assert replayed == answers and again.completion is not None and again.completion.cached
    assert len(llm.requests) == 2


def test_server_state_sends_only_the_new_turn_with_previous_response_id(llm: OpenAITestServer) -> None:
    chat = LLMChat(system_prompt="Be brief.", user_prompt="say {{ what }}", model="gpt-4o-mini",
                   server_state=True)
    assert chat.call(what="hi") == "echo: say hi"
    assert chat.completion is not None
    first_id, first = chat.completion.response["id"], llm.requests[0]
    assert first.path == "/v1/responses" and first.body["store"] is True
    assert "previous_response_id" not in first.body
    assert chat.continue_conversation("and again") == "echo: and again (after 2 items)"
    second = llm.requests[1].body
    assert second["previous_response_id"] == first_id
    assert second["instructions"] == "Be brief." and second["input"] == [{"role": "user",
                                                                          "content": "and again"}]
    assert [m["content"] for m in chat.messages] == ["Be brief.", "say hi", "echo: say hi", "and again",
                                                     "echo: and again (after 2 items)"]
    assert chat.continue_conversation("third") == "echo: third (after 4 items)"
    assert llm.requests[2].body["input"] == [{"role": "user", "content": "third"}]


def test_server_state_a_forgotten_turn_leaves_the_conversation_as_it_was(llm: OpenAITestServer) -> None:
    chat = LLMChat(user_prompt="say {{ what }}", model="gpt-4o-mini", server_state=True)
    chat.call(what="hi")
    before = chat.messages
    llm.reset()  # the server forgets what it stored
    with pytest.raises(llmkit.LLMKitError, match="not found"):
        chat.continue_conversation("again")
    assert chat.messages == before
    with pytest.raises(ConfigError, match="server_state=True"):
        LLMChat(user_prompt="x", server_state=True, responses_api="never")
