"""Writes to the capture engine's tables asked for by the collector resource."""

from __future__ import annotations

from django.utils import timezone

from . import counters
from .models import PENDING_STATES, Capture, CaptureState

DISCARD_REASON = "discarded: the user discarded pending captures when deactivating"


def captures_discard_pending(*, collector_id: int) -> int:
    """End every pending capture of the collector as `dropped` (reason `discarded`), counted.

    Run inside the transaction that deactivates the collector; a worker holding one of them
    cannot record its outcome afterwards (its fenced UPDATE finds the row no longer
    `processing`). Returns how many were discarded."""
    now = timezone.now()
    n = Capture.objects.filter(collector_id=collector_id, state__in=PENDING_STATES).update(
        state=CaptureState.DROPPED,
        reason=DISCARD_REASON,
        payload=None,
        lease_until=None,
        finished_at=now,
        updated_at=now,
    )
    counters.count(collector_id, "outcome:discarded", n)  # the rows are counted as dropped
    return n


def pending_of_collectors(collector_ids: list[int]) -> int:
    """Pending captures of these collectors (what deleting them discards)."""
    return Capture.objects.filter(collector_id__in=collector_ids, state__in=PENDING_STATES).count()
