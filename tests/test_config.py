"""Configuration layering, validation and call-time resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmkit
from llmkit import OpenAIClient
from llmkit.base import config
from llmkit.base.errors import ConfigError
from tests.conftest import SECRET
from tests.openai_server import OpenAITestServer


def test_package_defaults() -> None:
    s = config.resolve()
    assert s.model == "gpt-4o-mini"
    assert s.max_attempts == 5
    assert s.cache_api_calls is True


def test_working_directory_config_merges_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "config.ini").write_text("[OpenAI]\nTEMPERATURE=0.3\n")
    s = config.resolve()
    assert s.temperature == 0.3
    assert s.model == "gpt-4o-mini"  # not replaced by the user file
    assert s.max_tokens == 1024


def test_environment_overrides_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.ini").write_text("[OpenAI]\nMODEL=from-file\nTEMPERATURE=0.3\n")
    monkeypatch.setenv("LLMKIT_MODEL", "from-env")
    monkeypatch.setenv("LLMKIT_CACHE_DIR", str(tmp_path / "c"))
    s = config.resolve()
    assert (s.model, s.temperature, s.cache_dir) == ("from-env", 0.3, str(tmp_path / "c"))


def test_forced_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_MODEL", "from-env")
    llmkit.force_default_value("model", "forced")
    assert config.resolve().model == "forced"
    llmkit.force_default_value("model", None)
    assert config.resolve().model == "from-env"


def test_bad_value_in_file_names_file_key_value_and_expectation(tmp_path: Path) -> None:
    (tmp_path / "config.ini").write_text("[OpenAI]\nTEMPERATURE=hot\n")
    with pytest.raises(ConfigError) as info:
        config.resolve()
    text = str(info.value)
    assert str(tmp_path / "config.ini") in text
    assert "TEMPERATURE" in text and "'hot'" in text and "a number from 0 to 2" in text


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match=r"LLMKIT_MAX_ATTEMPTS.*an integer"):
        config.resolve()


def test_force_default_value_checks_now() -> None:
    with pytest.raises(ConfigError, match="TEMPERATURE = 'hot'"):
        llmkit.force_default_value("temperature", "hot")
    with pytest.raises(ConfigError, match=r"unknown configuration key 'temprature'.*temperature"):
        llmkit.force_default_value("temprature", 0.5)
    assert config.resolve().temperature is None  # not set: the model's own default applies


def test_unknown_key_in_file_warns(tmp_path: Path) -> None:
    (tmp_path / "config.ini").write_text("[OpenAI]\nTEMPRATURE=0.3\n[Simulation]\nRANDOM=1\n")
    with pytest.warns(UserWarning, match="unknown key TEMPRATURE"):
        config.resolve()


def test_tinytroupe_spelling_is_understood(tmp_path: Path) -> None:
    (tmp_path / "config.ini").write_text("[OpenAI]\nFREQ_PENALTY=0.5\n")
    assert config.resolve().frequency_penalty == 0.5


def test_secrets_hidden_from_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    s = config.resolve()
    assert s.api_key == "sk-very-secret"
    assert "sk-very-secret" not in repr(s)


def test_bad_secret_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse_value("max_tokens", "sk-secret", "x")
    assert "sk-secret" in str(info.value)  # not a secret key: shown to help
    assert "<hidden>" not in str(info.value)


# --- a config.ini in the working directory may not name files, folders or hosts on its own ---

PATHS = sorted(config.DESTINATION_KEYS - config.HOST_KEYS)


def test_every_key_naming_a_file_folder_or_host_is_a_destination_key() -> None:
    named_like_one = {k for k in config.SCHEMA if k.endswith(("_path", "_dir", "_url", "_endpoint", "_file"))}
    assert named_like_one <= config.DESTINATION_KEYS
    assert {"record", "replay", "local_model"} <= config.DESTINATION_KEYS


@pytest.mark.parametrize("key", PATHS)
def test_workdir_config_cannot_set_a_path(key: str, isolated: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMKIT_CACHE_DIR")  # the fixture's own choice would win over the file
    (isolated / "config.ini").write_text(f"[OpenAI]\n{key.upper()}={isolated / 'elsewhere'}\n")
    with pytest.raises(ConfigError) as info:
        config.resolve()
    text = str(info.value)
    assert str(isolated / "config.ini") in text and key.upper() in text
    assert f"{config.TRUST_WORKDIR_VAR}={key}" in text  # how to opt in
    assert f"LLMKIT_{key.upper()}" in text  # ... or set it yourself


@pytest.mark.parametrize("key", PATHS)
def test_the_user_can_allow_a_path_from_workdir_config(key: str, isolated: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMKIT_CACHE_DIR")
    (isolated / "config.ini").write_text(f"[OpenAI]\n{key.upper()}={isolated / 'elsewhere'}\n")
    monkeypatch.setenv(config.TRUST_WORKDIR_VAR, key.upper())  # takes effect at once
    assert config.resolve()[key] == str(isolated / "elsewhere")
    monkeypatch.setenv(config.TRUST_WORKDIR_VAR, "all")
    assert config.resolve()[key] == str(isolated / "elsewhere")
    monkeypatch.delenv(config.TRUST_WORKDIR_VAR)
    with pytest.raises(ConfigError):
        config.resolve()


def test_a_path_the_user_sets_wins_over_workdir_config(isolated: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / "config.ini").write_text(f"[OpenAI]\nRECORD={isolated / 'theirs.jsonl'}\n")
    monkeypatch.setenv("LLMKIT_RECORD", str(isolated / "mine.jsonl"))
    assert config.resolve().record == str(isolated / "mine.jsonl")
    monkeypatch.delenv("LLMKIT_RECORD")
    llmkit.force_default_value("record", str(isolated / "forced.jsonl"))
    assert config.resolve().record == str(isolated / "forced.jsonl")


def test_an_empty_path_in_workdir_config_is_harmless(isolated: Path) -> None:
    (isolated / "config.ini").write_text("[OpenAI]\nRECORD=\nCACHE_DIR=\n")
    assert config.resolve().record is None


def test_unknown_key_in_trust_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.TRUST_WORKDIR_VAR, "record,model")
    with pytest.raises(ConfigError) as info:
        config.resolve()
    assert config.TRUST_WORKDIR_VAR in str(info.value) and "MODEL" in str(info.value)
    assert "RECORD" in str(info.value)  # the keys it may name


def test_workdir_record_appends_nothing_and_sends_nothing(llm: OpenAITestServer, isolated: Path) -> None:
    target = isolated / "prompts.jsonl"
    (isolated / "config.ini").write_text(f"[OpenAI]\nRECORD={target}\n")
    with pytest.raises(ConfigError, match="RECORD"):
        OpenAIClient().send_message([{"role": "user", "content": "my private prompt"}])
    assert llm.requests == [] and not target.exists()


def test_workdir_replay_does_not_answer(llm: OpenAITestServer, isolated: Path) -> None:
    fake = isolated / "theirs.jsonl"
    fake.write_text("")
    (isolated / "config.ini").write_text(f"[OpenAI]\nREPLAY={fake}\n")
    with pytest.raises(ConfigError, match="REPLAY"):
        OpenAIClient().send_message([{"role": "user", "content": "hi"}])


def test_workdir_config_still_sets_harmless_keys(llm: OpenAITestServer, isolated: Path) -> None:
    (isolated / "config.ini").write_text(
        "[OpenAI]\nMODEL=gpt-4o\nTEMPERATURE=0.25\nMAX_TOKENS=77\nCACHE_API_CALLS=False\n")
    OpenAIClient().send_message([{"role": "user", "content": "hi"}])
    body = llm.requests[-1].body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-4o", 0.25, 77)


def test_trusting_base_url_lets_the_key_go_to_the_workdir_host(
        llm: OpenAITestServer, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    (isolated / "config.ini").write_text(f"[OpenAI]\nBASE_URL={llm.base_url}\n")
    with pytest.raises(ConfigError, match=config.TRUSTED_HOSTS_VAR):
        OpenAIClient().send_message([{"role": "user", "content": "hi"}])
    assert llm.requests == []
    monkeypatch.setenv(config.TRUST_WORKDIR_VAR, "base_url")
    OpenAIClient().send_message([{"role": "user", "content": "hi"}])
    assert llm.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
