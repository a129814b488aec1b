"""The installable web app (chat/pwa_views.py, templates/chat/sw.js, templates/offline.html,
static/chat/icons/) and the keyboard shortcuts list of the chat page. What the browser does
with them (the worker installed, the offline page shown, the keys pressed) is in
chat/tests/browser/test_pwa.py and test_shortcuts.py."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import polib
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.templatetags.static import static
from django.test import Client
from PIL import Image

from chat.management.commands.pwa_icons import ICONS_DIR, PNG_ICONS, SVG_ICON, icon_png, icon_svg
from chat.pwa_views import service_worker_config

pytestmark = pytest.mark.django_db

CHAT_CSS = Path(settings.BASE_DIR) / "static" / "chat" / "chat.css"
_CONFIG = re.compile(r"^const CONFIG = (\{.*\});$", re.MULTILINE)
_STATIC_LINKS = re.compile(r'\b(?:href|src)="(/static/[^"]+)"')
# The strings of the offline page and of the shortcuts list, with a stand-in "Russian".
RUSSIAN = {
    "You are offline": "Нет связи",
    "Try again": "Попробовать снова",
    "The server cannot be reached, so this page cannot be shown. It opens by itself as "
    "soon as the connection is back.": "Сервер недоступен; страница откроется сама.",
    "Keyboard shortcuts": "Сочетания клавиш",
    "Stop the reply being written": "Остановить ответ",
    "No reply is being written.": "Ответ не пишется.",
}


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def russian(tmp_path: Path, settings: Any) -> Iterator[None]:
    """A Russian catalog with RUSSIAN's translations, the only one the site has."""
    catalog = polib.POFile()
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": "ru"}
    for msgid, msgstr in RUSSIAN.items():
        catalog.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
    directory = tmp_path / "locale" / "ru" / "LC_MESSAGES"
    directory.mkdir(parents=True)
    catalog.save_as_mofile(str(directory / "django.mo"))
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    yield


def worker_config(response: Any) -> dict[str, Any]:
    """The CONFIG the served worker script starts with."""
    match = _CONFIG.search(response.content.decode())
    assert match, "the worker script has no CONFIG line"
    return json.loads(match[1])


def css_variable(name: str) -> str:
    """The light theme's value of a custom property of chat.css (its first definition)."""
    match = re.search(rf"{re.escape(name)}:\s*([^;]+);", CHAT_CSS.read_text(encoding="utf-8"))
    assert match, name
    return match[1].strip()


def csp_directives(response: Any) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


# --- The manifest ----------------------------------------------------------------------


def test_manifest_has_what_browsers_need_to_install_the_app(client: Client) -> None:
    response = client.get("/manifest.webmanifest")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/manifest+json"
    manifest = json.loads(response.content)
    assert manifest["name"] == "Chat AI"
    assert manifest["short_name"] == "Chat AI"
    assert manifest["start_url"] == "/"
    assert manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert manifest["background_color"] == css_variable("--bg")
    assert manifest["theme_color"] == css_variable("--bg")
    kinds = {(icon["type"], icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {
        ("image/png", "192x192", "any"),
        ("image/png", "512x512", "any"),
        ("image/png", "512x512", "maskable"),
        ("image/svg+xml", "any", "any"),
    } <= kinds


def test_manifest_icons_exist_with_the_sizes_they_claim(client: Client) -> None:
    manifest = json.loads(client.get("/manifest.webmanifest").content)

    for icon in manifest["icons"]:
        response = client.get(icon["src"])
        assert response.status_code == 200, icon["src"]
        body = b"".join(response.streaming_content)
        if icon["type"] == "image/svg+xml":
            root = ElementTree.fromstring(body)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            assert root.get("viewBox") == "0 0 512 512"
            continue
        image = Image.open(io.BytesIO(body))
        assert image.format == "PNG"
        assert f"{image.width}x{image.height}" == icon["sizes"], icon["src"]
        corner_alpha = image.convert("RGBA").getpixel((0, 0))[3]
        # A maskable icon is cut by the launcher: it fills its square to the edges.
        assert (corner_alpha == 255) == (icon["purpose"] == "maskable"), icon["src"]


def test_the_committed_icons_are_what_the_generator_draws() -> None:
    """The small ones (the 512-pixel ones take longer to draw, from the same code) and the
    SVG; the manifest test above checks every file's size."""
    small = {name: spec for name, spec in PNG_ICONS.items() if spec[0] < 512}
    stale = [
        name
        for name, (size, maskable) in small.items()
        if icon_png(size, maskable=maskable).tobytes()
        != Image.open(ICONS_DIR / name).convert("RGBA").tobytes()
    ]
    if (ICONS_DIR / SVG_ICON).read_text(encoding="utf-8") != icon_svg():
        stale.append(SVG_ICON)
    assert stale == [], f"{stale} are out of date: run `manage.py pwa_icons`"


# --- The service worker ----------------------------------------------------------------


def test_the_worker_is_served_from_the_root_as_javascript_browsers_always_recheck(
    client: Client,
) -> None:
    response = client.get("/sw.js")  # no sign-in: the worker holds no one's data

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert response["Cache-Control"] == "no-cache"
    assert response["Service-Worker-Allowed"] == "/"


def test_every_url_the_worker_precaches_is_served(client: Client) -> None:
    config = worker_config(client.get("/sw.js"))

    assert config["offline"] == "/offline/"
    for url in [config["offline"], *config["precache"]]:
        response = client.get(url)
        assert response.status_code == 200, url


def test_the_worker_precaches_only_the_offline_page_and_static_files(
    client: Client, alice: User
) -> None:
    """No conversation page, API answer or stream: those are never stored."""
    client.force_login(alice)
    config = worker_config(client.get("/sw.js"))

    others = [url for url in config["precache"] if not url.startswith(settings.STATIC_URL)]
    assert others == []


def test_the_worker_precaches_everything_the_offline_page_loads(client: Client) -> None:
    config = worker_config(client.get("/sw.js"))
    page = client.get(config["offline"]).content.decode()
    modules = sorted((Path(settings.BASE_DIR) / "static" / "chat" / "js").glob("*.js"))

    needed = set(_STATIC_LINKS.findall(page)) | {static(f"chat/js/{m.name}") for m in modules}
    assert needed - set(config["precache"]) == set()


def test_a_changed_static_file_gives_a_new_worker_version(tmp_path: Path, settings: Any) -> None:
    """Without hashed names (development) the worker would otherwise keep old copies."""
    stylesheet = tmp_path / "chat" / "extra.css"
    stylesheet.parent.mkdir()
    stylesheet.write_text("p { color: red; }")
    settings.STATICFILES_DIRS = [tmp_path]
    before = service_worker_config()
    assert static("chat/extra.css") in before["precache"]

    stylesheet.write_text("p { color: blue; }")
    os.utime(stylesheet, ns=(1, stylesheet.stat().st_mtime_ns + 1_000_000_000))

    assert service_worker_config()["version"] != before["version"]


def test_without_hashed_names_the_worker_asks_the_network_first(client: Client) -> None:
    """A file changed under the same name is never served stale from the cache."""
    assert worker_config(client.get("/sw.js"))["cacheFirst"] is False


def test_with_hashed_names_the_worker_precaches_them_and_answers_from_its_cache_first(
    tmp_path: Path, settings: Any
) -> None:
    """A production site: a hashed name's content never changes, so the cache is right."""
    settings.STATIC_ROOT = tmp_path
    settings.STATICFILES_FINDERS = ["django.contrib.staticfiles.finders.FileSystemFinder"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)

    config = service_worker_config()

    assert config["cacheFirst"] is True
    assert re.fullmatch(r"/static/chat/chat\.[0-9a-f]{12}\.css", static("chat/chat.css"))
    assert static("chat/chat.css") in config["precache"]
    assert "/static/chat/chat.css" not in config["precache"]


def test_the_page_policy_lets_the_worker_and_the_manifest_load(client: Client, alice: User) -> None:
    client.force_login(alice)
    page = csp_directives(client.get("/"))
    worker = csp_directives(client.get("/sw.js"))

    # worker-src falls back to child-src, then script-src, then default-src (CSP 3).
    workers = page.get("worker-src") or page.get("child-src") or page.get("script-src")
    assert "'self'" in workers
    assert "'self'" in (page.get("manifest-src") or page["default-src"])
    assert "'self'" in page["img-src"]  # the icons
    assert "'self'" in worker["connect-src"]  # what the worker fetches, under its own policy


# --- The offline page -------------------------------------------------------------------


def test_the_offline_page_says_so_and_offers_to_try_again(client: Client) -> None:
    response = client.get("/offline/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>You are offline</h1>" in html
    assert "data-offline-retry>Try again</a>" in html


def test_the_offline_page_and_the_worker_hold_nothing_of_the_person_signed_in(
    alice: User,
) -> None:
    anonymous = Client()
    signed_in = Client()
    signed_in.force_login(alice)

    for url in ("/offline/", "/sw.js"):
        theirs = signed_in.get(url).content
        assert theirs == anonymous.get(url).content, url
        assert b"alice" not in theirs
        assert b"csrfmiddlewaretoken" not in theirs


def test_the_offline_page_is_translated(client: Client, russian: None) -> None:
    html = client.get("/offline/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()

    assert '<html lang="ru">' in html
    assert "<h1>Нет связи</h1>" in html
    assert "Попробовать снова" in html
    assert "Сервер недоступен; страница откроется сама." in html


def test_the_worker_changes_with_the_offline_page_language(client: Client, russian: None) -> None:
    """Whoever switches language gets the offline page in the new one."""
    english = worker_config(client.get("/sw.js", HTTP_ACCEPT_LANGUAGE="en"))
    russian_config = worker_config(client.get("/sw.js", HTTP_ACCEPT_LANGUAGE="ru"))

    assert english["version"] != russian_config["version"]


# --- The pages link the app, the chat page lists its shortcuts ---------------------------


def test_every_page_links_the_manifest_the_worker_and_the_touch_icon(client: Client) -> None:
    html = client.get("/accounts/login/").content.decode()

    assert re.search(
        r'<link rel="manifest" href="/manifest.webmanifest"[^>]* data-service-worker="/sw.js">',
        html,
    )
    assert '<meta name="theme-color" content="#ffffff"' in html
    touch_icon = re.search(r'<link rel="apple-touch-icon" href="([^"]+)">', html)
    assert touch_icon and client.get(touch_icon[1]).status_code == 200


def test_the_chat_page_lists_every_shortcut_in_a_labelled_dialog(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    html = client.get("/").content.decode()

    assert re.search(r'<dialog id="shortcuts-dialog"[^>]* aria-labelledby="shortcuts-title"', html)
    actions = re.findall(r'<tr data-shortcut="([a-z-]+)" data-keys="([^"]+)">', html)
    assert dict(actions) == {
        "new-chat": "Mod+Shift+O",
        "search": "Mod+K /",
        "stop": "Escape",
        "regenerate": "Mod+Shift+E",
        "copy-reply": "Mod+Shift+;",
        "help": "Mod+/ ?",
    }
    assert 'data-open-dialog="shortcuts-dialog"' in html  # a button opens it too


def test_the_shortcuts_list_is_translated(client: Client, alice: User, russian: None) -> None:
    client.force_login(alice)
    html = client.get("/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()

    assert '<h2 id="shortcuts-title">Сочетания клавиш</h2>' in html
    assert "Остановить ответ" in html
    assert 'data-nothing-to-stop="Ответ не пишется."' in html
