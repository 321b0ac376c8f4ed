"""Templates: files or inline strings, sandboxed, strict about missing variables."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmkit
from llmkit.base.errors import LLMKitWarning, MissingVariableError, TemplateError
from llmkit.base.templates import Template
from tests.openai_server import OpenAITestServer


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


# --- Untrusted templates: every failure is a TemplateError with a clear message -------------


def test_normal_templates_still_render() -> None:
    t = Template("{% for item in items %}{{ loop.index }}. {{ item|upper }}{% if not loop.last %}, "
                 "{% endif %}{% endfor %}{% if extra %} +{{ extra|length }}{% else %} -{% endif %}"
                 " {{ '-' * 3 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ '%.1f'|format(n) }} "
                 "{{ '{:,}'.format(big) }} {{ 'ab'.center(6) }}|{{ topic.title() }}")
    assert t.render(items=["a", "b"], extra=[1, 2], n=2.25, big=1234567, topic="cats and dogs") == (
        "1. A, 2. B +2 --- 1024 1 2.2 1,234,567   ab  |Cats And Dogs")
    assert t.variables == ("items", "extra", "n", "big", "topic")


def test_plain_renders_are_remembered_and_failures_are_not() -> None:
    t = Template("{{ a }} {{ b }}")
    first = t.render(a="x", b=1)
    assert t.render(a="x", b=1) is first
    with pytest.raises(MissingVariableError):
        t.render(a="x")
    with pytest.raises(TemplateError, match="surrogate"):
        t.render(a="\ud800", b=1)
    with pytest.raises(TemplateError, match="surrogate"):
        t.render(a="\ud800", b=1)  # still refused: nothing was remembered


@pytest.mark.parametrize(("source", "tag"), [
    ("{% include 'other.md' %}", "include"),
    ("{% import 'macros.j2' as m %}{{ m.x() }}", "import"),
    ("{% from 'macros.j2' import x %}", "import"),
    ("{% extends 'base.md' %}", "extends"),
])
def test_include_import_extends_are_refused(source: str, tag: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template(source)
    message = str(info.value)
    assert f"{{% {tag} %}}" in message and "line 1" in message
    assert "cannot include, import or extend other template files" in message
    assert "pass the other text as a variable" in message


@pytest.mark.parametrize("source", ["{{ range(10**9) }}",
                                    "{% for i in range(10**9) %}{{ i }}{% endfor %}"])
def test_huge_range_is_a_template_error(source: str) -> None:
    with pytest.raises(TemplateError, match=r"range\(\) is too big: .*at most 100,000 items"):
        Template(source).render()


@pytest.mark.parametrize(("source", "words"), [
    ("{{ 'x' * 10**9 }}", "would repeat a str to 1,000,000,000 items"),
    ("{{ [0] * 10**9 }}", "would repeat a list"),
    ("{{ 2 ** 1000000 }}", "'**' would make a number of more than"),
    ("{{ 'x'.center(10**9) }}", "str.center() with a width of 1,000,000,000"),
    ("{{ 'x'|center(10**9) }}", "the center filter with a width"),
    ("{{ 'x'|indent(10**9) }}", "the indent filter with a width"),
    ("{{ '{:>2000000000}'.format(1) }}", "a format width over 1,000,000"),
    ("{{ '{:>{w}}'.format(1, w=10**9) }}", "with a width of 1,000,000,000"),
    ("{{ '%*d' % (10**9, 1) }}", "with a width of 1,000,000,000"),
    ("{{ '%2000000000d'|format(1) }}", "a format width over 1,000,000"),
])
def test_runaway_sizes_are_refused(source: str, words: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template(source).render()
    message = str(info.value)
    assert message.startswith(f"template {source!r}: line 1: ") and words in message
    assert "the template sandbox allows at most" in message or "the template sandbox refuses" in message


class _Boom:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __str__(self) -> str:
        raise self.exc


def test_exceptions_escaping_jinja_become_template_errors() -> None:
    with pytest.raises(TemplateError, match=r"^template '\{\{ 1 / n \}\}': line 1: ZeroDivisionError"):
        Template("{{ 1 / n }}").render(n=0)
    with pytest.raises(TemplateError, match="line 2: out of memory while rendering"):
        Template("a\n{{ x }}").render(x=_Boom(MemoryError()))
    with pytest.raises(TemplateError, match="ValueError: bad value"):
        Template("{{ x }}").render(x=_Boom(ValueError("bad value")))
    with pytest.raises(TemplateError, match="too much recursion"):
        Template("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").render()
    with pytest.raises(TemplateError, match="nested too deeply"):
        Template("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")


def test_missing_attribute_is_a_template_error_not_a_missing_variable() -> None:
    with pytest.raises(TemplateError) as info:
        Template("{{ topic.nope }}").render(topic="x")
    assert not isinstance(info.value, MissingVariableError)
    assert "line 1: 'str object' has no attribute 'nope'" in str(info.value)


def test_method_not_called_suggests_calling_it() -> None:
    with pytest.raises(TemplateError) as info:
        Template("About {{ topic.title }}").render(topic="cats")
    assert str(info.value) == ("template 'About {{ topic.title }}': line 1: {{ topic.title }} is a "
                               "method; did you mean topic.title()?")


@pytest.mark.parametrize(("source", "variables", "words"), [
    ("{% for t in ts %}{{ t.upper }}{% endfor %}", {"ts": ["a"]},
     "{{ t.upper }} is a method; did you mean t.upper()?"),
    ("{{ d['items'] }}", {"d": {}}, "{{ d['items'] }} is a method; did you mean d['items']()?"),
    ("{{ fn }}", {"fn": len}, "{{ fn }} is a function; did you mean fn()?"),
    ("{{ range }}", {}, "{{ range }} is a function; did you mean range()?"),
    ("{{ (x|list)[0] }}", {"x": [str.upper]},
     "a {{ }} expression is a method (str.upper), not text; did you forget the () that calls it?"),
])
def test_callables_rendered_as_text_are_refused(source: str, variables: dict[str, object],
                                                words: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template(source).render(**variables)
    assert words in str(info.value)


def test_lone_surrogate_in_a_variable_names_it() -> None:
    with pytest.raises(TemplateError) as info:
        Template("Summarize: {{ text }}").render(text="ok \ud800 then")
    message = str(info.value)
    assert "variable 'text' contains a lone surrogate ('\\ud800'" in message
    assert "cannot be sent as UTF-8; remove or replace it" in message
    assert "text.encode('utf-8', 'replace')" in message
    message.encode("utf-8")  # the message itself can be printed and sent


def test_lone_surrogate_in_the_template_or_the_output() -> None:
    with pytest.raises(TemplateError, match=r"template text contains a lone surrogate.*remove or"):
        Template("Hi \udc80 {{ x }}")
    with pytest.raises(TemplateError, match=r"the rendered text .* contains a lone surrogate"):
        Template("{{ x[0] }}").render(x=["\ud800"])
    with pytest.raises(TemplateError, match=r"the rendered text .* contains a lone surrogate"):
        Template('{{ "\\ud800" }}').render()
    assert Template("{{ x }} é").render(x="naïve 😀") == "naïve 😀 é"


@pytest.mark.parametrize("name", ["../secret.txt", "../../secret.txt", "sub/../../secret.txt",
                                  "..\\secret.txt"])
def test_names_cannot_climb_out_of_the_template_path(tmp_path: Path, name: str) -> None:
    (tmp_path / "templates" / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("the secret")
    with pytest.raises(TemplateError) as info:
        Template(name)
    message = str(info.value)
    assert f"template name {name!r} is not allowed" in message
    assert "cannot be absolute or contain '..'" in message and "pass a pathlib.Path" in message


def test_absolute_names_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    with pytest.raises(TemplateError, match="is not allowed: names are looked up inside the template"):
        Template(str(secret))


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "secret.txt").write_text("the secret")
    try:
        (tmp_path / "templates" / "link.txt").symlink_to(tmp_path / "secret.txt")
    except OSError:
        pytest.skip("no symbolic links here")
    (tmp_path / "templates" / "real.md").write_text("inside {{ x }}")
    (tmp_path / "templates" / "alias.md").symlink_to(tmp_path / "templates" / "real.md")
    with pytest.raises(TemplateError) as info:
        Template("link.txt")
    assert "resolves to" in str(info.value) and "outside that folder" in str(info.value)
    assert "pass a pathlib.Path" in str(info.value)
    assert Template("alias.md").render(x=1) == "inside 1"  # a link inside the folder is fine


def test_a_path_loads_that_exact_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "p.md").write_text("exact {{ x }}")
    t = Template(elsewhere / "p.md")
    assert t.path == elsewhere / "p.md" and t.name == "p.md" and t.label == "elsewhere/p.md"
    assert t.source == "exact {{ x }}" and t.variables == ("x",)
    assert t.render(x=2) == "exact 2"
    assert Template(Path("elsewhere/p.md")).render(x=3) == "exact 3"  # relative to the cwd
    with pytest.raises(TemplateError, match="not found"):
        Template(elsewhere / "nope.md")
    with pytest.raises(TemplateError, match="is not a file"):
        Template(elsewhere)
    (elsewhere / "bad.md").write_bytes(b"caf\xe9")
    with pytest.raises(TemplateError, match="is not UTF-8 text"):
        Template(elsewhere / "bad.md")
    with pytest.raises(TemplateError, match=r"file name, a pathlib\.Path or a Jinja2 string"):
        Template(42)  # type: ignore[arg-type]


def test_errors_show_no_absolute_path_of_the_authors_machine(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "broken.md").write_text("line one\n{{ x ")
    outside = tmp_path / "home" / "alice" / "prompts"
    outside.mkdir(parents=True)
    (outside / "other.md").write_text("{% if %}")
    work = tmp_path / "work"
    work.mkdir()
    (work / "here.md").write_bytes(b"caf\xe9")
    monkeypatch.chdir(work)
    monkeypatch.setenv("LLMKIT_TEMPLATE_PATH", str(tmp_path / "templates"))
    cases = [(lambda: Template("broken.md"), "template broken.md: line 2: "),
             (lambda: Template(outside / "other.md"), "template other.md: line 1: "),
             (lambda: Template(Path("here.md")), "template file here.md is not UTF-8 text"),
             (lambda: Template(outside / "gone.md"), "template file gone.md not found")]
    for make, shown in cases:
        with pytest.raises(TemplateError) as info:
            make()
        assert str(info.value).startswith(shown), str(info.value)
        assert str(tmp_path) not in str(info.value) and "alice" not in str(info.value)
    with pytest.raises(TemplateError) as info:
        Template("nope.md")
    assert str(tmp_path) not in str(info.value)
    assert "searched: templates, " in str(info.value)
    assert "llmkit/base/templates (built in)" in str(info.value)


def test_a_single_braced_name_that_is_passed_warns_once_with_the_fix() -> None:
    t = Template("What is the capital of {country}? {\"json\": 1} {{ other }}")
    with pytest.warns(LLMKitWarning) as seen:
        assert t.render(country="France", other="x") == "What is the capital of {country}? {\"json\": 1} x"
    [warning] = seen
    assert "{country} is sent as written" in str(warning.message)
    assert "write {{ country }}" in str(warning.message)
    assert t.render(country="Italy", other="x").startswith("What is the capital of {country}?")  # once
    assert Template("{country} {{ country }}").render(country="Peru") == "{country} Peru"  # no warning:
    assert Template("a {json} b").render(x=1) == "a {json} b"  # ... nor for a name that is not passed


# -- objects from a notebook in a prompt ---------------------------------------------------------


def test_a_dataframe_reads_as_a_compact_markdown_table() -> None:
    import pandas as pd
    frame = pd.DataFrame({"city": [f"c|{i}" for i in range(12)], "people": range(12)})
    text = Template("Rows:\n{{ df }}").render(df=frame)
    lines = text.splitlines()
    assert lines[1] == "|  | city | people |" and lines[2] == "|---|---|---|"
    assert lines[3] == "| 0 | c\\|0 | 0 |"  # a pipe in a cell cannot break the table
    assert len([line for line in lines if line.startswith("| ")]) == 1 + 10  # header + head(10)
    assert lines[-1] == (f"(12 rows × 2 columns, first 10 shown; dtypes: city: {frame.dtypes['city']}, "
                         f"people: int64)")
    assert "DataFrame" not in text and "..." not in text


def test_a_series_and_an_object_with_markdown_read_as_markdown() -> None:
    import pandas as pd

    class Note:
        def _repr_markdown_(self) -> str:
            return "**bold** note"

    text = Template("{{ s }}\n{{ note }}").render(s=pd.Series([1.5, 2.5], name="score"), note=Note())
    assert text.splitlines()[:4] == ["|  | score |", "|---|---|", "| 0 | 1.5 |", "| 1 | 2.5 |"]
    assert "(2 rows; dtypes: score: float64)" in text and text.endswith("**bold** note")


def test_a_dataframe_in_an_llmcall_is_sent_as_a_table(llm: OpenAITestServer) -> None:
    import pandas as pd

    from llmkit import LLMCall
    answer = LLMCall("s", "Summarise:\n{{ df }}").call(df=pd.DataFrame({"a": [1, 2]}))
    assert answer == ("echo: Summarise:\n|  | a |\n|---|---|\n| 0 | 1 |\n| 1 | 2 |\n\n"
                      "(2 rows × 1 columns; dtypes: a: int64)")


def test_rendering_never_imports_pandas() -> None:
    import subprocess
    import sys
    code = ("import sys, llmkit\n"
            "from llmkit.base.templates import Template\n"
            "Template('{{ x }}').render(x=1)\n"
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
