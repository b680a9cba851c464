"""Browser-test fixtures: Debian's chromium through Playwright, and one real Celery worker.

The worker comes from the pipeline's `Workers` manager (tests/support/capture.py): it runs
`celery -A collectors_module worker` against this run's test database and broker and kills what it
started at teardown. Run the browser tests with their own Redis db, e.g.
`CELERY_BROKER_URL=redis://127.0.0.1:6379/10 REDIS_URL=redis://127.0.0.1:6379/10`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-for-tests-123"


@pytest.fixture
def browser_context():
    """A fresh chromium context (1280x900); `context.problems` collects console errors."""
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    # Playwright's sync API keeps an event loop in this thread; the test also uses the ORM.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        context.problems = problems
        context.on("console", lambda m: m.type == "error" and problems.append(m.text))
        try:
            yield context
        finally:
            context.close()
            browser.close()
            # ORM calls made while Playwright's loop ran may have opened their own connection.
            from django.db import connections

            connections.close_all()


@pytest.fixture
def media_root(settings, tmp_path):
    """Blob storage for this test, shared by the live server and the worker."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def worker(transactional_db, tmp_path, settings, media_root):
    """One real Celery worker process (solo pool) for this test's database and broker."""
    from tests.support.capture import Workers, flush_redis

    broker = settings.CELERY_BROKER_URL
    flush_redis(broker)
    manager = Workers(tmp_path / "workers", broker, settings.REDIS_URL)
    manager.base.mkdir()
    started = None
    try:
        started = manager.start(pool="solo", concurrency=1, env={"MEDIA_ROOT": str(media_root)})
        yield started
    finally:
        manager.stop_all()
        if started is not None:
            print(f"--- worker log (tail) ---\n{started.log()}")  # shown when the test fails


@pytest.fixture
def shots_dir() -> Path:
    folder = Path(__file__).resolve().parents[2] / "screenshots" / "collectors-flow"
    if folder.exists():
        for old in folder.glob("*.png"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
