"""What is a credential and how it is hidden: `llmkit.base.secrets`, tested directly."""

from __future__ import annotations

import base64
import json

import pytest

from llmkit.base import secrets
from llmkit.base.secrets import HIDDEN

KEY = "sk-test-abcdefghijklmnop"


@pytest.mark.parametrize("name", ["api_key", "azure_api_key", "OPENAI_API_KEY", "x-api-key",
                                  "Authorization", "client_secret", "password", "access_token",
                                  "extra_headers"])
def test_credential_names(name: str) -> None:
    assert secrets.is_secret_name(name)
    assert secrets.is_credential(name, "anything")


@pytest.mark.parametrize("name", ["model", "temperature", "max_tokens", "messages", "tokenizer",
                                  "extra_body", "user"])
def test_ordinary_names(name: str) -> None:
    # "max_tokens" and "tokenizer" are not credentials: only a name ending in "token" is
    assert not secrets.is_secret_name(name)
    assert not secrets.is_credential(name, "anything")


def test_a_mapping_with_a_credential_entry_is_a_credential() -> None:
    assert secrets.is_credential("extra_body", {"api_key": KEY})
    assert secrets.is_credential("metadata", {"Authorization": "Bearer x"})
    assert not secrets.is_credential("extra_body", {"seed": 1})
    assert not secrets.is_credential("stop", ["key"])  # a list of words, not named entries


def test_scrub_replaces_every_known_value() -> None:
    text = f"the server said: Incorrect API key {KEY}; again: {KEY}"
    assert secrets.scrub(text, [KEY]) == "the server said: Incorrect API key <hidden>; again: <hidden>"
    assert secrets.scrub(text, ["", "absent-value"]) == text  # empty and absent ones change nothing


def test_longest_first_replaces_a_key_that_contains_another_whole() -> None:
    short, long = "abcd1234", "abcd1234-more"
    ordered = secrets.longest_first([short, long, short])
    assert ordered == (long, short)
    assert secrets.scrub(f"{long} and {short}", ordered) == "<hidden> and <hidden>"
    # in the other order the shorter one would leave the tail of the longer one readable
    assert secrets.scrub(f"{long}", [short, long]) == "<hidden>-more"


def test_min_length() -> None:
    assert secrets.longest_first(["abc", "abcd", ""]) == ("abcd",)  # SHORTEST is 4
    assert secrets.SHORTEST == 4 and secrets.SHORTEST_SHOWN == 8
    scrub = secrets.scrubber(["none", "sk-shown-key"], secrets.SHORTEST_SHOWN)
    # a display keeps a short placeholder key (an ordinary word) and hides a real-looking one
    assert scrub("none of sk-shown-key") == "none of <hidden>"
    assert secrets.scrubber(["none"])("none of it") == "<hidden> of it"


def test_scrub_all_reaches_nested_structures() -> None:
    value = {"messages": [{"role": "user", "content": f"key={KEY}"}],
             "extra_body": {"deep": {"list": ["x", KEY, 3, None], KEY: True}},
             "n": 2}
    scrubbed = secrets.scrub_all(value, [KEY])
    assert KEY not in json.dumps(scrubbed)
    assert scrubbed == {"messages": [{"role": "user", "content": "key=<hidden>"}],
                        "extra_body": {"deep": {"list": ["x", HIDDEN, 3, None], HIDDEN: True}},
                        "n": 2}
    assert value["messages"][0]["content"] == f"key={KEY}"  # the original is left as it was


def test_hide_by_name() -> None:
    headers = {"Authorization": f"Bearer {KEY}", "X-Trace": "abc", "x-api-key": KEY}
    assert secrets.hide(headers) == {"Authorization": HIDDEN, "X-Trace": "abc", "x-api-key": HIDDEN}


def test_public_request_hides_by_name_and_by_value() -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": f"mine is {KEY}"}],
               "extra_headers": {"Authorization": f"Bearer {KEY}", "X-Note": f"k={KEY}"},
               "extra_body": {"client_secret": "s3cr3t-value", "seed": 7}}
    public = secrets.public_request(request, lambda: [KEY])
    assert public == {"model": "m", "messages": [{"role": "user", "content": "mine is <hidden>"}],
                      "extra_headers": {"Authorization": HIDDEN, "X-Note": HIDDEN},
                      "extra_body": {"client_secret": HIDDEN, "seed": 7}}
    assert request["extra_headers"]["Authorization"] == f"Bearer {KEY}"  # what is sent is kept


def test_public_request_without_credential_fields_is_the_request_itself() -> None:
    def never() -> list[str]:
        raise AssertionError("the configured keys are not asked for a request with no credential field")
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert secrets.public_request(request, never) is request


def test_request_secrets_by_name_with_and_without_a_bearer_prefix() -> None:
    request = {"extra_headers": {"Authorization": "Bearer tok-123456789", "X-Trace": "trace-value"},
               "extra_body": {"api_key": "body-key-123", "note": "plain-text"}}
    found = secrets.request_secrets(request, "https://api.example.com/v1", [KEY])
    assert set(found) == {KEY, "Bearer tok-123456789", "tok-123456789", "body-key-123",
                          "trace-value"}  # an unknown header's value is a secret too
    assert list(found) == sorted(found, key=len, reverse=True)


def test_request_secrets_from_the_endpoints_user_and_password() -> None:
    found = secrets.request_secrets({}, "https://alice:p%40ss-word@proxy.example.com/v1")
    basic = base64.b64encode(b"alice:p@ss-word").decode()
    assert set(found) == {"alice:p@ss-word", "p@ss-word", "p%40ss-word", basic}
    # a server quoting the Authorization header it received is scrubbed too
    assert secrets.scrub(f"bad credentials: Basic {basic}", found) == "bad credentials: Basic <hidden>"


def test_request_secrets_of_an_endpoint_that_is_no_url() -> None:
    assert secrets.request_secrets({}, "http://user:password@[::1/v1") == ()  # urlsplit refuses it
    assert secrets.request_secrets({}, "http://host/v1", ["abc"]) == ()  # too short to replace


def test_headers_are_shown_only_when_known_to_be_harmless() -> None:
    headers = {"Cookie": "session=c00kie-value", "X-Gateway-Auth": "gw-auth-value",
               "X-Access-Token-Id": "token-id-value", "User-Agent": "my-notebook/1.0",
               "openai-beta": "assistants=v2"}
    request = {"model": "m", "messages": [], "extra_headers": headers}
    public = secrets.public_request(request, lambda: [])
    assert public["extra_headers"] == {"Cookie": HIDDEN, "X-Gateway-Auth": HIDDEN,
                                       "X-Access-Token-Id": HIDDEN, "User-Agent": "my-notebook/1.0",
                                       "openai-beta": "assistants=v2"}
    found = secrets.request_secrets(request, "https://api.example.com/v1")
    assert {"session=c00kie-value", "gw-auth-value", "token-id-value"} <= set(found)
    assert "my-notebook/1.0" not in found
