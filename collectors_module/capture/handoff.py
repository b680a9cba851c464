"""Handing admitted captures over from the serving process (the request thread's last step).

Spool (the default): one `os.write` of the encoded frames to this process's spool segment and a
wake-up datagram to the capture agent; a few microseconds, no database, no broker, no JSON.
When the agent is down the frames wait in the spool (deferred, up to COLLECTORS_SPOOL_MAX_BYTES
per process) and the agent commits them when it is back; beyond the cap new captures are dropped
with the counted reason `spool_full`.

Inline: the request thread inserts the rows itself (`outbox.write`, short timeouts) and publishes
them after commit through this process's relay thread. For tests, and for a deployment that
would rather pay the insert on the request than run an agent.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import transaction

from collectors_module.core.faults import fault_point

from . import conf, counters, outbox, relay, spool
from .limits import backlog

log = logging.getLogger("collectors.handoff")

SPOOL_FULL = "spool_full"
SPOOL_ERROR = "spool_error"
# A full spool (its agent down for long) refuses every capture: one warning per reason this
# often, with the number dropped since, not one per prediction (logging each one cost the gRPC
# server a third of its throughput under load). Every drop is counted either way.
WARN_EVERY_SECONDS = 10.0
_warned: dict[str, tuple[float, int]] = {}
_warn_lock = threading.Lock()


def _warn(reason: str, what: str, exc: Exception, n: int) -> None:
    now = time.monotonic()
    with _warn_lock:
        last, since = _warned.get(reason, (float("-inf"), 0))
        since += n
        if now - last < WARN_EVERY_SECONDS:
            _warned[reason] = (last, since)
            return
        _warned[reason] = (now, 0)
    log.warning(
        "%s (%s); %d capture(s) dropped as %s since the last such warning", what, exc, since, reason
    )


def _drop(records: list[spool.Record], reason: str) -> None:
    for r in records:
        counters.count(r.collector_id, f"dropped:{reason}")
        backlog.note_accepted(r.collector_id, -1)


def hand_off(records: list[spool.Record]) -> None:
    """Never raises: a capture that cannot be handed over is dropped with a counted reason."""
    if conf.handoff() == conf.HANDOFF_INLINE:
        _inline(records)
        return
    try:
        writer = spool.writer(
            conf.spool_dir_setting(),
            segment_bytes=conf.spool_segment_bytes(),
            max_bytes=conf.spool_max_bytes(),
        )
        writer.append([spool.encode(r) for r in records])
        fault_point("after_spool")  # the chaos harness SIGKILLs a web process right here
    except spool.SpoolFull as exc:
        _warn(SPOOL_FULL, "capture spool full", exc, len(records))
        _drop(records, SPOOL_FULL)
        return
    except Exception as exc:
        _warn(SPOOL_ERROR, "capture spool write failed", exc, len(records))
        _drop(records, SPOOL_ERROR)
        return
    for r in records:
        counters.count(r.collector_id, "spooled")


def _inline(records: list[spool.Record]) -> None:
    try:
        written = outbox.write(
            records,
            statement_timeout_ms=conf.insert_statement_timeout_ms(),
            lock_timeout_ms=conf.insert_lock_timeout_ms(),
        )
    except Exception as exc:
        reason = outbox.classify(exc)
        if reason == outbox.ERROR:
            log.exception("capture insert failed")
        else:
            log.warning("capture insert dropped: %s", reason)
        _drop(records, reason)
        return
    for pk, _reason in written.dropped:
        backlog.note_accepted(pk, -1)
    ids = written.accepted + written.again
    if ids:
        transaction.on_commit(lambda: relay.enqueue_publish_many(ids))
