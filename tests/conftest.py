"""Fixtures shared by every test: users, apps, keys and a JSON API client (real PostgreSQL)."""

from __future__ import annotations

import contextlib
import json

import pytest
from django.test import Client

# Shared fixtures: Chromium, worker and capture agent processes and collectors, the live gRPC
# server, module installations, logged-in page clients.
pytest_plugins = [
    "tests.support.browser",
    "tests.support.capture",
    "tests.support.grpc",
    "tests.support.modules",
    "tests.support.pages",
]


class Api:
    """Calls the REST API like curl would: JSON bodies, `Authorization: Key <secret>`."""

    def __init__(self, client: Client):
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        body=None,
        key: str | None = None,
        raw: bytes | None = None,
        headers: dict | None = None,
    ):
        extra = {}
        if key is not None:
            extra["HTTP_AUTHORIZATION"] = f"Key {key}"
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = (
            getattr(self.client, method.lower())(
                path, data=data, content_type="application/json", **extra
            )
            if method.upper() != "GET"
            else self.client.get(path, data=body or {}, **extra)
        )
        try:
            payload = response.json()
        except ValueError:
            payload = {"_raw": response.content[:500]}
        payload["_http"] = response.status_code
        return payload

    def get(self, path, params=None, key=None, **kw):
        return self.call("GET", path, body=params, key=key, **kw)

    def post(self, path, body=None, key=None, **kw):
        return self.call("POST", path, body=body, key=key, **kw)

    def patch(self, path, body=None, key=None, **kw):
        return self.call("PATCH", path, body=body, key=key, **kw)

    def delete(self, path, body=None, key=None, **kw):
        return self.call("DELETE", path, body=body, key=key, **kw)


@pytest.fixture
def api(client) -> Api:
    return Api(client)


@pytest.fixture
def make_user(db):
    from collectors_module.accounts.services import user_create

    def make(
        user_id: str = "alice", plan: str = "professional", password: str = "pw-for-tests-123"
    ):
        user, _ = user_create(user_id=user_id, password=password, plan=plan)
        return user

    return make


@pytest.fixture
def make_app(db):
    from collectors_module.applications.services import app_create

    def make(owner, app_id: str = "app1", **kw):
        return app_create(owner=owner, app_id=app_id, **kw)

    return make


@pytest.fixture
def make_key(db):
    from collectors_module.accounts.services import key_create

    def make(owner, scopes=("All",), app=None, description: str = "test key"):
        return key_create(owner=owner, scopes=list(scopes), app=app, description=description)

    return make


@pytest.fixture
def alice(make_user, make_app, make_key):
    """A Professional user with an app `app1` and an `All`-scoped PAT (secret in .secret)."""
    user = make_user("alice")
    app = make_app(user, "app1")
    created = make_key(user)
    return type(
        "Tenant", (), {"user": user, "app": app, "key": created.key, "secret": created.secret}
    )


@pytest.fixture
def bob(make_user, make_app, make_key):
    user = make_user("bob")
    app = make_app(user, "bobapp")
    created = make_key(user)
    return type(
        "Tenant", (), {"user": user, "app": app, "key": created.key, "secret": created.secret}
    )


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Every test starts with empty in-process caches: a test's rows are rolled back without the
    commit that would tell the caches (triggers fire at commit)."""
    from collectors_module.capture import counters, limits, matching
    from collectors_module.core import generations

    def reset():
        generations.reset_all()
        matching.invalidate()
        limits.rate_limiter.reset()
        limits.backlog.reset()
        counters.discard()

    reset()
    yield
    reset()


@pytest.fixture(scope="session", autouse=True)
def _clean_limiter_redis():
    """Rate-limit counters live in Redis for up to a day, keyed by collector pk; a previous run
    on this machine must not count against this run's collectors."""
    import redis
    from django.conf import settings

    url = settings.COLLECTORS_LIMITER_REDIS_URL
    if url and url != settings.CELERY_BROKER_URL:
        with contextlib.suppress(redis.RedisError):  # tests that need Redis will say so
            redis.Redis.from_url(url, socket_timeout=2).flushdb()
