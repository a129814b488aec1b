"""The Russian translation is complete and committed (issue 13).

* Every entry of every committed Russian catalog (``<app>/locale/ru`` and the project's
  ``locale/ru``) is translated, not fuzzy, keeps the placeholders of its English text and
  has Russian plural forms.
* The catalogs are complete: ``makemessages`` run on a copy of the source finds no string
  marked for translation that no catalog translates.
* The compiled ``.mo`` files say what their ``.po`` files say.
* No template shows text a person reads without marking it for translation.
* A chat error sentence reaches a Russian browser in Russian.

The catalogs follow GNU gettext's PO format
(https://www.gnu.org/software/gettext/manual/html_node/PO-Files.html), read with polib.
"""

from __future__ import annotations

import gettext
import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.template.base import Lexer, TokenType

from conftest import missing_dependency

BASE_DIR = Path(settings.BASE_DIR)
# Directories that are not the project's source.
SKIPPED_DIRS = {
    ".venv",
    "venv",
    ".git",
    "node_modules",
    "staticfiles",
    "static",
    "media",
    "docs",
    "bench",
    "tests",
    "migrations",
    "__pycache__",
}
# Russian plural rules: gettext's three forms (one, few, many), or Django's own catalogs'
# four (the fourth for fractions).
RUSSIAN_PLURAL_FORMS = {
    3: "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);",
    4: "nplurals=4; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<12 || n%100>14) ? 1 : n%10==0 || (n%10>=5 && n%10<=9) || "
    "(n%100>=11 && n%100<=14)? 2 : 3);",
}
# %(name)s, %d, %% and {name} (str.format / format_lazy).
_PLACEHOLDER = re.compile(
    r"%\([A-Za-z_][A-Za-z0-9_]*\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|%[sdif%]|\{\w*\}"
)


def _walk(root: Path) -> Iterator[Path]:
    """Every file under ``root`` outside ``SKIPPED_DIRS`` and hidden directories."""
    for path in sorted(root.iterdir()):
        if path.is_dir():
            if path.name in SKIPPED_DIRS or path.name.startswith("."):
                continue
            yield from _walk(path)
        else:
            yield path


def russian_catalogs() -> list[Path]:
    """Every committed Russian ``django.po`` of the project (apps' and the project's)."""
    return sorted(
        path
        for path in _walk(BASE_DIR)
        if path.name == "django.po" and path.parent.parts[-2:] == ("ru", "LC_MESSAGES")
    )


def _key(entry: polib.POEntry) -> tuple[str, str, str]:
    return (entry.msgctxt or "", entry.msgid, entry.msgid_plural or "")


def _where(entry: polib.POEntry) -> str:
    return ", ".join(f"{path}:{line}" for path, line in entry.occurrences[:3]) or "?"


def _translations(entry: polib.POEntry, forms: int = 3) -> list[str]:
    """The entry's translation, or each of its ``forms`` plural forms ("" when missing)."""
    if entry.msgid_plural:
        return [entry.msgstr_plural.get(i, "") for i in range(forms)]
    return [entry.msgstr]


def _plural_count(catalog: polib.POFile) -> int:
    """The catalog's number of plural forms, checked to be one of Russian's rules."""
    plural_forms = " ".join(catalog.metadata.get("Plural-Forms", "").split())
    found = [n for n, rule in RUSSIAN_PLURAL_FORMS.items() if plural_forms == rule]
    assert found, f"not a Russian plural rule: {plural_forms!r}"
    return found[0]


def test_there_are_russian_catalogs_for_the_apps() -> None:
    found = {path.relative_to(BASE_DIR).parts[0] for path in russian_catalogs()}
    assert {"chat", "usage", "api", "access", "siteconfig"} <= found


@pytest.mark.parametrize("po_path", russian_catalogs(), ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_every_entry_of_a_catalog_is_translated(po_path: Path) -> None:
    """No entry is untranslated or fuzzy, each translation keeps the placeholders of
    its English text, and plural entries have every form of the catalog's Russian
    plural rule."""
    catalog = polib.pofile(str(po_path))
    assert catalog.metadata.get("Language") == "ru"
    forms = _plural_count(catalog)
    problems = []
    for entry in catalog:
        if entry.obsolete:
            continue
        where = f"{entry.msgid!r} ({_where(entry)})"
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {where}")
        texts = _translations(entry, forms)
        if not all(text.strip() for text in texts):
            problems.append(f"untranslated: {where}")
            continue
        expected = sorted(set(_PLACEHOLDER.findall(entry.msgid)))
        if entry.msgid_plural:
            expected = sorted(set(expected) | set(_PLACEHOLDER.findall(entry.msgid_plural)))
        for text in texts:
            found = sorted(set(_PLACEHOLDER.findall(text)))
            # A plural form may leave out the number ("одну минуту"), nothing else.
            missing = set(expected) - set(found)
            if set(found) - set(expected) or (missing and not entry.msgid_plural):
                problems.append(f"placeholders {found} instead of {expected}: {where}")
    assert not problems, "\n".join(problems)


def _gettext_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing_dependency(f"{name} (GNU gettext) is not installed: apt-get install gettext")
    return path


@pytest.mark.parametrize("po_path", russian_catalogs(), ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_the_compiled_catalog_is_up_to_date(po_path: Path, tmp_path: Path) -> None:
    """The committed ``.mo`` holds what ``msgfmt`` makes of the ``.po`` today (the
    contents are compared, not the bytes), and msgfmt finds the placeholders right."""
    msgfmt = _gettext_tool("msgfmt")
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.is_file(), f"{mo_path} is missing: run manage.py compilemessages"
    fresh = tmp_path / "django.mo"
    result = subprocess.run(
        [msgfmt, "--check-format", "-o", str(fresh), str(po_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with fresh.open("rb") as f:
        expected = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    with mo_path.open("rb") as f:
        committed = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    expected.pop("", None)  # the header: its dates change without anything else
    committed.pop("", None)
    stale = sorted(str(k) for k in expected.keys() ^ committed.keys())
    changed = sorted(
        str(k) for k in expected.keys() & committed.keys() if expected[k] != committed[k]
    )
    assert not stale and not changed, (
        f"{mo_path} is out of date (run manage.py compilemessages): {(stale + changed)[:10]}"
    )


def _copy_source(destination: Path) -> None:
    """The project's Python files and templates, without locale directories."""
    for path in _walk(BASE_DIR):
        relative = path.relative_to(BASE_DIR)
        if "locale" in relative.parts:
            continue
        if path.suffix == ".py" or (
            "templates" in relative.parts and path.suffix in {".html", ".txt"}
        ):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def test_every_marked_string_has_a_russian_translation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``makemessages`` on a copy of the source (all into one catalog) finds nothing
    that the committed catalogs do not translate."""
    for tool in ("xgettext", "msguniq", "msgmerge"):
        _gettext_tool(tool)
    source = tmp_path / "source"
    _copy_source(source)
    extracted = tmp_path / "locale"
    monkeypatch.chdir(source)
    monkeypatch.setattr(settings, "LOCALE_PATHS", [str(extracted)])
    call_command("makemessages", locale=["ru"], verbosity=0)
    fresh = polib.pofile(str(extracted / "ru" / "LC_MESSAGES" / "django.po"))
    translated = set()
    for po_path in russian_catalogs():
        catalog = polib.pofile(str(po_path))
        forms = _plural_count(catalog)
        for entry in catalog:
            texts = _translations(entry, forms)
            if not entry.obsolete and "fuzzy" not in entry.flags and all(texts):
                translated.add(_key(entry))
    missing = [
        f"{entry.msgid!r} ({_where(entry)})" for entry in fresh if _key(entry) not in translated
    ]
    assert len(fresh) > 100  # the extraction ran
    assert not missing, (
        f"{len(missing)} marked strings have no Russian translation (run makemessages -l ru "
        "in the app, or at the project's root for templates, then translate):\n"
        + "\n".join(missing)
    )


# --- templates ---------------------------------------------------------------------------

# Text that needs no translation: the brand, units, symbols.
ALLOWED_TEXT = {"chat_ai", "Chat AI", "✦", "px"}
# Attributes whose value a person reads or hears.
READ_ATTRIBUTES = (
    "title",
    "aria-label",
    "aria-description",
    "aria-roledescription",
    "aria-valuetext",
    "placeholder",
    "alt",
    "label",
)
_BUTTON_TYPES = {"submit", "button", "reset"}
_MARK = "\x00"  # stands for a template tag or variable in a template's skeleton
_TAG = re.compile(r"<(/?)([A-Za-z][\w:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")
_ATTRIBUTE = re.compile(r"""([\w:.-]+)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_LETTER = re.compile(r"[^\W\d_]")
_ACRONYM = re.compile(r"[A-Z]{2,5}")
_CSS_CLASS = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)+")


def all_templates() -> list[Path]:
    roots = [BASE_DIR / "templates", *sorted(BASE_DIR.glob("*/templates"))]
    return sorted(
        path
        for root in roots
        if root.is_dir()
        for path in _walk(root)
        if path.suffix in {".html", ".txt"}
    )


def skeleton(source: str) -> str:
    """The template with every variable, tag and translated block replaced by
    ``_MARK`` and every comment left out: what remains is the template's own text."""
    parts = []
    skipping_until = None
    for token in Lexer(source).tokenize():
        if skipping_until:
            if token.token_type == TokenType.BLOCK and token.contents.split()[0] == skipping_until:
                skipping_until = None
            continue
        if token.token_type == TokenType.TEXT:
            parts.append(token.contents)
            continue
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents else ""
            if name in {"blocktranslate", "blocktrans"}:
                skipping_until = "end" + name
            elif name in {"comment", "verbatim"}:
                skipping_until = "end" + name
        if token.token_type != TokenType.COMMENT:
            parts.append(_MARK)
    return "".join(parts)


def _needs_translation(word: str) -> bool:
    """A word a person reads in their language: not a symbol or number, a name in
    ``ALLOWED_TEXT``, an acronym (PDF, TXT) or a CSS class (a ``{% block %}`` that fills
    a class attribute, such as ``auth-page``)."""
    return bool(
        _LETTER.search(word)
        and word not in ALLOWED_TEXT
        and not _ACRONYM.fullmatch(word)
        and not _CSS_CLASS.fullmatch(word)
    )


def _has_words(text: str) -> bool:
    text = html.unescape(text).replace(_MARK, " ")
    return text.strip() not in ALLOWED_TEXT and any(map(_needs_translation, text.split()))


def unmarked_text(source: str) -> list[str]:
    """Text and read attributes of a template that are not marked for translation."""
    text = skeleton(source)
    text = re.sub(r"<!--.*?-->|<![^>]*>", "", text, flags=re.S)
    text = re.sub(r"<(script|style)\b[^>]*>.*?</\1\s*>", "", text, flags=re.S | re.I)
    found = []
    for tag in _TAG.finditer(text):
        if tag.group(1):
            continue
        attributes = {
            match.group(1).lower(): next(g for g in match.groups()[2:] if g is not None)
            for match in _ATTRIBUTE.finditer(tag.group(3))
        }
        read = [name for name in READ_ATTRIBUTES if name in attributes]
        if tag.group(2).lower() == "input" and attributes.get("type", "").lower() in _BUTTON_TYPES:
            read.append("value")
        found += [f'{name}="{attributes[name]}"' for name in read if _has_words(attributes[name])]
    for piece in _TAG.sub(_MARK, text).split(_MARK):
        if _has_words(piece):
            found.append(" ".join(piece.split()))
    return found


@pytest.mark.parametrize(
    "source, expected",
    [
        ("<p>Hello</p>", ["Hello"]),
        ("<p>{% translate 'Hello' %}</p>", []),
        ("{% blocktranslate %}Hello {{ name }}{% endblocktranslate %}", []),
        ('<button title="Close">{% translate "x" %}</button>', ['title="Close"']),
        ('<input type="submit" value="Send">', ['value="Send"']),
        ('<input type="hidden" value="send">', []),
        ("<img alt=\"{% translate 'Logo' %}\"> {{ name }} · ✦", []),
        ("{% comment %}Only for us{% endcomment %}{# a note #}<!-- markup -->", []),
        ("<style>p { color: red }</style><script>let a = 1</script>", []),
        ("<p>&nbsp;&mdash; 2 &times; 3</p>", []),
        ("<!doctype html>{% block body_class %}auth-page{% endblock %}<b>PDF</b>", []),
        ("<p>Sign in</p><p>{{ user }} left</p>", ["Sign in", "left"]),
    ],
)
def test_the_template_check_finds_unmarked_text(source: str, expected: list[str]) -> None:
    assert unmarked_text(source) == expected


@pytest.mark.parametrize("template", all_templates(), ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_templates_mark_every_text_a_person_reads(template: Path) -> None:
    found = unmarked_text(template.read_text(encoding="utf-8"))
    assert not found, f"{template.relative_to(BASE_DIR)}: not marked for translation: {found}"


# --- a rendered check ----------------------------------------------------------------------


@pytest.fixture
def fake_provider() -> Iterator[type]:
    """The scripted FakeProvider of the chat's tests, registered as "fake"."""
    from chat.providers import PROVIDER_REGISTRY
    from chat.tests.fakes.fake_provider import FakeProvider

    FakeProvider.scripts = []
    FakeProvider.calls = []
    FakeProvider.cancelled = []
    PROVIDER_REGISTRY["fake"] = FakeProvider
    try:
        yield FakeProvider
    finally:
        PROVIDER_REGISTRY.pop("fake", None)


@pytest.mark.django_db(transaction=True)
async def test_a_failed_reply_speaks_russian_to_a_russian_browser(fake_provider: type) -> None:
    from django.contrib.auth.models import User
    from django.test import AsyncClient
    from django.urls import reverse
    from django.utils import translation

    from chat.models import Conversation
    from chat.providers import RateLimitedError
    from chat.tests.fakes.fake_provider import Script
    from chat.tests.test_views import sse_events, stream_body

    alice = await User.objects.acreate_user("alice", password="pw-alice-123")
    conversation = await Conversation.objects.acreate(
        owner=alice, provider="fake", model="fake-small"
    )
    fake_provider.scripts.append(Script(chunks=[], error=RateLimitedError(retry_after=22)))
    client = AsyncClient()
    await client.aforce_login(alice)
    russian = {"Accept-Language": "ru"}
    try:
        response = await client.post(
            reverse("chat:reply", args=[conversation.pk]), {"content": "x"}, headers=russian
        )
        name, data = sse_events(await stream_body(response))[-1]
        page = await client.get(
            reverse("chat:conversation", args=[conversation.pk]), headers=russian
        )
    finally:
        translation.deactivate()  # the client ran the view in this test's context
    assert name == "error"
    # The number of seconds picks the Russian plural form ("22 секунды", not "секунд").
    assert data["message"] == (
        "Fake получает слишком много запросов. Попробуйте снова через 22 секунды."
    )
    assert page["Content-Language"] == "ru"
    assert "Попробуйте снова через 22 секунды." in page.content.decode()


def test_dates_and_numbers_take_the_russian_format() -> None:
    """With Russian active, the settings leave Django's Russian formats in charge."""
    from datetime import date

    from django.template import Context, Template
    from django.utils import translation

    template = Template("{{ day }} · {{ day|date:'SHORT_DATE_FORMAT' }} · {{ number }}")
    with translation.override("ru"):
        text = template.render(Context({"day": date(2026, 3, 8), "number": 1234.5}))
    assert text == "8 марта 2026 г. · 08.03.2026 · 1234,5"
