"""Markdown to safe HTML: markdown-it-py renders, Pygments highlights fenced code,
latex2mathml turns LaTeX into MathML, nh3 (the Ammonia sanitizer) keeps only harmless tags
and attributes. Model output is untrusted: raw HTML in it is escaped by the parser and
anything that slips through is removed by the sanitizer, so it can never run script in the
page.

Two promises beyond CommonMark:

- **No text is lost.** Whatever the renderer cannot render is shown as text: blocks nested
  deeper than ``_BLOCK_NESTING_LIMIT`` as a plain preformatted block (markdown-it would
  drop them and everything after them), images as links carrying their alt text (the
  sanitizer would drop ``<img>`` and its alt), characters a database refuses (NUL, lone
  surrogates) removed exactly as ``chat.dbtext.storable_text`` removes them before saving.
- **Mathematics** in the four delimiter styles models write, ``$...$`` and ``\\(...\\)``
  inline, ``$$...$$`` and ``\\[...\\]`` displayed, becomes MathML (rendered natively by the
  browser, no script, no CDN) with the LaTeX source kept in
  ``<annotation encoding="application/x-tex">``. Prose dollars ("costs $5 and $10") stay
  text, following Pandoc's rule: no space just inside the dollars, no digit just after the
  closing one. Math that latex2mathml cannot convert is shown as its source, delimiters and
  backslashes intact, in ``<code class="math-source">``.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import Element

import nh3
from latex2mathml.converter import convert_to_element
from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from .dbtext import storable_text

_HTML_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "kbd", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "span", "div",
}  # fmt: skip
_HTML_ATTRIBUTES = {
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

# --- Limits ------------------------------------------------------------------------------
# markdown-it stops parsing at ``maxNesting`` and silently drops the rest of the document.
# Our own block rule takes over below that depth and shows the deeper lines as text, so the
# parser's limit is never reached by blocks. Inline nesting (links around images...) keeps
# its text by itself at the limit. 40 block levels are 20 nested lists or 40 blockquotes;
# the parser recurses a couple of frames per level, far from Python's recursion limit.
_BLOCK_NESTING_LIMIT = 40
_MAX_NESTING = _BLOCK_NESTING_LIMIT + 10
# latex2mathml takes ~10 µs per character; longer formulas are shown as their source.
_MAX_MATH_CHARS = 4000
# A display formula spans at most this many lines (bounds the search for its end).
_MAX_MATH_LINES = 200

# --- MathML allow-list (the serializer below emits nothing else; nh3 checks again) -------
# Elements whose children form one row: a ``\\`` line break among them becomes a table.
_MATHML_CONTAINERS = frozenset(
    "math mrow mstyle mtd mpadded mphantom menclose msqrt merror".split()
)
_MATHML_TAGS = _MATHML_CONTAINERS | frozenset(
    "semantics annotation mi mn mo ms mtext mspace msub msup msubsup munder mover munderover"
    " mfrac mroot mtable mtr mmultiscripts mprescripts none".split()
)
_TRUE_FALSE = frozenset({"true", "false"})
_MATHML_CHOICES: dict[str, frozenset[str]] = {
    "mathvariant": frozenset(
        "normal bold italic bold-italic double-struck bold-fraktur script bold-script fraktur"
        " sans-serif bold-sans-serif sans-serif-italic sans-serif-bold-italic monospace"
        " initial tailed looped stretched".split()
    ),
    **dict.fromkeys(
        "stretchy fence separator accent accentunder movablelimits largeop symmetric"
        " displaystyle".split(),
        _TRUE_FALSE,
    ),
    "form": frozenset({"prefix", "infix", "postfix"}),
}
# Attributes holding space-separated words from a small vocabulary.
_MATHML_WORDS: dict[str, frozenset[str]] = {
    "columnalign": frozenset({"left", "center", "right"}),
    "rowalign": frozenset({"top", "bottom", "center", "baseline", "axis"}),
    "columnlines": frozenset({"none", "solid", "dashed"}),
    "rowlines": frozenset({"none", "solid", "dashed"}),
    "frame": frozenset({"none", "solid", "dashed"}),
    "notation": frozenset(
        "box roundedbox circle left right top bottom updiagonalstrike downdiagonalstrike"
        " verticalstrike horizontalstrike madruwb updiagonalarrow phasorangle longdiv"
        " actuarial radical".split()
    ),
}
_MATHML_LENGTHS = frozenset(
    "width height depth lspace rspace voffset minsize maxsize mathsize linethickness"
    " rowspacing columnspacing".split()
)
_MATHML_PATTERNS: dict[str, re.Pattern[str]] = {
    "scriptlevel": re.compile(r"[+-]?[0-7]"),
    "mathcolor": re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,20}"),
    "mathbackground": re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,20}"),
}
_MATHML_ATTRIBUTES = (
    set(_MATHML_CHOICES) | set(_MATHML_WORDS) | _MATHML_LENGTHS | set(_MATHML_PATTERNS)
)
# A length is at most this many em (roughly), so math cannot cover the page around it.
_MAX_LENGTH_EM = 20.0
_EM_PER_UNIT = {
    "": 1.0, "em": 1.0, "ex": 0.5, "mu": 1 / 18, "pt": 0.1, "px": 1 / 16, "%": 0.01,
    "in": 6.0, "cm": 2.4, "mm": 0.24,
}  # fmt: skip
_LENGTH = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(em|ex|mu|pt|px|%|in|cm|mm)?")
_NAMED_LENGTHS = frozenset({"thin", "medium", "thick", "infinity"})
_CHAR_REF = re.compile(r"&#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}));")

_ALLOWED_TAGS = _HTML_TAGS | _MATHML_TAGS
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    **_HTML_ATTRIBUTES,
    **{tag: set(_MATHML_ATTRIBUTES) for tag in _MATHML_TAGS},
    "math": {"display"},
    "semantics": set(),
    "annotation": {"encoding"},
}

_CLOSERS = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_CLOSER_PATTERNS = {opener: re.compile(re.escape(closer)) for opener, closer in _CLOSERS.items()}
_BLANK_LINE = re.compile(r"\n[ \t]*(?:\n|$)")


@lru_cache(maxsize=128)
def _lexer(language: str) -> Lexer | None:
    # Looking a lexer up by name costs more than highlighting a short block: keep them.
    try:
        return get_lexer_by_name(language) if language else None
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, _attrs: str) -> str:
    language = (lang or "").strip().split()[0] if lang else ""
    lexer = _lexer(language)
    body = highlight(code, lexer, _FORMATTER) if lexer else html.escape(code)
    label = html.escape(language)
    return (
        f'<pre class="code-block" data-lang="{label}"><code class="language-{label}">'
        f"{body}</code></pre>"
    )


# --- Mathematics -------------------------------------------------------------------------


def _char(match: re.Match[str]) -> str:
    code = int(match[1], 16) if match[1] else int(match[2])
    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return "\ufffd"
    return chr(code)


def _text(value: str | None) -> str:
    """latex2mathml writes symbols as numeric character references but copies other text
    (``\\text{<b>}``, a bare ``&``) as is: decode the references, escape everything."""
    if not value:
        return ""
    return html.escape(_CHAR_REF.sub(_char, value), quote=False)


def _length_ok(value: str) -> bool:
    words = value.split()
    if not words or len(words) > 32:
        return False
    for word in words:
        if word in _NAMED_LENGTHS:
            continue
        match = _LENGTH.fullmatch(word)
        if match is None:
            return False
        if abs(float(match[1])) * _EM_PER_UNIT[match[2] or ""] > _MAX_LENGTH_EM:
            return False
    return True


def _attribute_ok(name: str, value: str) -> bool:
    if name in _MATHML_CHOICES:
        return value in _MATHML_CHOICES[name]
    if name in _MATHML_WORDS:
        words = value.split()
        return bool(words) and all(word in _MATHML_WORDS[name] for word in words)
    if name in _MATHML_LENGTHS:
        return _length_ok(value)
    if name in _MATHML_PATTERNS:
        return _MATHML_PATTERNS[name].fullmatch(value) is not None
    return False


def _is_line_break(element: Element) -> bool:
    return element.tag == "mspace" and element.get("linebreak") == "newline"


def _is_column_break(element: Element) -> bool:
    # latex2mathml leaves the ``&`` of environments it does not know (aligned, gathered...)
    # as a bare identifier; written ``\&`` it becomes an escaped operator instead.
    return element.tag == "mi" and element.text == "&" and not len(element)


def _element_html(element: Element, display: bool) -> str:
    tag = element.tag if element.tag in _MATHML_TAGS else "mrow"
    attributes = "".join(
        f' {name}="{html.escape(value)}"'
        for name, value in element.attrib.items()
        if name in _MATHML_ATTRIBUTES and _attribute_ok(name, value)
    )
    return f"<{tag}{attributes}>{_children_html(element, display)}</{tag}>"


def _children_html(element: Element, display: bool) -> str:
    """The content of ``element``. Chromium's MathML does not break lines at
    ``<mspace linebreak>``, so a row holding ``\\\\`` breaks (and ``&`` column marks) is
    laid out as a table: one table row per line, one cell per column."""
    children = list(element)
    if element.tag not in _MATHML_CONTAINERS or not any(
        _is_line_break(child) or _is_column_break(child) for child in children
    ):
        parts = [_text(element.text)]
        for child in children:
            parts.append(_element_html(child, display))
            parts.append(_text(child.tail))
        return "".join(parts)
    rows: list[list[list[str]]] = [[[_text(element.text)]]]
    for child in children:
        if _is_line_break(child):
            rows.append([[]])
        elif _is_column_break(child):
            rows[-1].append([])
        else:
            rows[-1][-1].append(_element_html(child, display))
        rows[-1][-1].append(_text(child.tail))
    while len(rows) > 1 and not "".join(map("".join, rows[-1])):
        rows.pop()  # a trailing ``\\`` adds no line
    columns = max(len(row) for row in rows)
    # Like LaTeX's align: columns in pairs, right then left; one column is centred.
    aligns = ["center"] if columns == 1 else ["right", "left"] * columns
    table = "".join(
        "<mtr>"
        + "".join(
            # An empty identifier before a right-hand cell keeps its "=" an infix operator.
            f'<mtd columnalign="{aligns[index]}"><mrow>{"<mi></mi>" * (index % 2)}'
            f"{''.join(cell)}</mrow></mtd>"
            for index, cell in enumerate(row)
        )
        + "</mtr>"
        for row in rows
    )
    style = ' displaystyle="true"' if display else ""
    return f"<mtable{style}>{table}</mtable>"


def _math_source(source: str, markup: str, block: bool) -> str:
    text = html.escape(f"{markup}{source}{_CLOSERS.get(markup, markup)}", quote=False)
    if block:
        return f'<pre class="math-source"><code>{text}</code></pre>'
    return f'<code class="math-source">{text}</code>'


@lru_cache(maxsize=2048)
def _math_html(source: str, *, display: bool, markup: str = "$", block: bool = False) -> str:
    """HTML for one formula: LaTeX ``source`` (without its delimiters) as MathML, the
    source kept in ``<annotation encoding="application/x-tex">`` (MathML Core,
    https://www.w3.org/TR/mathml-core/#semantics-and-presentation).

    ``display`` sets the math in display style (``$$``, ``\\[``); ``block`` (a formula on
    lines of its own) wraps it in ``<div class="math-display">``; ``markup`` is the opening
    delimiter the writer used. Never raises: a formula latex2mathml cannot convert, or one
    longer than ``_MAX_MATH_CHARS``, comes back as its source with its delimiters in
    ``<code class="math-source">`` (``<pre>`` for a block). Not sanitized: the caller runs
    the whole page fragment through nh3."""
    tree: Element | None = None
    if source.strip() and len(source) <= _MAX_MATH_CHARS:
        try:
            tree = convert_to_element(source, display="block" if display else "inline")
        except Exception:  # latex2mathml raises many kinds for bad input, and RecursionError
            tree = None
    if tree is None:
        return _math_source(source, markup, block)
    mode = ' display="block"' if display else ""
    rows = "".join(_element_html(child, display) for child in tree)
    mathml = (
        f"<math{mode}><semantics><mrow>{rows}</mrow>"
        f'<annotation encoding="application/x-tex">{html.escape(source, quote=False)}'
        "</annotation></semantics></math>"
    )
    return f'<div class="math-display">{mathml}</div>' if block else mathml


def _next_at(state: StateInline | StateBlock, pattern: re.Pattern[str], start: int) -> int:
    """Where ``pattern`` next matches ``state.src`` from ``start`` (-1: nowhere). The
    answer is remembered on the parser state, so many openers without a closer in one long
    text do not search the rest of it again each time (linear, not quadratic)."""
    found: dict[str, tuple[int, int]] = state.__dict__.setdefault("_math_next", {})
    searched_from, at = found.get(pattern.pattern, (-1, -1))
    if searched_from == -1 or start < searched_from or (at != -1 and at < start):
        match = pattern.search(state.src, start)
        at = match.start() if match else -1
        found[pattern.pattern] = (start, at)
    return at


def _math_bracket_inline(state: StateInline, silent: bool) -> bool:
    """``\\(...\\)`` (inline) and ``\\[...\\]`` (display) inside a paragraph. Runs before
    markdown's backslash escapes, which would otherwise eat the delimiters."""
    pos = state.pos
    opener = state.src[pos : pos + 2]
    if opener not in ("\\(", "\\["):
        return False
    end = _next_at(state, _CLOSER_PATTERNS[opener], pos + 2)
    # A link's text is parsed with a nearer posMax: the closer must lie before it.
    if end == -1 or end + 2 > state.posMax or not state.src[pos + 2 : end].strip():
        return False
    if not silent:
        token = state.push("math_inline" if opener == "\\(" else "math_inline_double", "math", 0)
        token.content = state.src[pos + 2 : end]
        token.markup = opener
    state.pos = end + 2
    return True


def _math_display_block(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """A formula on lines of its own: ``$$`` or ``\\[`` starting a line, the closer ending
    one (the same line or one of the next ``_MAX_MATH_LINES`` in this block, no blank line
    between). Unlike dollarmath's block rule it may interrupt a paragraph, as models write
    ``The area is\\n\\[\\nA = \\pi r^2\\n\\]``."""
    if state.is_code_block(start):
        return False
    pos = state.bMarks[start] + state.tShift[start]
    opener = state.src[pos : pos + 2]
    if opener not in ("$$", "\\["):
        return False
    at = _next_at(state, _CLOSER_PATTERNS[opener], pos + 2)
    if at == -1:
        return False
    last = bisect.bisect_right(state.eMarks, at, start, end)  # the line holding the closer
    if (
        last >= end
        or last - start > _MAX_MATH_LINES
        or state.src[at + 2 : state.eMarks[last]].strip()  # text after it: a paragraph
        or -1 < _next_at(state, _BLANK_LINE, pos) < at
    ):
        return False
    lines = [state.src[pos + 2 : state.eMarks[start]]]
    lines += [
        state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]
        for line in range(start + 1, last + 1)
    ]
    lines[-1] = lines[-1][: len(lines[-1]) - (state.eMarks[last] - at)]
    content = "\n".join(lines)
    if not content.strip():
        return False
    if not silent:
        token = state.push("math_block_display", "math", 0)
        token.block = True
        token.content = content
        token.markup = opener
        token.map = [start, last + 1]
    state.line = last + 1
    return True


# --- What cannot be rendered is shown as text --------------------------------------------


def _too_deep(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """Below ``_BLOCK_NESTING_LIMIT`` the rest of the current nested block (the lines that
    belong to it) is shown as it was written, in a plain ``<pre>``."""
    if state.level < _BLOCK_NESTING_LIMIT:
        return False
    last = line = start
    while line < end:
        if not state.isEmpty(line):
            if state.sCount[line] < state.blkIndent:
                break
            last = line + 1
        line += 1
    if not silent:
        token = state.push("code_block", "code", 0)
        token.content = state.getLines(start, last, state.blkIndent, True)
        token.map = [start, last]
    state.line = last
    return True


def _render_image(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image as a link to it, its alt text as the link text: the page loads no remote
    images, and the sanitizer would drop ``<img>`` with its alt text. Inside a link, only
    the alt text (links do not nest)."""
    token = tokens[idx]
    alt = renderer.renderInline(token.children or [], options, env)
    if token.meta.get("in_link"):
        return alt
    src = html.escape(str(token.attrGet("src") or ""))
    title = token.attrGet("title")
    title_attr = f' title="{html.escape(str(title))}"' if title else ""
    return f'<a href="{src}"{title_attr}>{alt or src}</a>'


def _mark_images_in_links(state: StateCore) -> None:
    """Mark the images that will be rendered inside a link (a link's text, or the alt text
    of another image, which becomes a link too)."""

    def mark(children: Sequence[Token], depth: int) -> None:
        for token in children:
            depth += (token.type == "link_open") - (token.type == "link_close")
            if token.type == "image":
                token.meta["in_link"] = depth > 0
                mark(token.children or [], depth + 1)

    for token in state.tokens:
        if token.type == "inline":
            mark(token.children or [], 0)


def _render_math(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    block = token.type == "math_block_display"
    display = block or token.type == "math_inline_double"
    return _math_html(token.content, display=display, markup=token.markup, block=block)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # "html": False escapes raw HTML in the source instead of passing it through.
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "highlight": _highlight, "maxNesting": _MAX_NESTING},
    )
    md.enable(["table", "strikethrough"])
    md.block.ruler.before("table", "too_deep", _too_deep)
    # ``$``/``$$`` in a paragraph; not ``$ 5 and $`` or ``$5-$10`` (Pandoc's rule).
    dollarmath_plugin(
        md,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    md.block.ruler.disable("math_block")  # replaced by the rule below for both delimiters
    md.block.ruler.before(
        "fence",
        "math_block_display",
        _math_display_block,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    md.inline.ruler.before("escape", "math_bracket", _math_bracket_inline)
    for kind in ("math_inline", "math_inline_double", "math_block_display"):
        md.add_render_rule(kind, _render_math)
    md.core.ruler.push("images_in_links", _mark_images_in_links)
    md.add_render_rule("image", _render_image)
    return md


def render_markdown(text: str) -> str:
    """Sanitized HTML fragment for a message: ``text`` read as CommonMark
    (https://spec.commonmark.org/0.31.2/) with GFM tables and strikethrough, plus LaTeX
    math rendered as MathML Core (https://www.w3.org/TR/mathml-core/). Safe to insert into
    the page as is. Never raises, whatever the text. No limit of the renderer drops text:
    what it cannot render is shown as written (see the module docstring); only Markdown's
    own syntax disappears (markers, link addresses, reference definitions)."""
    if not text:
        return ""
    raw = _parser().render(storable_text(text))
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
