"""Server-side Markdown: useful formatting survives, hostile markup does not."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from chat.markdown import pygments_css, render_markdown
from chat.tests.xss_corpus import ALL_IN_ONE, PAYLOADS

SAFE_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "kbd", "blockquote", "ul",
    "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr",
    "th", "td", "span", "div",
}  # fmt: skip


class TagCollector(HTMLParser):
    """The real elements and attributes of an HTML string (escaped text is not a tag)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name in {"style", "srcdoc", "formaction"}:
                self.problems.append(f"{tag}[{name}]")
            if name in {"href", "src", "action"}:
                scheme = (
                    (value or "").strip().split(":", 1)[0].lower() if ":" in (value or "") else ""
                )
                if scheme not in {"", "http", "https", "mailto"}:
                    self.problems.append(f"{tag}[{name}={value}]")


def problems_in(html: str) -> list[str]:
    collector = TagCollector()
    collector.feed(html)
    return collector.problems


def test_formatting_survives() -> None:
    html = render_markdown("**bold** _it_ `code`\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |")
    for tag in (
        "<strong>bold</strong>",
        "<em>it</em>",
        "<code>code</code>",
        "<li>a</li>",
        "<td>1</td>",
    ):
        assert tag in html


def test_fenced_code_is_highlighted() -> None:
    html = render_markdown("```python\ndef f():\n    return 1\n```")
    assert '<pre class="code-block" data-lang="python">' in html
    assert 'class="tok-k"' in html  # the keyword "def"


def test_unknown_code_language_is_plain_escaped_text() -> None:
    html = render_markdown("```nosuchlang\n<b>x</b>\n```")
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_links_are_safe_and_marked_nofollow() -> None:
    html = render_markdown("[site](https://example.com)")
    assert 'href="https://example.com"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_markup_is_neutralised(payload: str) -> None:
    html = render_markdown(payload)
    assert problems_in(html) == [], html


def test_all_payloads_together_are_neutralised() -> None:
    assert problems_in(render_markdown(ALL_IN_ONE)) == []


def test_empty_text_renders_nothing() -> None:
    assert render_markdown("") == ""


def test_highlight_css_has_light_and_dark() -> None:
    css = pygments_css()
    assert ".md .tok-k" in css and "prefers-color-scheme: dark" in css


def test_the_checker_sees_real_tags() -> None:
    assert problems_in('<img src=x onerror="a()">') == ["<img>", "img[onerror]"]
    assert problems_in('<a href="javascript:a()">x</a>') == ["a[href=javascript:a()]"]
    assert problems_in("&lt;img onerror=a()&gt;") == []
