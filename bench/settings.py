"""The app's own settings, with two changes for benchmarking, nothing else:

- a fast password hasher, so that signing in hundreds of bench users does not cost
  minutes of PBKDF2 (sign-in speed is not what the benchmarks measure);
- static files served from static/ without ``collectstatic`` when DEBUG is off.
"""

from chat_ai.settings import *  # noqa: F403
from chat_ai.settings import STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
