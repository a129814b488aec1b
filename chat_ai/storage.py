"""Static files in production: whitenoise's compressed, hashed copies, with the page's ES
modules' imports rewritten to the hashed names too. Otherwise a module imports its
neighbours by plain name, served with a short cache time, and for a while after a deploy
a browser could run a new module with an old neighbour."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed names for static import/export statements in JavaScript modules
    (Django's ``support_js_module_import_aggregation``); a dynamic ``import()`` keeps
    the plain name."""

    support_js_module_import_aggregation = True
