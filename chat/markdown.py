"""Markdown to safe HTML: markdown-it-py renders, Pygments highlights fenced code, nh3
(the Ammonia sanitizer) keeps only harmless tags and attributes. Model output is
untrusted: raw HTML in it is escaped by the parser and anything that slips through is
removed by the sanitizer, so it can never run script in the page."""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "kbd", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "span", "div",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "pre": {"class", "data-lang"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="tok-")


def _highlight(code: str, lang: str, _attrs: str) -> str:
    language = (lang or "").strip().split()[0] if lang else ""
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else html.escape(code)
    label = html.escape(language)
    return (
        f'<pre class="code-block" data-lang="{label}"><code class="language-{label}">'
        f"{body}</code></pre>"
    )


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # "html": False escapes raw HTML in the source instead of passing it through.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    return md


def render_markdown(text: str) -> str:
    """Sanitized HTML for a message. Safe to insert into the page as is."""
    if not text:
        return ""
    raw = _parser().render(text)
    return nh3.clean(
        raw,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def pygments_css() -> str:
    """The highlighting stylesheet, light and dark (written to static/ by a test check)."""
    light = HtmlFormatter(classprefix="tok-", style="default").get_style_defs(".md")
    dark = HtmlFormatter(classprefix="tok-", style="monokai").get_style_defs(".md")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
