"""Templates: files or inline strings, sandboxed, strict about missing variables."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmkit
from llmkit.base.errors import MissingVariableError, TemplateError
from llmkit.base.templates import Template


def test_inline_template_renders_and_lists_variables() -> None:
    t = Template("Hello {{ name }}, you are {{ age }}.")
    assert t.render(name="Ada", age=36) == "Hello Ada, you are 36."
    assert t.variables == ("name", "age")
    assert t.path is None


def test_json_braces_pass_through() -> None:
    assert Template('Answer as {"a": 1} for {{ x }}').render(x="y") == 'Answer as {"a": 1} for y'


def test_file_in_working_directory_templates_folder(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "persona.md").write_text("You are {{ who }}.\n")
    t = Template("persona.md")
    assert t.path == tmp_path / "templates" / "persona.md"
    assert t.render(who="a pirate") == "You are a pirate.\n"


def test_template_path_from_config(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "p.j2").write_text("from config {{ x }}")
    llmkit.force_default_value("template_path", str(folder))
    assert Template("p.j2").render(x=1) == "from config 1"


def test_package_template() -> None:
    assert Template("assistant.system.md").render() == "You are a helpful assistant.\n"


def test_missing_file_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"'nope\.md' not found; searched: .*templates"):
        Template("nope.md")


def test_missing_variable_names_variable_and_template() -> None:
    with pytest.raises(MissingVariableError) as info:
        Template("Hi {{ name }} from {{ place }}").render(name="x")
    assert info.value.variable == "place"
    assert "place" in str(info.value) and "Hi {{ name }}" in str(info.value)


def test_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="line 1"):
        Template("Hi {{ name ")


def test_sandbox_blocks_unsafe_attribute_access() -> None:
    with pytest.raises(TemplateError):
        Template("{{ x.__class__.__mro__[1].__subclasses__() }}").render(x="")
