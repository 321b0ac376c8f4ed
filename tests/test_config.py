"""Configuration layering, validation and call-time resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmkit
from llmkit.base import config
from llmkit.base.errors import ConfigError


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
