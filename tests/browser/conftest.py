"""Browser-flow fixtures: one real Celery worker and the flow's screenshot folder.

Chromium itself comes from tests/support/browser.py (`browser_context`, `page`).

The worker comes from the pipeline's `Workers` manager (tests/support/capture.py): it runs
`celery -A collectors_module worker` against this run's test database and broker and kills what it
started at teardown. Run the browser tests with their own Redis db, e.g.
`CELERY_BROKER_URL=redis://127.0.0.1:6379/10 REDIS_URL=redis://127.0.0.1:6379/10`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import screenshots_dir


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
    return screenshots_dir("collectors-flow")
