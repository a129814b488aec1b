"""Django settings for chat_ai.

Every setting that differs between machines comes from the environment, read once here.
A `.env` file in the project root is loaded first (python-dotenv); real environment
variables win over it. Every variable is listed, with a comment, in `.env.example`.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

from accounts.oidc_config import check_oidc_settings, parse_group_map

BASE_DIR = Path(__file__).resolve().parent.parent

load_dotenv(BASE_DIR / ".env", override=False)


def env_str(name: str, default: str = "") -> str:
    """A string from the environment; empty means unset."""
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    value = env_str(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError as e:
        raise ValueError(f"{name} must be a number, got {value!r}") from e


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from e


def env_list(name: str) -> list[str]:
    return [item.strip() for item in env_str(name).split(",") if item.strip()]


# --- Core -------------------------------------------------------------------------------

# Off by default: people never see Django's technical error pages (with settings and URL
# patterns), not even from `make run`. DEBUG=true is for developers.
DEBUG = env_bool("DEBUG", False)
# With ALLOWED_HOSTS unset the site answers to this machine only (`make run`): plain HTTP
# on loopback, static files from static/, the development secret key. Naming any other
# host makes it a production site: secure cookies, HTTPS, HSTS, a real SECRET_KEY and
# `collectstatic` (unless DEBUG is on).
_LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or _LOOPBACK_HOSTS
LOOPBACK_ONLY = all(host in _LOOPBACK_HOSTS for host in ALLOWED_HOSTS)
PRODUCTION = not DEBUG and not LOOPBACK_ONLY
_DEV_SECRET_KEY = "django-insecure-dev-only-key-change-me-in-production-0123456789"
SECRET_KEY = env_str("SECRET_KEY") or _DEV_SECRET_KEY
if PRODUCTION and SECRET_KEY == _DEV_SECRET_KEY:
    raise ValueError(
        "SECRET_KEY must be set when DEBUG is off and ALLOWED_HOSTS names other hosts than "
        "this machine."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",  # makes `manage.py runserver` an ASGI server, so replies stream in development
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",  # sign-in lockout per account and address (see "Sign-in lockout" below)
    "chat",
    "accounts",
    "siteconfig",
    "api",
    "usage",
    "access",
    "sharing",
    "transfer",
]

# Django's middleware checks look for its class paths; chat_ai.middleware has the same
# check for the subclasses installed here (check_security_middleware).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

MIDDLEWARE = [
    # chat_ai.middleware: Django's own, run in the event loop under ASGI (see there).
    "chat_ai.middleware.SecurityMiddleware",
    "chat.middleware.SecurityHeadersMiddleware",
    "chat_ai.middleware.WhiteNoiseMiddleware",
    # Before anything reads request.POST (CSRF, the views): a form body that is not UTF-8
    # is refused with 400, never decoded into replacement characters.
    "chat.middleware.Utf8FormBodyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "chat_ai.middleware.LocaleMiddleware",
    "chat_ai.middleware.CommonMiddleware",
    "chat_ai.middleware.CsrfViewMiddleware",
    "chat_ai.middleware.AuthenticationMiddleware",
    # After sessions, LocaleMiddleware and auth: a signed-in person's chosen language.
    "accounts.language.AccountLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "chat_ai.middleware.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chat_ai.urls"
ASGI_APPLICATION = "chat_ai.asgi.application"
WSGI_APPLICATION = "chat_ai.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# SQLite by default; DATABASE_URL (for example postgres://user@127.0.0.1:5432/chat) switches
# to PostgreSQL through psycopg 3.

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # CONN_MAX_AGE must stay 0 with psycopg's pool: the pool keeps the connections, and
    # each request (or each short step of a stream) borrows one and gives it back.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 2),
            "max_size": env_int("DB_POOL_MAX_SIZE", 20),
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH") or str(BASE_DIR / "db.sqlite3"),
            # Each worker thread keeps its SQLite connection (a file handle: opening one
            # runs the PRAGMAs below and registers the search function, about 1 ms).
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # Wait for a lock instead of failing at once; IMMEDIATE avoids the
                # read-then-upgrade deadlock between two writers.
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", True)

# --- Sign-in lockout (django-axes) ------------------------------------------------------
# LOGIN_MAX_FAILURES wrong passwords for one account from one address pause sign-in for
# that account from that address for LOGIN_LOCKOUT_SECONDS (counted from the last
# failure). Other accounts from the same address (an office behind NAT) and the same
# account from other addresses still sign in. The pause is kept in the database, so it
# holds across workers. `manage.py axes_reset` lifts every pause.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 300)
# The client's address is REMOTE_ADDR unless TRUSTED_PROXY_HEADER names a header that
# your reverse proxy sets (X-Forwarded-For or X-Real-IP); TRUSTED_PROXY_COUNT is the
# number of proxies in front of the app that append to X-Forwarded-For. Never name a
# header that clients can reach the app with unfiltered: they could pick any address.
TRUSTED_PROXY_HEADER = env_str("TRUSTED_PROXY_HEADER")
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1)

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a paused account and address
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Callables, so that LOGIN_* changed at run time (tests) take effect.
AXES_FAILURE_LIMIT = "accounts.lockout.failure_limit"
AXES_COOLOFF_TIME = "accounts.lockout.cool_off"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out_response"
# A wrong password while paused does not restart the pause: the page's "try again in"
# stays true. A right password after the pause clears the failures.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# No row per successful sign-in (the table would only grow); failures are still kept.
AXES_DISABLE_ACCESS_LOG = True

# --- Single sign-on (OpenID Connect, mozilla-django-oidc) -------------------------------
# Off unless OIDC_CLIENT_ID is set. Then the sign-in page offers "Sign in with
# <OIDC_PROVIDER_NAME>" beside the password form: the authorization code flow with PKCE,
# the ID token checked (signature against the JWKS, nonce, audience, issuer, expiry) by
# accounts.oidc. The endpoints are in <OIDC_ISSUER>/.well-known/openid-configuration
# (`manage.py oidc_endpoints <issuer>` prints them); they are not fetched at start-up.
# People are found by the token's `sub` (user name "oidc-<sub>"), else by a verified
# email; OIDC_GROUPS_CLAIM, OIDC_GROUP_MAP and OIDC_STAFF_GROUPS set their groups and
# staff flag at every sign-in (README, "Single sign-on").
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME") or "SSO"
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
OIDC_ISSUER = env_str("OIDC_ISSUER")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_USERINFO_ENDPOINT")  # empty: ID token claims only
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_JWKS_URI")
OIDC_RP_SIGN_ALGO = env_str("OIDC_SIGN_ALGO") or "RS256"
OIDC_RP_SCOPES = env_str("OIDC_SCOPES") or "openid email profile"
OIDC_TOKEN_AUTH_METHOD = env_str("OIDC_TOKEN_AUTH_METHOD") or "client_secret_basic"
OIDC_TOKEN_USE_BASIC_AUTH = OIDC_TOKEN_AUTH_METHOD == "client_secret_basic"
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM")
OIDC_GROUP_MAP = parse_group_map(env_str("OIDC_GROUP_MAP"))
OIDC_STAFF_GROUPS = env_list("OIDC_STAFF_GROUPS")
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USERS", True)
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 10.0)  # seconds, each call to the provider
OIDC_USE_PKCE = True
check_oidc_settings(
    {
        "OIDC_CLIENT_ID": OIDC_RP_CLIENT_ID,
        "OIDC_CLIENT_SECRET": OIDC_RP_CLIENT_SECRET,
        "OIDC_ISSUER": OIDC_ISSUER,
        "OIDC_AUTHORIZATION_ENDPOINT": OIDC_OP_AUTHORIZATION_ENDPOINT,
        "OIDC_TOKEN_ENDPOINT": OIDC_OP_TOKEN_ENDPOINT,
        "OIDC_USERINFO_ENDPOINT": OIDC_OP_USER_ENDPOINT,
        "OIDC_JWKS_URI": OIDC_OP_JWKS_ENDPOINT,
        "OIDC_SIGN_ALGO": OIDC_RP_SIGN_ALGO,
        "OIDC_TOKEN_AUTH_METHOD": OIDC_TOKEN_AUTH_METHOD,
        "OIDC_GROUPS_CLAIM": OIDC_GROUPS_CLAIM,
        "OIDC_STAFF_GROUPS": OIDC_STAFF_GROUPS,
        "OIDC_GROUP_MAP": OIDC_GROUP_MAP,
    }
)
if OIDC_ENABLED:
    # After the password backends; axes' stays first.
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "accounts.oidc.OidcBackend"]

# --- I18n, static -----------------------------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE") or "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from static/ without collectstatic while developing and on loopback
# (`make run`); a production site serves the collected, compressed, hashed files.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "chat_ai.storage.StaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security (production values switch on for a production site, see PRODUCTION) ------

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# --- Logging ----------------------------------------------------------------------------

# The app's own loggers (one per app of this project: chat, accounts...) log at LOG_LEVEL
# (default INFO): failed replies, refused requests. Every other library (httpx and
# httpcore request lines, the SDKs' notices such as google-genai's on every call, axes)
# logs warnings and errors only, unless LIBRARY_LOG_LEVEL says otherwise.
LOG_LEVEL = env_str("LOG_LEVEL").upper() or "INFO"
LIBRARY_LOG_LEVEL = env_str("LIBRARY_LOG_LEVEL").upper() or "WARNING"
_PROJECT_APPS = ["chat_ai"] + [app for app in INSTALLED_APPS if (BASE_DIR / app).is_dir()]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LIBRARY_LOG_LEVEL},
    "loggers": {
        **{app: {"level": LOG_LEVEL} for app in _PROJECT_APPS},
        # Django's own handlers would print each request error a second time.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- LLM providers ----------------------------------------------------------------------
# Keys, base URLs (for proxies and gateways) and request timeouts of each provider.
# Providers read these through chat.providers.get_provider(); nothing else touches them.

LLM_REQUEST_TIMEOUT = env_float("LLM_REQUEST_TIMEOUT", 60.0)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2)
LLM_MODELS_CACHE_TTL = env_int("LLM_MODELS_CACHE_TTL", 3600)

OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_TIMEOUT = env_float("OPENAI_TIMEOUT", LLM_REQUEST_TIMEOUT)

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL")
ANTHROPIC_TIMEOUT = env_float("ANTHROPIC_TIMEOUT", LLM_REQUEST_TIMEOUT)

GOOGLE_API_KEY = env_str("GOOGLE_API_KEY")
GOOGLE_BASE_URL = env_str("GOOGLE_BASE_URL")
GOOGLE_TIMEOUT = env_float("GOOGLE_TIMEOUT", LLM_REQUEST_TIMEOUT)

MISTRAL_API_KEY = env_str("MISTRAL_API_KEY")
MISTRAL_BASE_URL = env_str("MISTRAL_BASE_URL")
MISTRAL_TIMEOUT = env_float("MISTRAL_TIMEOUT", LLM_REQUEST_TIMEOUT)

LOCAL_MODEL_PATH = env_str("LOCAL_MODEL_PATH")
LOCAL_MODEL_CONTEXT = env_int("LOCAL_MODEL_CONTEXT", 2048)
LOCAL_MODEL_THREADS = env_int("LOCAL_MODEL_THREADS", 0)  # 0: let llama.cpp decide


def _openai_compatible_endpoints() -> dict[str, dict[str, object]]:
    """OPENAI_COMPATIBLE_PROVIDERS=ollama,openrouter declares extra providers; each reads
    <NAME>_BASE_URL (required), <NAME>_API_KEY, <NAME>_MODELS (comma-separated),
    <NAME>_LABEL and <NAME>_TIMEOUT."""
    endpoints: dict[str, dict[str, object]] = {}
    for raw_name in env_list("OPENAI_COMPATIBLE_PROVIDERS"):
        name = raw_name.lower()
        prefix = raw_name.upper().replace("-", "_")
        endpoints[name] = {
            "base_url": env_str(f"{prefix}_BASE_URL"),
            "api_key": env_str(f"{prefix}_API_KEY"),
            "models": env_list(f"{prefix}_MODELS"),
            "label": env_str(f"{prefix}_LABEL") or raw_name,
            "timeout": env_float(f"{prefix}_TIMEOUT", LLM_REQUEST_TIMEOUT),
        }
    return endpoints


OPENAI_COMPATIBLE_ENDPOINTS = _openai_compatible_endpoints()

# --- Chat -------------------------------------------------------------------------------

# The model a new chat starts on for someone who has not used one yet (empty: the first
# usable cloud model, the local model when none is usable). An admin can override both
# in the admin (Site configuration).
CHAT_DEFAULT_PROVIDER = env_str("CHAT_DEFAULT_PROVIDER")
CHAT_DEFAULT_MODEL = env_str("CHAT_DEFAULT_MODEL")
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 100_000)
CHAT_HEARTBEAT_SECONDS = env_float("CHAT_HEARTBEAT_SECONDS", 15.0)
# Messages one user may send per window (0 switches the limit off).
CHAT_RATE_LIMIT_MESSAGES = env_int("CHAT_RATE_LIMIT_MESSAGES", 30)
CHAT_RATE_LIMIT_WINDOW = env_int("CHAT_RATE_LIMIT_WINDOW", 60)
CHAT_CHECKPOINT_SECONDS = env_float("CHAT_CHECKPOINT_SECONDS", 2.0)
# A reply still "streaming" after this many seconds lost its process (a crash or
# restart): it is closed as an error so the conversation can go on.
CHAT_STALE_STREAM_SECONDS = env_int("CHAT_STALE_STREAM_SECONDS", 900)
# The longest a reply may run (seconds; 0: no limit). It is then cut, its text kept.
CHAT_MAX_REPLY_SECONDS = env_float("CHAT_MAX_REPLY_SECONDS", 600.0)
# Who may use which model (access rules per group, in the admin): people in no group with
# rules may use every model ("all") or none ("none"); staff may use every model.
CHAT_ACCESS_DEFAULT = env_str("CHAT_ACCESS_DEFAULT", "all")
CHAT_ACCESS_STAFF_ALL = env_bool("CHAT_ACCESS_STAFF_ALL", True)
# On SIGTERM a worker takes no new replies and gives running ones this long to finish
# (seconds) before it stops them, saving each as interrupted.
CHAT_SHUTDOWN_GRACE_SECONDS = env_float("CHAT_SHUTDOWN_GRACE_SECONDS", 10.0)
# The model that writes a conversation's title after its first reply, as provider/model;
# empty: the conversation's own model; "off": the first line of the first message.
CHAT_TITLE_MODEL = env_str("CHAT_TITLE_MODEL")

# --- Budgets ----------------------------------------------------------------------------
# Limits for everyone, on top of the budgets set per person and per group in the admin
# (Usage -> Budgets; usage.budgets applies them). Empty: no such limit. Money in US dollars
# per calendar day or month (server's TIME_ZONE), tokens = input + output, and replies per
# person per minute. A person's own budget for a period replaces the default of the same
# kind; group (team) budgets add to the defaults. Staff are held to budgets unless
# CHAT_BUDGET_STAFF_EXEMPT is true. A reply being written counts at its input estimate plus
# its max_tokens, or CHAT_BUDGET_RESERVE_OUTPUT_TOKENS output tokens when it sets none.


def _env_budget(name: str, kind: type[int] | type[Decimal]) -> int | Decimal | None:
    value = env_str(name)
    if not value:
        return None
    try:
        limit = kind(value)
        positive = limit > 0 and limit < 10**12
    except (ValueError, ArithmeticError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not positive:
        raise ValueError(f"{name} must be above zero (empty: no limit), got {value!r}")
    return limit


CHAT_BUDGET_DAILY_COST = _env_budget("CHAT_BUDGET_DAILY_COST", Decimal)
CHAT_BUDGET_MONTHLY_COST = _env_budget("CHAT_BUDGET_MONTHLY_COST", Decimal)
CHAT_BUDGET_DAILY_TOKENS = _env_budget("CHAT_BUDGET_DAILY_TOKENS", int)
CHAT_BUDGET_MONTHLY_TOKENS = _env_budget("CHAT_BUDGET_MONTHLY_TOKENS", int)
CHAT_BUDGET_REQUESTS_PER_MINUTE = _env_budget("CHAT_BUDGET_REQUESTS_PER_MINUTE", int)
CHAT_BUDGET_STAFF_EXEMPT = env_bool("CHAT_BUDGET_STAFF_EXEMPT", False)
CHAT_BUDGET_RESERVE_OUTPUT_TOKENS = env_int("CHAT_BUDGET_RESERVE_OUTPUT_TOKENS", 4096)

# --- Attachments ------------------------------------------------------------------------
# Files attached to messages (images, PDFs, text files), stored through Django's storage
# API: in MEDIA_ROOT by default (never served as static files: only their owner, and
# staff, fetch them, through the app). FILE_STORAGE_BACKEND names another storage class,
# for example django-storages' "storages.backends.s3.S3Storage", with its options as JSON
# in FILE_STORAGE_OPTIONS (see the README, "Attachments").
MEDIA_ROOT = env_str("MEDIA_ROOT") or str(BASE_DIR / "media")
MEDIA_URL = "/media/"  # nothing is served there: files go through /attachments/<id>/
_FILE_STORAGE_BACKEND = env_str("FILE_STORAGE_BACKEND")
if _FILE_STORAGE_BACKEND:
    import json as _json

    try:
        _storage_options = _json.loads(env_str("FILE_STORAGE_OPTIONS") or "{}")
    except ValueError as e:
        raise ValueError(f"FILE_STORAGE_OPTIONS must be a JSON object: {e}") from e
    if not isinstance(_storage_options, dict):
        raise ValueError("FILE_STORAGE_OPTIONS must be a JSON object")
    STORAGES["default"] = {"BACKEND": _FILE_STORAGE_BACKEND, "OPTIONS": _storage_options}
# Largest file (bytes), files per message, bytes of files one person may keep in all,
# characters of text kept from one PDF or text file, uploads per person per
# CHAT_RATE_LIMIT_WINDOW (0: no limit).
CHAT_ATTACHMENT_MAX_BYTES = env_int("CHAT_ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024)
CHAT_ATTACHMENTS_PER_MESSAGE = env_int("CHAT_ATTACHMENTS_PER_MESSAGE", 10)
CHAT_ATTACHMENT_QUOTA_BYTES = env_int("CHAT_ATTACHMENT_QUOTA_BYTES", 500 * 1024 * 1024)
CHAT_ATTACHMENT_MAX_TEXT_CHARS = env_int("CHAT_ATTACHMENT_MAX_TEXT_CHARS", 200_000)
CHAT_ATTACHMENT_RATE_LIMIT = env_int("CHAT_ATTACHMENT_RATE_LIMIT", 60)

# --- Share links (sharing) ----------------------------------------------------------------
# false: nobody may create a link for anyone with it; existing public links then open for
# signed-in users only (and are public again if this goes back to true).
CHAT_PUBLIC_SHARE_LINKS = env_bool("CHAT_PUBLIC_SHARE_LINKS", True)
