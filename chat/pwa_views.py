"""The installable web app (a "progressive web app"): the web app manifest, the service
worker and the page it shows when the server cannot be reached.

- ``GET /manifest.webmanifest``: the W3C Web Application Manifest (name, start URL,
  ``display: standalone``, colours of ``chat.css``, the icons of ``static/chat/icons/``).
- ``GET /sw.js``: the service worker (``templates/chat/sw.js``), served from the site's
  root so that its scope is the whole site. It precaches the offline page and the
  static files the page's shell needs, under their served names (hashed ones on a
  production site), listed here when it is served; a change to any of them (or to the
  offline page, its language included) changes the worker's bytes, so browsers install
  the new one and drop the old cache.
- ``GET /offline/``: the offline page. Rendered without the request: it is the same for
  everyone and holds nothing of the person signed in (no name, no flash message, no
  CSRF token), since the service worker stores it.

Conversation pages, the API and reply streams are never stored by the worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import get_template, render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import get_language, get_language_bidi
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

# The page's shell, precached by the service worker: (directory, file name endings).
# Every stylesheet of static/chat/, every module of the page (main.js names them all:
# chat/tests/test_static.py) and the icons; with them, any other static file the offline
# page links to (see service_worker_config). Not the Markdown libraries in chat/vendor/:
# only a conversation page loads them, and that page needs the server anyway.
SHELL_STATIC: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chat", (".css",)),
    ("chat/js", (".js",)),
    ("chat/icons", (".png", ".svg")),
)
SHELL_EXCLUDED = frozenset({"chat/admin.css"})  # Django admin's, not the page's

# The manifest's colours: chat.css's --bg (light theme) for the window and the title bar.
BACKGROUND_COLOR = "#ffffff"
THEME_COLOR = "#ffffff"
# (src under static/, size, purpose) for the manifest's "icons" member.
MANIFEST_ICONS: tuple[tuple[str, str, str], ...] = (
    ("chat/icons/icon-192.png", "192x192", "any"),
    ("chat/icons/icon-512.png", "512x512", "any"),
    ("chat/icons/icon-maskable-192.png", "192x192", "maskable"),
    ("chat/icons/icon-maskable-512.png", "512x512", "maskable"),
    ("chat/icons/icon.svg", "any", "any"),
)
_ICON_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}

NO_CACHE = "no-cache"  # the browser asks the server again each time (a 304 at best)
_LINKED = re.compile(r'\b(?:href|src)="([^"]+)"')  # the URLs an HTML page links to


def shell_static_files() -> list[tuple[str, str]]:
    """The static files of the page's shell as ``(path, absolute file name)`` pairs,
    sorted by path (``"chat/chat.css"``, as ``{% static %}`` takes it), found the way
    ``collectstatic`` finds them (the static files finders)."""
    found: dict[str, str] = {}
    for finder in finders.get_finders():
        for path, storage in finder.list(["CVS", ".*", "*~"]):
            name = path.replace(os.sep, "/")
            directory, _slash, _base = name.rpartition("/")
            if name in found or name in SHELL_EXCLUDED:
                continue
            if any(directory == d and name.endswith(ends) for d, ends in SHELL_STATIC):
                found[name] = storage.path(path)
    return sorted(found.items())


def offline_html() -> str:
    """The offline page's HTML in the active language (rendered without a request)."""
    return render_to_string("offline.html")


def service_worker_config() -> dict[str, Any]:
    """What the service worker is told, as JSON-ready values:

    - ``offline``: the offline page's URL;
    - ``precache``: the static files' URLs (hashed names on a production site): those of
      ``shell_static_files`` and every static file the offline page links to;
    - ``cacheFirst``: true when those names are hashed (a URL's content never changes,
      so the cache answers first); otherwise the network answers first and the cache
      only offline, so a changed file is never served stale;
    - ``version``: 16 hex digits that change whenever the worker's code, the offline page
      (its language too) or any precached file (size or modification time) changes.
    """
    files = shell_static_files()
    page = offline_html()
    prefix = staticfiles_storage.base_url
    linked = {url for url in _LINKED.findall(page) if url.startswith(prefix)}
    config: dict[str, Any] = {
        "offline": reverse("chat:offline"),
        "precache": sorted({static(path) for path, _file in files} | linked),
        "cacheFirst": isinstance(staticfiles_storage, ManifestFilesMixin),
    }
    digest = hashlib.sha256()
    digest.update(json.dumps(config, sort_keys=True).encode())
    digest.update(get_template("chat/sw.js").template.source.encode())
    digest.update(page.encode())
    for path, file in files:
        stat = os.stat(file)
        digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    config["version"] = digest.hexdigest()[:16]
    return config


@require_safe
def web_manifest(request: HttpRequest) -> JsonResponse:
    """The web app manifest (application/manifest+json), in the active language."""
    index = reverse("chat:index")
    icons = [
        {
            "src": static(src),
            "sizes": sizes,
            "type": _ICON_TYPES[os.path.splitext(src)[1]],
            "purpose": purpose,
        }
        for src, sizes, purpose in MANIFEST_ICONS
    ]
    data = {
        "id": index,
        "name": _("Chat AI"),
        "short_name": _("Chat AI"),
        "description": _("Chat with language models from many providers in one place."),
        "lang": get_language(),
        "dir": "rtl" if get_language_bidi() else "ltr",
        "start_url": index,
        "scope": index,
        "display": "standalone",
        "background_color": BACKGROUND_COLOR,
        "theme_color": THEME_COLOR,
        "icons": icons,
    }
    response = JsonResponse(
        data,
        content_type="application/manifest+json",
        json_dumps_params={"ensure_ascii": False, "indent": 2},
    )
    response["Cache-Control"] = NO_CACHE
    return response


@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker's script (application/javascript), never cached by HTTP caches
    so that browsers see a new version at once. Public: it holds no one's data."""
    config = json.dumps(service_worker_config(), sort_keys=True)
    script = render_to_string("chat/sw.js", {"config": config})
    response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = NO_CACHE
    response["Service-Worker-Allowed"] = reverse("chat:index")
    return response


@require_safe
def offline(request: HttpRequest) -> HttpResponse:
    """The page shown, by the service worker, for any page while the server cannot be
    reached: "You are offline", and it reloads itself when the connection is back."""
    response = HttpResponse(offline_html())
    response["Cache-Control"] = NO_CACHE
    return response
