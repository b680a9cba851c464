"""Retention deletes exactly the finished captures and the counters past their age, in batches,
never a row in flight nor one another transaction holds, and the collectors' totals stay whole."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from collectors_module.capture import counters, retention
from collectors_module.capture.models import Capture, CaptureState, CollectorCounter
from collectors_module.capture.selectors import collector_stats

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()
DAY = timedelta(days=1)


def row(collector, state, *, finished_ago=None, created_ago=timedelta(days=40)):
    return Capture.objects.create(
        collector=collector,
        request_id=uuid.uuid4().hex,
        state=state,
        created_at=NOW - created_ago,
        finished_at=(NOW - finished_ago) if finished_ago is not None else None,
        lease_until=NOW + timedelta(minutes=5) if state == CaptureState.PROCESSING else None,
    )


def test_deletes_exactly_the_finished_rows_past_their_age(alice, make_collector):
    collector = make_collector(alice)
    old_terminal = [
        row(collector, state, finished_ago=timedelta(days=31))
        for state in (
            CaptureState.INGESTED,
            CaptureState.FILTERED,
            CaptureState.FAILED,
            CaptureState.EXPIRED,
            CaptureState.DROPPED,
        )
        for _ in range(3)
    ]
    just_past = row(collector, CaptureState.INGESTED, finished_ago=30 * DAY + timedelta(seconds=1))
    keep = [
        row(collector, CaptureState.INGESTED, finished_ago=30 * DAY - timedelta(seconds=1)),
        row(collector, CaptureState.FAILED, finished_ago=DAY),
        # in flight, however old: never deleted
        row(collector, CaptureState.ACCEPTED, created_ago=400 * DAY),
        row(collector, CaptureState.PROCESSING, created_ago=400 * DAY),
        row(collector, CaptureState.RETRY, created_ago=400 * DAY),
        # in flight with a stale finished_at (a retried row): the state decides, not the time
        row(collector, CaptureState.RETRY, finished_ago=100 * DAY),
        # terminal without a finish time: not known to be old
        row(collector, CaptureState.DROPPED),
    ]
    before = collector_stats(collector)

    result = retention.purge(now=NOW, capture_days=30, counter_days=0, batch=4, pause=0)

    assert result == {"captures": len(old_terminal) + 1, "counters": 0, "done": True}
    remaining = set(Capture.objects.values_list("pk", flat=True))
    assert remaining == {c.pk for c in keep}
    assert just_past.pk not in remaining
    counters.flush()
    after = collector_stats(collector)
    for key in ("accepted", "ingested", "filtered", "failed", "pending", "dropped", "expired"):
        assert after[key] == before[key], key


def test_a_row_another_transaction_holds_is_left_for_the_next_run(alice, make_collector):
    collector = make_collector(alice)
    held = row(collector, CaptureState.INGESTED, finished_ago=60 * DAY)
    free = row(collector, CaptureState.INGESTED, finished_ago=60 * DAY)
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Capture.objects.select_for_update().filter(pk=held.pk).first()
            locked.set()
            release.wait(30)
        connection.close()

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert locked.wait(10)
        first = retention.purge(now=NOW, capture_days=30, counter_days=0, batch=10, pause=0)
        assert first["captures"] == 1
        assert set(Capture.objects.values_list("pk", flat=True)) == {held.pk}
    finally:
        release.set()
        t.join(10)
    second = retention.purge(now=NOW, capture_days=30, counter_days=0, batch=10, pause=0)
    assert second["captures"] == 1
    assert not Capture.objects.filter(pk__in=[held.pk, free.pk]).exists()


def test_counters_past_their_age_are_deleted_and_zero_keeps_everything(alice, make_collector):
    collector = make_collector(alice)
    minute = NOW.replace(second=0, microsecond=0)
    ages = [0, 1, 89, 91, 200]
    for i, days in enumerate(ages):
        for metric in ("matched", "sampled_out"):
            CollectorCounter.objects.create(
                collector=collector,
                metric=metric,
                bucket=minute - timedelta(days=days, minutes=i),
                count=5,
            )
    old = row(collector, CaptureState.INGESTED, finished_ago=365 * DAY)

    assert retention.purge(now=NOW, capture_days=0, counter_days=0) == {
        "captures": 0,
        "counters": 0,
        "done": True,
    }
    result = retention.purge(now=NOW, capture_days=0, counter_days=90, batch=1, pause=0)
    assert result["counters"] == 4  # the 91- and 200-day-old minutes, two metrics each
    assert sorted(
        (NOW - b).days for b in CollectorCounter.objects.values_list("bucket", flat=True)
    ) == sorted([0, 0, 1, 1, 89, 89])
    assert Capture.objects.filter(pk=old.pk).exists()  # capture retention was off


def test_a_run_stops_at_its_time_budget_and_the_next_goes_on(alice, make_collector):
    collector = make_collector(alice)
    for _ in range(6):
        row(collector, CaptureState.INGESTED, finished_ago=60 * DAY)
    first = retention.purge(now=NOW, capture_days=30, counter_days=0, batch=2, max_seconds=0)
    assert first["done"] is False
    assert first["captures"] == 0
    second = retention.purge(now=NOW, capture_days=30, counter_days=0, batch=2, pause=0)
    assert second == {"captures": 6, "counters": 0, "done": True}


def test_beat_runs_retention_and_the_indexes_exist():
    assert django_settings.CELERY_BEAT_SCHEDULE["collectors-retention"]["task"] == (
        "collectors.retention"
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN "
            "('capture_terminal_finished_idx', 'collectorcounter_bucket_idx')"
        )
        found = dict(cur.fetchall())
    assert set(found) == {"capture_terminal_finished_idx", "collectorcounter_bucket_idx"}
    assert "WHERE" in found["capture_terminal_finished_idx"]  # partial: terminal rows only


def test_the_indexes_are_built_without_blocking_capture_writes():
    out = io.StringIO()
    call_command("sqlmigrate", "capture", "0003", stdout=out)
    sql = out.getvalue()
    assert sql.count("CREATE INDEX CONCURRENTLY") == 2  # captures keep being written meanwhile
    assert "BEGIN" not in sql  # outside a transaction, as CONCURRENTLY requires
