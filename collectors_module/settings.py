"""The one settings module: every tunable of every process is defined here.

Values come from the environment through environs (`env.int("NAME", default)` and friends): the
environment wins over the default written here, and nothing else in the project reads the
environment. Other modules read `django.conf.settings`; the test suite overrides settings per test
(and `tests/settings.py` for the test process as a whole).
`docs/settings.md` lists every setting with its default, meaning and the processes that read it.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from environs import Env, validate

env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env.path("COLLECTORS_VAR_DIR", BASE_DIR / "var")

DEBUG = env.bool("DEBUG", False)
# The quick start and the tests may run without a configured secret; production may not.
DEV_MODE = env.bool("COLLECTORS_DEV", False)
SECRET_KEY = env.str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEV_MODE:
        raise ImproperlyConfigured("SECRET_KEY must be set (or COLLECTORS_DEV=1 for development)")
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials.apps.SimpleAppConfig",
    "collectors_module.core",
    "collectors_module.accounts",
    "collectors_module.applications",
    "collectors_module.inputs",
    "collectors_module.inference",
    "collectors_module.workflows",
    "collectors_module.collectors",
    "collectors_module.capture",
    "collectors_module.modules",
    "collectors_module.datasets",
    "collectors_module.api",
    "collectors_module.ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "collectors_module.core.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "collectors_module.ops.middleware.RequestLogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "collectors_module.urls"
WSGI_APPLICATION = "collectors_module.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "collectors_module.applications.context_processors.sidebar_apps",
                "collectors_module.modules.context_processors.sidebar_installations",
            ],
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASE_URL = env.str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/collectors")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env.int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "connect_timeout": env.int("DB_CONNECT_TIMEOUT", 3),
            "application_name": env.str("DB_APPLICATION_NAME", "collectors-web"),
        }
    )
else:
    # SQLite (the quick start): web, gRPC server, capture agent and worker share one file.
    # WAL lets readers run beside the one writer; IMMEDIATE transactions take the write lock
    # when they start (no deadlock between two readers that both want to write), and the busy
    # timeout makes a writer wait for the lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": env.float("SQLITE_BUSY_TIMEOUT_SECONDS", 30.0),
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout="
                f"{int(env.float('SQLITE_BUSY_TIMEOUT_SECONDS', 30.0) * 1000)};"
            ),
        }
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "applications:home"
LOGOUT_REDIRECT_URL = "accounts:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", VAR_DIR / "media")

# Blob storage: the local filesystem by default; an S3-compatible bucket (django-storages) when
# a bucket is configured, so several machines can share captured media.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", "")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", "")
# Credentials: empty means boto3's own chain (AWS_ACCESS_KEY_ID / instance role / ~/.aws).
AWS_S3_ACCESS_KEY_ID = env.str("AWS_S3_ACCESS_KEY_ID", "")
AWS_S3_SECRET_ACCESS_KEY = env.str("AWS_S3_SECRET_ACCESS_KEY", "")
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", "")
AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", "")  # "", "path" or "virtual"
AWS_S3_LOCATION = env.str("AWS_S3_LOCATION", "")  # key prefix inside the bucket
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL or None,
            "access_key": AWS_S3_ACCESS_KEY_ID or None,
            "secret_key": AWS_S3_SECRET_ACCESS_KEY or None,
            "region_name": AWS_S3_REGION_NAME or None,
            "addressing_style": AWS_S3_ADDRESSING_STYLE or None,
            "location": AWS_S3_LOCATION,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Upload limits: one 20 MB image arrives as ~27 MB of base64 inside JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BYTES", 40 * 2**20)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 20
# Count limits checked before parsing into protobuf (api/limits.py).
API_MAX_LIST_ITEMS = env.int("API_MAX_LIST_ITEMS", 1000)
API_MAX_JSON_VALUES = env.int("API_MAX_JSON_VALUES", 250_000)
MAX_IMAGE_BYTES = env.int("MAX_IMAGE_BYTES", 20 * 10**6)
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", 85_000_000)
# Decode cost (core/images.py): all images of one request together, and full-size decodes
# running at once in one process (the others wait).
IMAGE_MAX_PIXELS_PER_REQUEST = env.int("IMAGE_MAX_PIXELS_PER_REQUEST", 2 * MAX_IMAGE_PIXELS)
IMAGE_DECODE_CONCURRENCY = env.int("IMAGE_DECODE_CONCURRENCY", 2)

# Built-in image models: the ONNX graph built from the packaged EfficientNet-Lite0 weights is
# cached here (checked by SHA-256, rebuilt when missing or corrupt). One onnxruntime thread per
# session by default: on a small machine parallel requests use the cores better than one
# request's threads do (0 = onnxruntime's default, one thread per core).
MODEL_CACHE_DIR = env.path("MODEL_CACHE_DIR", VAR_DIR / "models")
IMAGE_MODEL_THREADS = env.int("IMAGE_MODEL_THREADS", 1)

# Security headers (CSP is added by core.middleware.SecurityHeadersMiddleware).
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Accounts (issue 15): how long a sign-in lasts, the reset link's life, where email goes.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", 14 * 24 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", False)
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", 3600)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "collectors@localhost")
USE_TLS = env.bool("USE_TLS", False)
if USE_TLS:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # probes speak plain HTTP
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Redis used for shared counters and rate limits (not the broker itself).
REDIS_URL = env.str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Throttles for guessing (accounts/throttle.py, django-ratelimit): failures only, in a cache
# every process shares. Rates are "count/period" (s, m, h, d; e.g. 10/15m).
THROTTLE_REDIS_URL = env.str("THROTTLE_REDIS_URL", "") or REDIS_URL
THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = env.str("THROTTLE_LOGIN_FAILURES_PER_ACCOUNT", "10/15m")
THROTTLE_LOGIN_FAILURES_PER_ADDRESS = env.str("THROTTLE_LOGIN_FAILURES_PER_ADDRESS", "30/15m")
THROTTLE_BAD_KEYS_PER_ADDRESS = env.str("THROTTLE_BAD_KEYS_PER_ADDRESS", "60/m")
THROTTLE_CLIENT_ADDRESS_HEADER = env.str("THROTTLE_CLIENT_ADDRESS_HEADER", "")
# The same for gRPC behind a proxy: the metadata key holding the client address ("" = the peer).
THROTTLE_GRPC_CLIENT_ADDRESS_METADATA = env.str("THROTTLE_GRPC_CLIENT_ADDRESS_METADATA", "")
CACHES["throttle"] = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": THROTTLE_REDIS_URL,
    "KEY_PREFIX": "throttle",
    "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
}
RATELIMIT_USE_CACHE = "throttle"
RATELIMIT_FAIL_OPEN = True

# Celery: settings follow the reliability bar (acks late, reject on worker lost, prefetch 1).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", 120)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", 100)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 512_000
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# No pidbox (remote control) channel: nothing here uses it, it is an attack surface on a shared
# broker, and its reconnect path is where kombu's worker crashes after a broker restart live.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = env.bool("CELERY_WORKER_ENABLE_REMOTE_CONTROL", False)
# Keep a worker's DB connection across tasks (Celery's Django fixup otherwise closes it after
# every task, so each capture paid a new PostgreSQL connection); the collectors tasks drop a
# broken or expired connection themselves (close_old_connections), as Django does per request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", 100)
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", 600)

# --- core: the SSRF-safe URL fetcher -------------------------------------------------------
# Operator allow-list: `host[:port]` entries the fetcher may reach despite the SSRF rules (a
# listed host may use its listed port, or the default ports, and resolve to any address).
SAFE_FETCH_ALLOWED_HOSTS = env.list("SAFE_FETCH_ALLOWED_HOSTS", [])
SAFE_FETCH_CONNECT_TIMEOUT = env.float("SAFE_FETCH_CONNECT_TIMEOUT", 3.0)
SAFE_FETCH_MAX_REDIRECTS = env.int("SAFE_FETCH_MAX_REDIRECTS", 3)
SAFE_FETCH_MAX_BYTES = env.int("SAFE_FETCH_MAX_BYTES", MAX_IMAGE_BYTES)
SAFE_FETCH_CA_FILE = env.str("SAFE_FETCH_CA_FILE", "")  # extra CA bundle for HTTPS fetches

# --- inputs --------------------------------------------------------------------------------
INPUTS_MAX_PER_REQUEST = env.int("INPUTS_MAX_PER_REQUEST", 128)
INPUT_MAX_TEXT_BYTES = env.int("INPUT_MAX_TEXT_BYTES", 1_000_000)
INPUT_MAX_DATA_BYTES = env.int("INPUT_MAX_DATA_BYTES", 1_000_000)
# Scheme and host put in front of hosted media URLs ('' gives site-relative URLs).
COLLECTORS_PUBLIC_URL = env.str("COLLECTORS_PUBLIC_URL", "")

# --- inference -----------------------------------------------------------------------------
MAX_PREDICT_INPUTS = env.int("MAX_PREDICT_INPUTS", 128)
PREDICT_FETCH_WORKERS = env.int("PREDICT_FETCH_WORKERS", 8)
PREDICT_FETCH_DEADLINE_SECONDS = env.float("PREDICT_FETCH_DEADLINE_SECONDS", 20.0)
MAX_TEXT_BYTES = env.int("MAX_TEXT_BYTES", 1_000_000)
OCR_MAX_SIDE = env.int("OCR_MAX_SIDE", 960)
# How long a process trusts its cached keys and model versions before it checks the change
# generation in the database (a background thread checks it in servers): a revoked key or a
# changed version is seen by every process within this time.
CACHE_CHECK_SECONDS = env.float("CACHE_CHECK_SECONDS", 0.5)
CACHE_MAX_ENTRIES = env.int("CACHE_MAX_ENTRIES", 10_000)
# Servers run their periodic chores (cache checks, counter flushes, backlog counts) in
# background threads, off the request path. The test process turns them off and runs each chore
# on the calling thread (tests/settings.py), where the test's own transaction is visible.
BACKGROUND_THREADS = env.bool("BACKGROUND_THREADS", True)
# Remote models: URL prefixes a remote model version may point at (empty: no remote models).
REMOTE_MODEL_ALLOWED_ENDPOINTS = env.list("REMOTE_MODEL_ALLOWED_ENDPOINTS", [])
REMOTE_MODEL_TIMEOUT = env.float("REMOTE_MODEL_TIMEOUT", 30.0)
REMOTE_MODEL_MAX_TIMEOUT = env.float("REMOTE_MODEL_MAX_TIMEOUT", 120.0)
REMOTE_MODEL_CONNECT_TIMEOUT = env.float("REMOTE_MODEL_CONNECT_TIMEOUT", 3.0)
REMOTE_MODEL_RETRIES = env.int("REMOTE_MODEL_RETRIES", 2)
REMOTE_MODEL_RETRY_BACKOFF = env.float("REMOTE_MODEL_RETRY_BACKOFF", 0.2)
REMOTE_MODEL_MAX_REPLY_BYTES = env.int("REMOTE_MODEL_MAX_REPLY_BYTES", 4 * 2**20)
REMOTE_MODEL_CONCURRENCY = env.int("REMOTE_MODEL_CONCURRENCY", 4)
# Operator-held credentials: every environment variable REMOTE_MODEL_KEY_<NAME>, by its full
# name. Tenants never name them: REMOTE_MODEL_CREDENTIAL_ENDPOINTS binds each to one endpoint
# prefix (NAME=URL prefix, comma-separated), and a remote model whose URL falls under that prefix
# (and has no API key of its own) is called with it.
REMOTE_MODEL_KEYS = {
    name: value for name, value in os.environ.items() if name.startswith("REMOTE_MODEL_KEY_")
}
REMOTE_MODEL_CREDENTIAL_ENDPOINTS = env.dict("REMOTE_MODEL_CREDENTIAL_ENDPOINTS", {})
# Fernet keys (newest first) sealing per-model API keys at rest; empty: derived from SECRET_KEY.
REMOTE_MODEL_SECRET_KEYS = env.list("REMOTE_MODEL_SECRET_KEYS", [])

# --- workflows -----------------------------------------------------------------------------
WORKFLOW_MAX_NODES = env.int("WORKFLOW_MAX_NODES", 20)
WORKFLOW_MAX_RESULT_INPUTS = env.int("WORKFLOW_MAX_RESULT_INPUTS", 32)
# A compiled workflow plan is reused this long, so a concept relation changed in another process
# reaches the mappers within this time.
WORKFLOW_PLAN_TTL_SECONDS = env.float("WORKFLOW_PLAN_TTL_SECONDS", 10.0)

# --- gRPC server ---------------------------------------------------------------------------
GRPC_MAX_WORKERS = env.int("GRPC_MAX_WORKERS", 0)  # 0: 4 x cores
# Server processes sharing the gRPC port (SO_REUSEPORT); one Python process serves on one core.
GRPC_PROCESSES = env.int("GRPC_PROCESSES", 1)
# Capped like REST bodies (MAX_REQUEST_BYTES): the same images must fit, nothing bigger.
GRPC_MAX_MESSAGE_BYTES = env.int("GRPC_MAX_MESSAGE_BYTES", DATA_UPLOAD_MAX_MEMORY_SIZE)

# --- fault injection (tests and the chaos harness only; inert when empty) --------------------
COLLECTORS_FAULTS = env.str("COLLECTORS_FAULTS", "")
COLLECTORS_FAULTS_SEED = env.str("COLLECTORS_FAULTS_SEED", "")
COLLECTORS_FAULT_SLEEP = env.float("COLLECTORS_FAULT_SLEEP", 5.0)
# The test harness records worker pids here (empty: off).
COLLECTORS_WORKER_PIDFILE_DIR = env.str("COLLECTORS_WORKER_PIDFILE_DIR", "")

# --- the capture engine (collectors_module.capture; its conf.py describes each one) ----------
# How a serving process hands an admitted capture to the outbox: "spool" (append it to this
# host's spool, which the capture agent commits and publishes; nothing on the request thread
# waits for the database or the broker) or "inline" (the request thread inserts the row itself).
COLLECTORS_CAPTURE_HANDOFF = env.str("COLLECTORS_CAPTURE_HANDOFF", "spool")
COLLECTORS_SPOOL_DIR = env.path("COLLECTORS_SPOOL_DIR", VAR_DIR / "spool")
COLLECTORS_SPOOL_SEGMENT_BYTES = env.int("COLLECTORS_SPOOL_SEGMENT_BYTES", 16 * 2**20)
COLLECTORS_SPOOL_MAX_BYTES = env.int("COLLECTORS_SPOOL_MAX_BYTES", 1024 * 2**20)
COLLECTORS_AGENT_BATCH = env.int("COLLECTORS_AGENT_BATCH", 500)
COLLECTORS_AGENT_POLL_SECONDS = env.float("COLLECTORS_AGENT_POLL_SECONDS", 0.05)
# The capture agent's CPU priority beside the servers on its host: "normal", "low" (nice 19: it
# yields the CPU to busy servers and catches up when they idle) or "idle" (SCHED_IDLE).
COLLECTORS_AGENT_PRIORITY = env.str(
    "COLLECTORS_AGENT_PRIORITY", "low", validate=validate.OneOf(["normal", "low", "idle"])
)
COLLECTORS_INDEX_MAX_AGE_SECONDS = env.float("COLLECTORS_INDEX_MAX_AGE_SECONDS", 300.0)
COLLECTORS_GRANT_CACHE_SECONDS = env.float("COLLECTORS_GRANT_CACHE_SECONDS", 1.0)
COLLECTORS_PENDING_CACHE_SECONDS = env.float("COLLECTORS_PENDING_CACHE_SECONDS", 1.0)
COLLECTORS_MAX_PENDING_TOTAL = env.int("COLLECTORS_MAX_PENDING_TOTAL", 100_000)
COLLECTORS_MAX_PAYLOAD_BYTES = env.int("COLLECTORS_MAX_PAYLOAD_BYTES", 8 * 2**20)
COLLECTORS_CAPTURE_STATEMENT_TIMEOUT_MS = env.int("COLLECTORS_CAPTURE_STATEMENT_TIMEOUT_MS", 100)
COLLECTORS_CAPTURE_LOCK_TIMEOUT_MS = env.int("COLLECTORS_CAPTURE_LOCK_TIMEOUT_MS", 50)
COLLECTORS_CAPTURE_ASYNC_COMMIT = env.bool("COLLECTORS_CAPTURE_ASYNC_COMMIT", False)
COLLECTORS_LIMITER_REDIS_URL = env.str("COLLECTORS_LIMITER_REDIS_URL", "") or REDIS_URL
COLLECTORS_LIMITER_TIMEOUT_SECONDS = env.float("COLLECTORS_LIMITER_TIMEOUT_SECONDS", 0.05)
COLLECTORS_LIMITER_BREAKER_SECONDS = env.float("COLLECTORS_LIMITER_BREAKER_SECONDS", 5.0)
COLLECTORS_COUNTER_FLUSH_SECONDS = env.float("COLLECTORS_COUNTER_FLUSH_SECONDS", 2.0)
COLLECTORS_PREVIEW_MAX_INPUTS = env.int("COLLECTORS_PREVIEW_MAX_INPUTS", 300)
COLLECTORS_PREVIEW_TIME_BUDGET_SECONDS = env.float("COLLECTORS_PREVIEW_TIME_BUDGET_SECONDS", 20.0)
COLLECTORS_RELAY_QUEUE_SIZE = env.int("COLLECTORS_RELAY_QUEUE_SIZE", 10_000)
COLLECTORS_RELAY_LINGER_MS = env.int("COLLECTORS_RELAY_LINGER_MS", 20)
COLLECTORS_LEASE_SECONDS = env.float("COLLECTORS_LEASE_SECONDS", 150.0)
COLLECTORS_MAX_ATTEMPTS = env.int("COLLECTORS_MAX_ATTEMPTS", 5)
COLLECTORS_CAPTURE_MAX_AGE_SECONDS = env.float("COLLECTORS_CAPTURE_MAX_AGE_SECONDS", 24 * 3600.0)
COLLECTORS_RETRY_BASE_SECONDS = env.float("COLLECTORS_RETRY_BASE_SECONDS", 5.0)
COLLECTORS_RETRY_MAX_SECONDS = env.float("COLLECTORS_RETRY_MAX_SECONDS", 600.0)
COLLECTORS_BATCH_SIZE = env.int("COLLECTORS_BATCH_SIZE", 250)
COLLECTORS_BATCH_TIME_BUDGET_SECONDS = env.float(
    "COLLECTORS_BATCH_TIME_BUDGET_SECONDS", CELERY_TASK_SOFT_TIME_LIMIT * 0.5
)
COLLECTORS_SWEEP_SECONDS = env.float("COLLECTORS_SWEEP_SECONDS", 15.0)
COLLECTORS_SWEEP_MIN_AGE_SECONDS = env.float("COLLECTORS_SWEEP_MIN_AGE_SECONDS", 5.0)
COLLECTORS_SWEEP_ACCEPTED_AGE_SECONDS = env.float("COLLECTORS_SWEEP_ACCEPTED_AGE_SECONDS", 30.0)
COLLECTORS_SWEEP_LIMIT = env.int("COLLECTORS_SWEEP_LIMIT", 5000)

# Datasets (collectors_module/datasets): version snapshots and export archives.
DATASET_EXPORT_BATCH_SIZE = env.int("DATASET_EXPORT_BATCH_SIZE", 500)
DATASET_EXPORT_LEASE_SECONDS = env.float("DATASET_EXPORT_LEASE_SECONDS", 120.0)
DATASET_EXPORT_TIME_LIMIT = env.int("DATASET_EXPORT_TIME_LIMIT", 3600)
DATASET_EXPORT_TMP_DIR = env.str("DATASET_EXPORT_TMP_DIR", "") or None
DATASET_MAX_VERSION_INPUTS = env.int("DATASET_MAX_VERSION_INPUTS", 1_000_000)
# Beat re-sends dataset builds and exports nobody works on (a lost publish, a dead worker).
DATASET_SWEEP_SECONDS = env.float("DATASET_SWEEP_SECONDS", 60.0)

CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Kombu's Redis transport, except that an ack that fails while Redis is away frees its
    # prefetch slot (otherwise the consumer can stall for good after a broker restart).
    CELERY_BROKER_TRANSPORT = "collectors_module.capture.redis_transport:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 10,
        "retry_on_timeout": True,
    }
elif CELERY_BROKER_URL.startswith(("amqp://", "pyamqp://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
elif CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded broker for the quick start: folders on disk, no server to install.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "data_folder_processed": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        # The folder is polled: kombu's default of 1 s would be most of a capture's latency.
        "polling_interval": env.float("CELERY_FILESYSTEM_POLLING_SECONDS", 0.05),
    }
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 2,
}
CELERY_BEAT_SCHEDULE = {
    # Re-publishes captures the broker lost and reclaims expired leases (capture.tasks).
    "collectors-sweep": {
        "task": "collectors.sweep",
        "schedule": COLLECTORS_SWEEP_SECONDS,
    },
}

# --- operations: metrics, health, retention (collectors_module/ops, capture/retention.py) ----
# prometheus-client reads PROMETHEUS_MULTIPROC_DIR itself; declared here to document it and to
# create the folder. Set it (one folder per host, emptied when the host's services start) so
# every gunicorn worker, Celery child, agent and gRPC server of the host adds up in /metrics.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
METRICS_TOKEN = env.str("METRICS_TOKEN", "")  # bearer token for /metrics ("" = by address)
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", 1.0)
HEALTH_CACHE_SECONDS = env.float("HEALTH_CACHE_SECONDS", 2.0)
HEALTH_HEARTBEAT_SECONDS = env.float("HEALTH_HEARTBEAT_SECONDS", 10.0)
# Retention: terminal capture rows older than this many days (by finished_at) are deleted, and
# per-minute counters older than COUNTER_RETENTION_DAYS; 0 keeps them forever.
CAPTURE_RETENTION_DAYS = env.float("CAPTURE_RETENTION_DAYS", 30.0)
COUNTER_RETENTION_DAYS = env.float("COUNTER_RETENTION_DAYS", 90.0)
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", 500)
RETENTION_PAUSE_SECONDS = env.float("RETENTION_PAUSE_SECONDS", 0.02)
RETENTION_MAX_SECONDS = env.float("RETENTION_MAX_SECONDS", 50.0)
RETENTION_INTERVAL_SECONDS = env.float("RETENTION_INTERVAL_SECONDS", 600.0)
CELERY_BEAT_SCHEDULE["datasets-sweep"] = {
    "task": "datasets.sweep",
    "schedule": DATASET_SWEEP_SECONDS,
}
CELERY_BEAT_SCHEDULE["collectors-retention"] = {
    "task": "collectors.retention",
    "schedule": RETENTION_INTERVAL_SECONDS,
}

LOG_LEVEL = env.str("LOG_LEVEL", "INFO")
# "text" (one readable line) or "json" (one JSON object per line, core/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", "text")
LOG_REQUESTS = env.bool("LOG_REQUESTS", False)  # one access line per HTTP request
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every handler adds the request's context fields (core/logs.py) and scrubs key secrets from
    # what it writes (core/logscrub.py).
    "filters": {
        "context": {"()": "collectors_module.core.logs.ContextFilter"},
        "scrub_secrets": {"()": "collectors_module.core.logscrub.ScrubSecretsFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "collectors_module.core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context", "scrub_secrets"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": env.str("ROOT_LOG_LEVEL", "WARNING")},
    "loggers": {"collectors": {"level": LOG_LEVEL}},
}
