"""`LLMChat`: a conversation, turn after turn, through the one call path (TinyTroupe's vocabulary).

Every turn sends the whole conversation through `llmkit.calls.send.send`: the cache, retries,
rate limits, typed answers and tools work as for `LLMCall`. A turn builds the new transcript
aside (the question, the tool calls and their results as the API expects them, the answer) and
swaps it in as one immutable record only when it succeeded: a turn that fails (a server error,
an answer that does not validate, Ctrl-C) leaves the conversation exactly as it was. Turns are
serialised by a lock, so two threads that share a conversation take turns rather than interleave
messages (use one `LLMChat` per thread for parallel conversations).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..base import hooks
from ..base.errors import ConfigError
from ..base.result import Completion
from ..base.templates import Template
from .send import check_params, check_variables, send

__all__ = ["LLMChat"]


class _State(NamedTuple):
    """A conversation at one moment, replaced whole (never changed in place)."""

    messages: tuple[dict[str, Any], ...] = ()
    started: bool = False  # the system prompt is in
    completion: Completion | None = None
    steps: tuple[Any, ...] = ()
    response_id: str | None = None  # server_state: the last turn's stored answer
    known: int = 0  # server_state: how many messages the server already holds


class LLMChat:
    """A conversation: system and user prompts (text or template names), an ``output_type``,
    ``tools`` and model parameters. ``call(**variables)`` starts or continues it.

    >>> chat = LLMChat(system_prompt="You are terse.", user_prompt="Capital of {{ country }}?")
    >>> chat.call(country="France")  # doctest: +SKIP
    'Paris.'
    >>> chat.continue_conversation("And of Peru?")  # doctest: +SKIP
    'Lima.'
    """

    def __init__(self, system_template_name: str | None = None, system_prompt: str | None = None,
                 user_template_name: str | None = None, user_prompt: str | None = None,
                 output_type: Any = None, tools: Sequence[Any] | None = None, *,
                 client: Any = None, max_steps: int = 8,
                 approve: Callable[[str, dict[str, Any]], bool | str] | None = None,
                 tool_cache: str | None = None, server_state: bool = False,
                 **model_params: Any) -> None:
        for a, b in (("system_template_name", "system_prompt"), ("user_template_name", "user_prompt")):
            if locals()[a] is not None and locals()[b] is not None:
                raise ConfigError(f"LLMChat: give {a} or {b}, not both")
        check_params("LLMChat", model_params)
        if not isinstance(server_state, bool):
            raise ConfigError(f"LLMChat: server_state={server_state!r} is not valid: expected True or False")
        if server_state:
            if model_params.get("responses_api") == "never" or "previous_response_id" in model_params \
                    or model_params.get("store") is False:
                raise ConfigError("LLMChat: server_state=True keeps the conversation on the server with "
                                  "the Responses API (store=True, previous_response_id): leave out "
                                  "responses_api='never', store and previous_response_id")
            model_params = {"responses_api": "always", **model_params, "store": True}
        self.server_state = server_state
        system = system_template_name or system_prompt
        user = user_template_name or user_prompt
        self.system_template = Template(system) if system else None
        self.user_template = Template(user) if user else None
        self.output_type = output_type
        self.tools = list(tools) if tools else None
        self.client = client
        self.model_params = model_params
        self._tool_options: dict[str, Any] = {"max_steps": max_steps, "approve": approve,
                                              "tool_cache": tool_cache}
        self._lock = threading.RLock()  # one turn at a time; readers take `_state` as it is
        self._state = _State()
        self._warned: set[str] = set()  # call() keywords the templates ignore, warned about once
        from ..clients.recorder import new_id  # the client chain loads with the first chat
        self.id = new_id()  # the run history's chat_id of every turn

    # -- the conversation -----------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A copy of the conversation so far (tool calls and results included)."""
        return [dict(m) for m in self._state.messages]

    @property
    def completion(self) -> Completion | None:
        """The last turn's `Completion` (usage, latency, cache hit)."""
        return self._state.completion

    @property
    def steps(self) -> list[Any]:
        """The tool calls the last turn ran."""
        return list(self._state.steps)

    def _add(self, role: str, text: Any, template_name: str | None, variables: dict[str, Any]) -> None:
        if (text is None) == (template_name is None):
            raise ConfigError(f"add_{role}_message: give the text or a template_name (not both)")
        content = Template(template_name).render(**variables) if template_name else _content(text)
        with self._lock:
            state = self._state
            self._state = state._replace(messages=(*state.messages, {"role": role, "content": content}))

    def add_system_message(self, text: Any = None, template_name: str | None = None,
                           **variables: Any) -> None:
        """Add a system message: ``text``, or a template rendered with ``variables``."""
        self._add("system", text, template_name, variables)

    def add_user_message(self, text: Any = None, template_name: str | None = None,
                         **variables: Any) -> None:
        """Add a user message: ``text`` (a str, an `llmkit.image(...)`, or a list of both), or a
        template rendered with ``variables``."""
        self._add("user", text, template_name, variables)

    def add_assistant_message(self, text: Any = None, template_name: str | None = None,
                              **variables: Any) -> None:
        """Add an assistant message (e.g. an example answer)."""
        self._add("assistant", text, template_name, variables)

    def reset_conversation(self) -> None:
        """Forget every message; the next `call` starts again from the prompts."""
        with self._lock:
            self._state = _State()

    def call(self, output_type: Any = None, **variables: Any) -> Any:
        """Start the conversation (system and user prompts rendered with ``variables``) or, once
        started, add the user prompt again for these variables; send; return the answer (the
        validated value with an ``output_type``, else a `Result`). A keyword the prompts do not
        use is not sent: a model parameter raises `ConfigError`, any other name warns once."""
        templates = [t for t in (self.system_template, self.user_template) if t is not None]
        used = [name for t in templates for name in (*t.variables, *t.single_braced)]
        check_variables("LLMChat", used, variables, self._warned)
        with self._lock:
            messages = self._started(variables)
            if self.user_template is not None:
                messages.append({"role": "user", "content": self.user_template.render(**variables)})
            return self._turn(messages, output_type)

    def continue_conversation(self, text: Any, output_type: Any = None) -> Any:
        """Add ``text`` as the next user message and send."""
        with self._lock:
            messages = self._started({})
            messages.append({"role": "user", "content": _content(text)})
            return self._turn(messages, output_type)

    def _started(self, variables: dict[str, Any]) -> list[dict[str, Any]]:
        """The conversation with the system prompt first, once per conversation (messages added by
        hand before the first call come after it)."""
        state = self._state
        messages = list(state.messages)
        if self.system_template is not None and not state.started:
            messages.insert(0, {"role": "system", "content": self.system_template.render(**variables)})
        return messages

    def _turn(self, messages: list[dict[str, Any]], output_type: Any) -> Any:
        """Send ``messages``; on success only, make them, the tool exchange and the answer the
        conversation."""
        if not any(m["role"] == "user" for m in messages):
            raise ConfigError("LLMChat: nothing to send yet; give a user_prompt or call "
                              "add_user_message / continue_conversation first")
        from ..clients.recorder import linked
        state, sent, extra = self._state, messages, dict[str, Any]()
        if self.server_state and state.response_id is not None:  # the server holds the rest
            system = [m for m in messages[:state.known] if m["role"] in ("system", "developer")]
            sent, extra = [*system, *messages[state.known:]], {"previous_response_id": state.response_id}
        with linked(chat_id=self.id):  # the run history links every turn to this conversation
            answer = send(sent, client=self.client,
                          output=output_type or self.output_type, tools=self.tools,
                          **self._tool_options, **self.model_params, **extra)
        if answer.steps:
            from .tool_loop import tool_messages
            messages += tool_messages(answer.steps)
        messages.append(_assistant(answer.completion))
        served = answer.completion.response.get("id")
        self._state = _State(tuple(messages), True, answer.completion, tuple(answer.steps),
                             served if isinstance(served, str) and served else None, len(messages))
        return answer.value

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return hooks.mimebundle(self)

    def __repr__(self) -> str:
        return f"LLMChat({len(self._state.messages)} messages)"


def _content(text: Any) -> Any:
    """A message's content: text as is, images (objects with ``part()``) as content parts."""
    if isinstance(text, str):
        return text
    items = text if isinstance(text, (list, tuple)) else [text]
    parts = []
    for item in items:
        if isinstance(item, str):
            parts.append({"type": "text", "text": item})
        elif callable(getattr(item, "part", None)):
            parts.append(item.part())
        else:
            raise ConfigError(f"a message takes text, llmkit.image(...) or a list of them, not a "
                              f"{type(item).__name__}")
    return parts


def _assistant(completion: Completion) -> dict[str, Any]:
    """The answer as the transcript keeps it: its text, and on Responses its reasoning items, to
    send back with the next turn (a chat request leaves them out)."""
    message = completion.message
    kept = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("reasoning_items"):
        kept["reasoning_items"] = message["reasoning_items"]
    return kept
