"""The displays' kit: safe Markdown, code spans and fences that cannot be closed."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from llmkit.notebook.kit import code_span, fence, keep_line_breaks, markdown_html, safe_markdown

FRONT_END = MarkdownIt("commonmark", {"html": True})  # what a notebook does with text/markdown


def test_markdown_html_renders_markdown_but_no_html_or_image() -> None:
    shown = markdown_html("*hey* <b>bold</b> ![x](https://evil.example/p.png)")
    assert "<em>hey</em>" in shown
    assert "<b>" not in shown and "&lt;b&gt;" in shown
    assert "<img" not in shown


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "![x](https://evil.example/t.png)",
                                  "[click](javascript:alert(1))", "a <img src=x onerror=alert(1)> b"])
def test_safe_markdown_leaves_no_tag_image_or_script_link(text: str) -> None:
    shown = FRONT_END.render(safe_markdown(text))
    assert "<script" not in shown and "<img" not in shown and "<a " not in shown
    assert safe_markdown(text) != text  # escaped: another renderer might make a live link of it


def test_safe_markdown_keeps_ordinary_markdown() -> None:
    text = "# Title\n\n- *one*\n- `two <b>`\n\n[docs](https://example.com)"
    assert safe_markdown(text) == text  # the tag sits in code: shown as text by any renderer


def test_a_code_span_cannot_be_closed_or_broken() -> None:
    for text in ["a`b", "``x``", "line\n\nnew paragraph **bold**"]:
        shown = FRONT_END.render(code_span(text))
        assert shown.count("<code>") == 1 and "<strong>" not in shown and shown.count("<p>") == 1


def test_a_fence_cannot_be_closed() -> None:
    text = "before\n```\n<script>alert(1)</script>\n````\nafter"
    shown = FRONT_END.render(fence(text))
    assert shown.count("<pre>") == 1 and "<script" not in shown and "after" in shown


POEM = "Roses are red,\nviolets are blue.\n\n```\ncode\nline\n```\n"


def test_an_answers_line_breaks_are_kept_in_html() -> None:
    shown = markdown_html(POEM)
    assert "<p>Roses are red,<br />\nviolets are blue.</p>" in shown
    assert "<pre><code>code\nline\n</code></pre>" in shown  # code is left as written


def test_an_answers_line_breaks_are_kept_in_markdown() -> None:
    shown = FRONT_END.render(keep_line_breaks(POEM))  # what a notebook renders from text/markdown
    assert "<p>Roses are red,<br />\nviolets are blue.</p>" in shown
    assert "<pre><code>code\nline\n</code></pre>" in shown
    assert keep_line_breaks("one\n\ntwo") == "one\n\ntwo"  # paragraphs stay paragraphs
