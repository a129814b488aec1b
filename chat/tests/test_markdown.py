"""Server-side Markdown: useful formatting survives, hostile markup does not, no text is
ever lost, and LaTeX becomes MathML with its source kept."""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser

import pytest

from chat.markdown import pygments_css, render_markdown
from chat.tests.xss_corpus import ALL_IN_ONE, PAYLOADS

SAFE_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "kbd", "blockquote", "ul",
    "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr",
    "th", "td", "span", "div",
}  # fmt: skip
# MathML presentation elements: layout only, none of them loads, links or runs anything.
SAFE_MATHML_TAGS = {
    "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace",
    "msub", "msup", "msubsup", "munder", "mover", "munderover", "mfrac", "msqrt", "mroot",
    "mtable", "mtr", "mtd", "mstyle", "menclose", "mpadded", "mphantom", "merror",
    "mmultiscripts", "mprescripts", "none",
}  # fmt: skip
# Layout attributes of those elements; anything else on them (href, xlink:href, style,
# class, event handlers, src) is a finding.
SAFE_MATHML_ATTRIBUTES = {
    "display", "encoding", "mathvariant", "stretchy", "fence", "separator", "accent",
    "accentunder", "movablelimits", "largeop", "symmetric", "displaystyle", "form",
    "columnalign", "rowalign", "columnlines", "rowlines", "frame", "notation", "width",
    "height", "depth", "lspace", "rspace", "voffset", "minsize", "maxsize", "mathsize",
    "linethickness", "rowspacing", "columnspacing", "scriptlevel", "mathcolor",
    "mathbackground",
}  # fmt: skip


class TagCollector(HTMLParser):
    """The real elements and attributes of an HTML string (escaped text is not a tag)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS | SAFE_MATHML_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if tag in SAFE_MATHML_TAGS and name not in SAFE_MATHML_ATTRIBUTES:
                self.problems.append(f"{tag}[{name}]")
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


class TextCollector(HTMLParser):
    """The text of an HTML string, each text node apart. With ``with_source`` the LaTeX
    kept in math annotations counts too (it is what Copy gives for a formula)."""

    def __init__(self, *, with_source: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.with_source = with_source
        self.in_annotation = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.in_annotation = self.in_annotation or tag == "annotation"

    def handle_endtag(self, tag: str) -> None:
        if tag == "annotation":
            self.in_annotation = False

    def handle_data(self, data: str) -> None:
        if self.with_source or not self.in_annotation:
            self.parts.append(data)


def text_of(html: str, *, with_source: bool = True, separator: str = " ") -> str:
    collector = TextCollector(with_source=with_source)
    collector.feed(html)
    collector.close()
    return separator.join(collector.parts)


def visible_text(html: str) -> str:
    """What a reader sees: the text without the LaTeX source kept for copying."""
    return text_of(html, with_source=False)


MARKER = re.compile(r"\bw\d+\b")


def missing_markers(source: str) -> list[str]:
    """The marker words (w0, w1...) of ``source`` absent from its rendered text."""
    rendered = set(MARKER.findall(text_of(render_markdown(source))))
    return [word for word in MARKER.findall(source) if word not in rendered]


def nested_list(depth: int, indent: int = 2, marker: str = "-") -> str:
    """The issue's input: ``- dir0``, then each item one level deeper, then a paragraph."""
    lines = [" " * (indent * level) + f"{marker} dir{level}" for level in range(depth)]
    return "\n".join(lines) + "\n\nclosing paragraph"


# --- Formatting and highlighting ---------------------------------------------------------


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


def test_empty_text_renders_nothing() -> None:
    assert render_markdown("") == ""


def test_highlight_css_has_light_and_dark() -> None:
    css = pygments_css()
    assert ".md .tok-k" in css and "prefers-color-scheme: dark" in css


# --- Hostile markup ----------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_markup_is_neutralised(payload: str) -> None:
    html = render_markdown(payload)
    assert problems_in(html) == [], html


@pytest.mark.parametrize("delimiters", ["$", "$$", r"\(", r"\[", r"$\text{"])
def test_hostile_markup_inside_math_is_neutralised(delimiters: str) -> None:
    closer = {"$": "$", "$$": "$$", r"\(": r"\)", r"\[": r"\]", r"$\text{": "}$"}[delimiters]
    for payload in PAYLOADS:
        html = render_markdown(f"{delimiters}{payload}{closer}")
        assert problems_in(html) == [], (payload, html)


def test_all_payloads_together_are_neutralised() -> None:
    assert problems_in(render_markdown(ALL_IN_ONE)) == []


def test_markup_written_inside_a_formula_is_shown_as_text() -> None:
    html = render_markdown(r"$\text{<b>bold</b> & more}$")
    assert "<b>" not in html
    assert "<b>bold</b> & more" in visible_text(html).replace("\xa0", " ")


def test_no_math_length_can_cover_the_page() -> None:
    html = render_markdown(r"$\hspace{-500em}x\rule{1000em}{1000em}\hspace{1em}y$")
    lengths = re.findall(r'(?:width|height|depth|lspace|voffset)="([^"]*)"', html)
    assert lengths == ["1em"]  # ordinary spacing is kept, the huge ones are not


def test_the_checker_sees_real_tags() -> None:
    assert problems_in('<img src=x onerror="a()">') == ["<img>", "img[onerror]"]
    assert problems_in('<a href="javascript:a()">x</a>') == ["a[href=javascript:a()]"]
    assert problems_in("&lt;img onerror=a()&gt;") == []
    assert problems_in('<math><mi xlink:href="javascript:a()">x</mi></math>') == ["mi[xlink:href]"]
    assert problems_in('<math><mrow style="color:red">x</mrow></math>') == [
        "mrow[style]",
        "mrow[style]",
    ]


# --- No text is lost ---------------------------------------------------------------------


def test_a_list_nested_ten_levels_keeps_every_level_and_the_text_after_it() -> None:
    html = render_markdown(nested_list(10))
    assert html.count("<ul>") == 10  # rendered as real lists, not as text
    text = text_of(html)
    assert all(f"dir{level}" in text for level in range(10))
    assert "<p>closing paragraph</p>" in html


@pytest.mark.parametrize(
    "source",
    [
        nested_list(45),
        nested_list(45, indent=3, marker="1."),
        nested_list(45, indent=2, marker="*"),
        "".join(">" * level + f" quote{level}\n" for level in range(1, 120)) + "\nclosing",
        ">" * 200 + " deepest\n\nclosing",
        "\n".join(("- " if level % 2 else "> ") * level + f"mix{level}" for level in range(90))
        + "\n\nclosing",
    ],
    ids=["bullets", "ordered", "stars", "blockquotes", "one-line-blockquote", "mixed"],
)
def test_blocks_nested_beyond_the_limit_are_shown_as_text(source: str) -> None:
    html = render_markdown(source)
    text = text_of(html)
    nested, closing = source.rsplit("\n\n", 1)
    words = re.findall(r"[a-z]+\d*", nested)
    assert [word for word in words if word not in text] == []
    assert "<pre><code>" in html  # the deepest part, as written
    assert text.rindex(closing) > max(text.index(word) for word in words)


@pytest.mark.parametrize(
    "source",
    [
        "*" * 400 + "emph" + "*" * 400 + " after",
        "_" * 300 + "emph" + "_" * 300 + " after",
        "*a " * 300 + "emph" + " b*" * 300 + " after",
        "[" * 300 + "emph" + "](https://example.com)" * 300 + " after",
        "![" * 150 + "emph" + "](https://example.com/i.png)" * 150 + " after",
        "before " + "~~" * 200 + "emph" + "~~" * 200 + " after",
    ],
    ids=["stars", "underscores", "interleaved", "links", "images", "strikethrough"],
)
def test_deep_inline_nesting_keeps_the_text(source: str) -> None:
    text = text_of(render_markdown(source))
    assert "emph" in text and "after" in text


def test_an_image_shows_its_alt_text_as_a_link_to_it() -> None:
    html = render_markdown('![a diagram of the system](https://example.com/d.png "Figure")')
    assert (
        '<a href="https://example.com/d.png" title="Figure" rel="noopener noreferrer nofollow">'
        "a diagram of the system</a>"
    ) in html


def test_an_image_inside_a_link_shows_its_alt_text_in_that_link() -> None:
    html = render_markdown("[![badge text](https://example.com/b.svg)](https://example.com/)")
    assert html.count("<a ") == 1
    assert 'href="https://example.com/"' in html and "badge text" in html


def test_an_image_with_a_refused_address_keeps_its_alt_text() -> None:
    html = render_markdown("![chart](data:image/png;base64,AAAA)")
    assert "chart" in text_of(html) and "data:" not in html


def test_nul_is_removed_and_the_text_around_it_kept() -> None:
    assert render_markdown("before\x00after") == "<p>beforeafter</p>\n"


@pytest.mark.parametrize(
    "source",
    [
        "w1 \x00 w2 `w3 \x00` $w4\x00$ w5\x00",
        "w1 \ud800 w2 \udfff w3",  # lone surrogates (a JSON "\ud800" decodes to one)
        "```\nw1\x00\ud83d\nw2\n```",
        "".join(chr(code) for code in range(1, 32)) + " w1 \x7f\x85\u2028\u2029 w2",
        "w1 \ufffe\uffff\U0001fffe w2 \u200b\u200e\u202e w3",
    ],
    ids=["nul", "surrogates", "in-code", "controls", "noncharacters"],
)
def test_characters_a_database_refuses_neither_crash_nor_lose_text(source: str) -> None:
    assert missing_markers(source) == []


def _awkward_line(rng: random.Random, words: list[str]) -> str:
    decorations = [
        "{}", "*{}*", "**{}**", "_{}_", "~~{}~~", "`{}`", "${}$", "\\({}\\)", "$${}$$",
        "\\[{}\\]", "[{}](https://example.com/)", "![{}](https://example.com/i.png)",
        "<{}>", "<b>{}</b>", "*{}", "{}*", "[{}", "${}", "{}$", "\\*{}", "&{};",
        "<script>{}</script>", "$\\frac{{{}}}{{$", "\\(\\text{{{}}}\\)", "{}\x00",
    ]  # fmt: skip
    return " ".join(rng.choice(decorations).format(word) for word in words)


def _awkward_document(rng: random.Random, counter: list[int]) -> str:
    """A random document of lines nested up to 70 levels in lists and quotes, each line a
    random block start (heading, table row, fence, display math...) with decorated words."""
    lines, depth = [], 0
    for _ in range(rng.randint(5, 60)):
        depth = max(0, min(70, depth + rng.choice([-3, -1, 0, 1, 1, 2, 5])))
        prefix = "".join(rng.choice(["> ", "- ", "1. ", "  - ", ">"]) for _ in range(depth))
        words = []
        for _ in range(rng.randint(1, 4)):
            words.append(f"w{counter[0]}")
            counter[0] += 1
        start = rng.choice(["", "", "# ", "| ", "```\n", "$$\n", "\\[\n", "    ", "1) "])
        lines.append(prefix + start + _awkward_line(rng, words))
        if rng.random() < 0.2:
            lines.append("")
    return "\n".join(lines)


AWKWARD_CORPUS = [
    nested_list(60),
    "w1 " * 20000 + "w2",
    "\n".join(f"- w{item}" for item in range(3000)),
    "```python\nw1 = 1\n" + "w2\n" * 1000,  # a fence never closed
    "$" + "w1+" * 3000 + "w2$ and w3",  # a formula too long to convert
    "\\[" + "{" * 5000 + "w1" + "}" * 5000 + "\\] w2",  # nested past the converter's limit
    "$$\nw1\n\nw2\n$$",  # a blank line inside display math
    "\\(w1 \\( w2 \\[ w3 $ w4 $$ w5",
    "$w1$$w2$ $$w3$w4$$ \\(w5\\)\\(w6\\) \\[w7\\]\\[w8\\]",
] + [_awkward_document(random.Random(seed), [0]) for seed in range(40)]


def test_a_table_past_the_parsers_cell_limit_keeps_its_text() -> None:
    # markdown-it ends a table once it has filled in 65,536 missing cells; the rows after
    # that must still be shown (as paragraphs).
    header = "| " + " | ".join(f"w{column}" for column in range(260)) + " |"
    rows = "\n".join(f"| w{260 + row} |" for row in range(260))
    assert missing_markers(f"{header}\n|{'---|' * 260}\n{rows}") == []


@pytest.mark.parametrize(
    "source", AWKWARD_CORPUS, ids=[f"awkward{index}" for index in range(len(AWKWARD_CORPUS))]
)
def test_every_word_of_an_awkward_input_is_in_the_output(source: str) -> None:
    assert missing_markers(source) == []


# --- Mathematics -------------------------------------------------------------------------


def math_elements(html: str) -> list[str]:
    return re.findall(r"<math[ >]", html)


def annotations(html: str) -> list[str]:
    found = re.findall(r'<annotation encoding="application/x-tex">(.*?)</annotation>', html, re.S)
    return [text_of(item) for item in found]


def test_paren_delimited_math_is_inline_mathml() -> None:
    html = render_markdown(r"The angle \(\theta\) is small.")
    assert "<p>The angle <math><semantics>" in html
    assert "<mi>θ</mi>" in html
    assert annotations(html) == [r"\theta"]
    assert "\\(" not in visible_text(html) and "(" not in visible_text(html)


def test_bracket_delimited_math_with_row_breaks_is_a_display_table() -> None:
    html = render_markdown("The system:\n\\[\na + b = 1 \\\\\na - b = 0\n\\]\nholds.")
    assert html.startswith("<p>The system:</p>")
    assert '<div class="math-display"><math display="block">' in html
    assert html.count("<mtr>") == 2  # one row per line: Chromium ignores linebreak
    assert annotations(html) == ["\na + b = 1 \\\\\na - b = 0\n"]
    assert html.endswith("<p>holds.</p>\n")


def test_single_dollar_math_keeps_its_stars_as_operators() -> None:
    html = render_markdown("$a*b*c$")
    assert "<em>" not in html
    assert html.count("<mo>*</mo>") == 2
    assert annotations(html) == ["a*b*c"]


def test_double_dollar_math_is_displayed() -> None:
    html = render_markdown(r"$$x_1*y_1 = \frac{1}{2}$$")
    assert '<div class="math-display"><math display="block">' in html
    assert "<msub><mi>x</mi><mn>1</mn></msub>" in html and "<mfrac>" in html
    assert "<em>" not in html
    assert annotations(html) == [r"x_1*y_1 = \frac{1}{2}"]


@pytest.mark.parametrize(
    ("source", "display"),
    [
        (r"see $\alpha^2$ here", False),
        (r"see \(\alpha^2\) here", False),
        (r"see $$\alpha^2$$ here", True),
        (r"see \[\alpha^2\] here", True),
    ],
)
def test_each_delimiter_style_inside_a_sentence(source: str, display: bool) -> None:
    html = render_markdown(source)
    assert html.startswith("<p>see <math") and html.endswith(" here</p>\n")
    assert ('<math display="block">' in html) is display
    assert "<msup><mi>α</mi><mn>2</mn></msup>" in html
    assert annotations(html) == [r"\alpha^2"]


@pytest.mark.parametrize("delimiters", [("$$", "$$"), ("\\[", "\\]")])
def test_display_math_on_its_own_lines_inside_lists_and_quotes(
    delimiters: tuple[str, str],
) -> None:
    opener, closer = delimiters
    source = f"- item\n  {opener}\n  x^2 + 1\n  {closer}\n- next\n\n> {opener}\n> y\n> {closer}"
    html = render_markdown(source)
    assert html.count('<div class="math-display">') == 2
    assert "<li>next</li>" in html and "<blockquote>" in html


def test_aligned_environment_lines_up_its_columns() -> None:
    html = render_markdown("$$\n\\begin{aligned} a &= b + c \\\\ d &= e \\end{aligned}\n$$")
    assert html.count("<mtr>") == 2
    assert html.count('<mtd columnalign="right">') == 2
    assert html.count('<mtd columnalign="left">') == 2
    assert "&" not in visible_text(html)  # the column marks are not shown as text


@pytest.mark.parametrize(
    "prose",
    [
        "It costs $5 and $10.",
        "Between $5-$10 per month.",
        "I have $3, you have $4, together $7.",
        "Save $ 20 today $ now",
        "Price: 5$ or 6$",
        "A lone $ sign",
    ],
)
def test_dollars_in_prose_stay_text(prose: str) -> None:
    html = render_markdown(prose)
    assert math_elements(html) == []
    assert visible_text(html).strip() == prose


def test_escaped_delimiters_stay_text() -> None:
    html = render_markdown(r"\$x\$ and \\(y\\)")
    assert math_elements(html) == []
    assert visible_text(html).strip() == r"$x$ and \(y\)"


def test_code_keeps_its_backslashes_and_dollars() -> None:
    html = render_markdown(
        "Run `echo $HOME \\(x\\) $a*b$ \\[y\\]` or:\n\n```sh\necho $$ $PATH\n\\[z\\]\n$$\n```"
    )
    assert math_elements(html) == []
    assert "<code>echo $HOME \\(x\\) $a*b$ \\[y\\]</code>" in html
    assert "echo $$ $PATH\n\\[z\\]\n$$" in text_of(html, separator="")


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (r"see \(\frac{1}{\) here", r"\(\frac{1}{\)"),
        (r"see $\left( x$ here", r"$\left( x$"),
        (r"see \[\sqrt{\] here", r"\[\sqrt{\]"),
        ("$$\n\\frac{a}{\n$$", "$$\n\\frac{a}{\n$$"),
        ("$" + "x+" * 2100 + "y$", "$" + "x+" * 2100 + "y$"),  # too long to convert
    ],
    ids=["paren", "dollar", "bracket", "block", "too-long"],
)
def test_math_that_cannot_be_converted_is_shown_as_its_source(source: str, shown: str) -> None:
    html = render_markdown(source)
    assert math_elements(html) == []
    assert 'class="math-source"' in html
    assert shown in text_of(html)


def test_the_latex_source_of_every_formula_is_kept_for_copying() -> None:
    sources = [r"\sum_{i=1}^{n} i < \infty", r"a \& b", r"\text{x > y}", r"\{1, 2\}"]
    html = render_markdown(" and ".join(f"\\({source}\\)" for source in sources))
    assert annotations(html) == sources
