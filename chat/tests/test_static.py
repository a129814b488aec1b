"""Static files that are generated from code stay in step with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from whitenoise.media_types import MediaTypes

from chat.markdown import pygments_css

STATIC = Path(settings.BASE_DIR) / "static" / "chat"


def test_committed_pygments_css_matches_the_highlighter_output() -> None:
    committed = (STATIC / "pygments.css").read_text(encoding="utf-8")
    assert committed == pygments_css(), (
        "static/chat/pygments.css is out of date; regenerate it with: "
        "python -c \"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='chat_ai.settings'; "
        "django.setup(); from chat.markdown import pygments_css; "
        "open('static/chat/pygments.css', 'w').write(pygments_css())\""
    )


# --- The page's ES modules and the libraries vendored for them --------------------------

JS = STATIC / "js"
VENDOR = STATIC / "vendor"
# `import x from "./a.js"`, `export {x} from "./a.js"`, `import "./a.js"`, `import("./a.js")`
_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}/[^"']+)["']""")
# The vendored files, each with the licence files that cover what it bundles.
VENDORED = {
    "markdown-it.min.mjs": (
        "markdown-it 15.",
        [
            "markdown-it.LICENSE",
            "entities.LICENSE",
            "linkify-it.LICENSE",
            "mdurl.LICENSE",
            "punycode.js.LICENSE",
            "uc.micro.LICENSE",
        ],
    ),
    "purify.es.mjs": ("DOMPurify 3.", ["dompurify.LICENSE", "dompurify.LICENSE-MPL"]),
}


def _entry() -> str:
    """The module base.html loads, e.g. "chat/js/main.js"."""
    base = (Path(settings.BASE_DIR) / "templates" / "base.html").read_text(encoding="utf-8")
    entry = re.search(r"""<script type="module" src="\{% static '([^']+)' %\}">""", base)
    assert entry, "base.html loads no module script"
    return entry[1]


def _modules() -> list[Path]:
    return sorted(JS.glob("*.js"))


def test_every_module_the_page_imports_exists() -> None:
    entry = _entry()
    missing = [entry] if not (STATIC.parent / entry).is_file() else []
    for module in _modules():
        for target in _IMPORT.findall(module.read_text(encoding="utf-8")):
            if not (module.parent / target).resolve().is_file():
                missing.append(f"{module.relative_to(STATIC)} imports {target}")
    assert missing == []


def test_the_entry_module_names_every_module_so_they_load_at_once() -> None:
    named = set(_IMPORT.findall((JS / "main.js").read_text(encoding="utf-8")))
    modules = {f"./{path.name}" for path in JS.glob("*.js")} - {"./main.js"}
    assert modules - named == set()


def test_vendored_libraries_are_the_expected_versions_with_their_licences() -> None:
    for name, (header, licences) in VENDORED.items():
        head = (VENDOR / name).read_text(encoding="utf-8")[:300]
        assert header in head, f"{name} is not {header}x"
        for licence in licences:
            assert (VENDOR / licence).stat().st_size > 500, f"{licence} is missing or empty"


def test_html_enters_the_page_only_where_it_is_sanitized() -> None:
    # The server's sanitized HTML (markdown-live.js, serverFragment; chat-page.js, the
    # earlier messages); DOMPurify's output is a DocumentFragment, never an HTML string.
    sinks = re.compile(
        r"\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write|"
        r"createContextualFragment|\beval\s*\(|new Function"
    )
    found = {
        (module.name, match[0])
        for module in _modules()
        for match in sinks.finditer(module.read_text(encoding="utf-8"))
    }
    assert found == {
        ("markdown-live.js", ".innerHTML ="),
        ("chat-page.js", "createContextualFragment"),
    }


def test_collectstatic_with_hashed_names_keeps_the_modules_loadable(tmp_path: Path) -> None:
    """A production site serves hashed copies: the page's entry module and everything
    it imports (by their plain names) are collected, with JavaScript MIME types."""
    with override_settings(
        STATIC_ROOT=tmp_path,
        STATICFILES_FINDERS=["django.contrib.staticfiles.finders.FileSystemFinder"],
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "chat_ai.storage.StaticFilesStorage"},
        },
    ):
        call_command("collectstatic", interactive=False, verbosity=0)
        manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    assert _entry() in manifest
    # The hashed entry imports the hashed modules: old and new ones never mix.
    hashed_entry = (tmp_path / manifest[_entry()]).read_text(encoding="utf-8")
    for target in _IMPORT.findall(hashed_entry):
        name = (tmp_path / manifest[_entry()]).parent.joinpath(target).resolve()
        assert name.is_file() and name.name in {Path(p).name for p in manifest.values()}, target
        assert name.name not in {Path(p).name for p in manifest}, f"{target} is not hashed"
    for module in _modules():
        for target in _IMPORT.findall(module.read_text(encoding="utf-8")):
            name = (module.parent / target).resolve().relative_to(STATIC.parent).as_posix()
            assert (tmp_path / name).is_file(), f"{name} is not collected"
    media_types = MediaTypes()
    for name in ("chat/js/main.js", "chat/vendor/purify.es.mjs", "chat/vendor/markdown-it.min.mjs"):
        assert media_types.get_type(name) == "text/javascript", name
