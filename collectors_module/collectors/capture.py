"""The after-predict hook: match collectors, admit cheaply, write one outbox row per capture.

Order per (input, collector): caller rules -> random sample -> inline pre-queue workflow (on the
OUTPUT) -> payload size -> backlog caps -> rate limits -> one bounded INSERT (own savepoint,
`statement_timeout`/`lock_timeout` on PostgreSQL) -> publish after commit through the relay.
In servers the INSERT is done by the per-process writer thread (`writer.py`), in batches, so the
prediction waits on neither the database nor the broker.
Every drop is counted with its reason; nothing here ever raises into the prediction.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
import uuid

from clarifai_grpc.grpc.api import resources_pb2
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from collectors_module.core.errors import SC
from collectors_module.core.protojson import to_dict

from . import conf, counters, matching
from .limits import backlog, rate_limiter
from .models import COLLECTOR_ACTIVE, Capture, CaptureState, Collector

log = logging.getLogger("collectors.capture")

# Reasons a capture is dropped before acceptance (counted as `dropped:<reason>`).
SAMPLED_OUT = "sampled_out"
WRITE_TIMEOUT = "capture_write_timeout"
PAYLOAD_TOO_LARGE = "payload_too_large"
COLLECTOR_INACTIVE = "collector_inactive"
DUPLICATE = "duplicate"
ERROR = "error"
_TIMEOUT_SQLSTATES = {"57014", "55P03", "40P01"}  # query_canceled, lock_not_available, deadlock


def draw(request_id: str, input_index: int, collector_pk: int) -> float:
    """A deterministic uniform draw in [0, 1) per (request, input, collector)."""
    digest = hashlib.blake2b(
        f"{request_id}:{input_index}:{collector_pk}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


def _drop(entry_pk: int, reason: str) -> None:
    if reason == SAMPLED_OUT:
        counters.count(entry_pk, "sampled_out")
    elif reason.startswith("filtered_inline"):
        counters.count(entry_pk, reason[:48])
    else:
        counters.count(entry_pk, f"dropped:{reason}"[:48])


def _payload(event, index: int, data: resources_pb2.Data) -> bytes | None:
    for media in (data.image, data.video, data.audio):
        if media.base64:
            return bytes(media.base64)
    fetched = (event.fetched or {}).get(index)
    return bytes(fetched) if fetched else None


def _input_json(data: resources_pb2.Data) -> dict:
    clean = resources_pb2.Data()
    clean.CopyFrom(data)
    for name in ("image", "video", "audio"):
        if clean.HasField(name):
            getattr(clean, name).ClearField("base64")
    return to_dict(clean, compact=True)


def _inline_filter(entry, output, event, index: int, data) -> tuple[bool, str, bool]:
    """(keep, filtered_by, deferred): run an operator-only pre-queue workflow on the output."""
    wf = entry.pre_queue_workflow
    if wf is None:
        return True, "", False
    if not entry.pre_queue_inline:
        return True, "", True  # needs real models: the worker runs it
    try:
        from collectors_module.workflows.executor import evaluate_inline

        keep, filtered_by = evaluate_inline(
            wf,
            output.data,
            source_model_version=event.model_version,
            seed_key=f"{event.request_id}:{index}:{entry.pk}",
            input_data=data,  # metadata filters read the input's metadata
        )
    except Exception:
        log.exception(
            "inline pre-queue workflow failed (collector %s); deferring to the worker", entry.pk
        )
        return True, "", True
    return bool(keep), filtered_by or wf.public_id, False


def on_prediction(event) -> None:
    """After-predict hook (see module docstring). Never raises, never blocks on the broker."""
    try:
        mv = event.model_version
        caller = event.caller
        if mv is None or caller is None:
            return
        entries = matching.candidates(mv.pk)
        if not entries:
            return
        allowed = [e for e in entries if matching.caller_allowed(e, caller.pk)]
        if not allowed:
            return
        _admit_and_write(event, allowed)
    except Exception:
        log.exception("capture hook failed (request %s)", getattr(event, "request_id", "?"))


def _admit_and_write(event, entries) -> None:
    rows: list[Capture] = []
    now = timezone.now()
    max_bytes = conf.max_payload_bytes()
    for index, (inp, output) in enumerate(zip(event.inputs, event.outputs, strict=False)):
        if output.status.code != SC.SUCCESS:
            continue  # no prediction for this input: nothing to collect
        data = inp.data
        for entry in entries:
            counters.count(entry.pk, "matched")
            try:
                if entry.sample > 0 and draw(event.request_id, index, entry.pk) >= entry.sample:
                    _drop(entry.pk, SAMPLED_OUT)
                    continue
                keep, filtered_by, deferred = _inline_filter(entry, output, event, index, data)
                if not keep:
                    _drop(entry.pk, f"filtered_inline:{filtered_by}")
                    continue
                payload = _payload(event, index, data)
                if payload is not None and len(payload) > max_bytes:
                    _drop(entry.pk, PAYLOAD_TOO_LARGE)
                    continue
                reason = backlog.check(entry) or rate_limiter.check(entry)
                if reason:
                    _drop(entry.pk, reason)
                    continue
                backlog.note_accepted(entry.pk)  # reserve a place (given back if not written)
                rows.append(
                    Capture(
                        id=uuid.uuid4(),
                        collector_id=entry.pk,
                        state=CaptureState.ACCEPTED,
                        caller_id=event.caller.pk,
                        request_id=str(event.request_id)[:64],
                        input_index=index,
                        input_data=_input_json(data),
                        payload=payload,
                        outputs=[to_dict(output, compact=True)],
                        pre_queue_pending=deferred,
                        created_at=now,
                        updated_at=now,
                        next_attempt_at=now,
                    )
                )
            except Exception:
                log.exception("capture admission failed (collector %s)", entry.pk)
                _drop(entry.pk, ERROR)
    if rows:
        if conf.capture_writer_thread():
            from .writer import QUEUE_FULL, get_writer

            writer = get_writer()
            for row in rows:
                if not writer.put(row):
                    _drop(row.collector_id, QUEUE_FULL)
                    backlog.note_accepted(row.collector_id, -1)
        else:
            _write(rows)


def _classify(exc: Exception) -> str:
    if isinstance(exc, IntegrityError):
        return DUPLICATE
    cause = exc.__cause__ or exc
    if getattr(cause, "sqlstate", None) in _TIMEOUT_SQLSTATES:
        return WRITE_TIMEOUT
    if isinstance(exc, OperationalError) and "timeout" in str(exc).lower():
        return WRITE_TIMEOUT
    return ERROR


def _write(rows: list[Capture]) -> None:
    """Insert the accepted rows with bounded waits, then publish them after commit.

    Outside a transaction on PostgreSQL (the normal predict request): one INSERT ... SELECT over
    this thread's own autocommit connection, whose statement and lock timeouts are set at connect,
    so a capture costs one round trip and never touches the request's connection. Otherwise (a
    caller inside a transaction, tests, SQLite): a savepoint on the request's connection.
    """
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and conf.capture_own_connection()
    ):
        _write_own_connection(rows)
    else:
        _write_savepoint(rows)


def _write_savepoint(rows: list[Capture]) -> None:
    collector_pks = sorted({r.collector_id for r in rows})
    outer = connection.in_atomic_block
    try:
        with transaction.atomic():
            restore = None
            if connection.vendor == "postgresql":
                sync = "off" if conf.capture_async_commit() else None
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
                        "current_setting('synchronous_commit'), "
                        "set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true), "
                        "set_config('synchronous_commit', COALESCE(%s::text, current_setting('synchronous_commit')), true), "
                        f"ARRAY(SELECT id FROM {connection.ops.quote_name(Collector._meta.db_table)} "
                        "WHERE id = ANY(%s) AND status = %s)",
                        [
                            f"{conf.insert_statement_timeout_ms()}ms",
                            f"{conf.insert_lock_timeout_ms()}ms",
                            sync,
                            collector_pks,
                            COLLECTOR_ACTIVE,
                        ],
                    )
                    old_statement, old_lock, old_sync, _, _, _, active = cursor.fetchone()
                    restore = (old_statement, old_lock, old_sync)
                active = set(active or ())
            else:
                active = set(
                    Collector.objects.filter(
                        pk__in=collector_pks, status=COLLECTOR_ACTIVE
                    ).values_list("pk", flat=True)
                )
            kept = [r for r in rows if r.collector_id in active]
            if kept:
                Capture.objects.bulk_create(kept, ignore_conflicts=True)  # same request+input: once
            if restore is not None and outer:
                # SET LOCAL outlives a released savepoint: give the caller's transaction its values back.
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true), "
                        "set_config('synchronous_commit', %s, true)",
                        list(restore),
                    )
    except Exception as exc:
        reason = _classify(exc)
        if reason == ERROR:
            log.exception("capture insert failed")
        else:
            log.warning("capture insert dropped: %s", reason)
        for r in rows:
            _drop(r.collector_id, reason)
            backlog.note_accepted(r.collector_id, -1)
        return
    for r in rows:
        if r.collector_id in active:
            counters.count(r.collector_id, "accepted")
        else:  # deactivated after the index was built
            _drop(r.collector_id, COLLECTOR_INACTIVE)
            backlog.note_accepted(r.collector_id, -1)
    ids = [r.id for r in kept]
    if ids:
        transaction.on_commit(lambda: _publish(ids))


class _OwnConnection(threading.local):
    conn = None
    key: tuple | None = None
    pid: int | None = None
    retry_at: float = 0.0


_own = _OwnConnection()
_all_own: set = set()  # every thread's capture connection, so they can all be closed
_all_own_lock = threading.Lock()
_CAPTURE_FIELDS = list(Capture._meta.concrete_fields)


def _own_connection():
    """This thread's capture connection (autocommit, timeouts in the session), or None while a
    recent connect failure is cooling down."""
    key = (conf.insert_statement_timeout_ms(), conf.insert_lock_timeout_ms(), conf.capture_async_commit(),
           connection.settings_dict["NAME"])  # fmt: skip
    if _own.conn is not None and (_own.key != key or _own.pid != os.getpid() or _own.conn.closed):
        _close_own()
    if _own.conn is None:
        if time.monotonic() < _own.retry_at:
            return None
        import psycopg

        params = connection.get_connection_params()
        for name in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(name, None)
        options = f"-c statement_timeout={key[0]} -c lock_timeout={key[1]}"
        if key[2]:
            options += " -c synchronous_commit=off"
        params["options"] = f"{params.get('options', '')} {options}".strip()
        params["connect_timeout"] = 2
        params["application_name"] = f"{params.get('application_name', 'collectors')}-capture"[:63]
        try:
            _own.conn = psycopg.connect(**params, autocommit=True)
        except Exception:
            _own.retry_at = time.monotonic() + 1.0
            raise
        with _all_own_lock:
            _all_own.add(_own.conn)
        _own.key, _own.pid = key, os.getpid()
    return _own.conn


def _close_own() -> None:
    conn, _own.conn = _own.conn, None
    if conn is not None:
        with _all_own_lock:
            _all_own.discard(conn)
        with contextlib.suppress(Exception):
            conn.close()


def close_own_connections() -> None:
    """Close every thread's capture connection (tests, before the database goes away)."""
    with _all_own_lock:
        conns = list(_all_own)
        _all_own.clear()
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()


@functools.lru_cache(maxsize=256)
def _insert_sql(n: int) -> str:
    """One statement: which collectors are active, and insert the rows of those (no duplicate)."""
    table = connection.ops.quote_name(Capture._meta.db_table)
    collectors = connection.ops.quote_name(Collector._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _CAPTURE_FIELDS)
    one = (
        "(" + ", ".join(f"%s::{f.db_type(connection).split('(')[0]}" for f in _CAPTURE_FIELDS) + ")"
    )
    return (
        f"WITH active AS (SELECT id FROM {collectors} WHERE id = ANY(%s) AND status = {COLLECTOR_ACTIVE}), "
        f"ins AS (INSERT INTO {table} ({columns}) SELECT v.* FROM (VALUES {', '.join([one] * n)}) "
        f"AS v({columns}) WHERE v.collector_id IN (SELECT id FROM active) ON CONFLICT DO NOTHING RETURNING id) "
        "SELECT 'a', id::text FROM active UNION ALL SELECT 'i', id::text FROM ins"
    )


def _write_own_connection(rows: list[Capture]) -> None:
    params: list = [sorted({r.collector_id for r in rows})]
    for r in rows:
        params.extend(
            f.get_db_prep_save(getattr(r, f.attname), connection) for f in _CAPTURE_FIELDS
        )
    try:
        conn = _own_connection()
        if conn is None:
            raise OperationalError("capture connection cooling down after a failure")
        with conn.cursor() as cursor:
            cursor.execute(_insert_sql(len(rows)), params)
            result = cursor.fetchall()
    except Exception as exc:
        if getattr(exc, "sqlstate", None) in _TIMEOUT_SQLSTATES:
            reason = WRITE_TIMEOUT  # the connection is still good
        else:
            reason = ERROR
            log.warning("capture insert failed: %s: %s", type(exc).__name__, exc)
            _close_own()  # unknown state: start over with a fresh connection
        for r in rows:
            _drop(r.collector_id, reason)
            backlog.note_accepted(r.collector_id, -1)
        return
    active = {int(v) for kind, v in result if kind == "a"}
    written = {v for kind, v in result if kind == "i"}
    ids = []
    for r in rows:
        if str(r.id) in written:
            counters.count(r.collector_id, "accepted")
            ids.append(r.id)
        else:
            # Deactivated after the index was built, or the same request and input again.
            _drop(r.collector_id, DUPLICATE if r.collector_id in active else COLLECTOR_INACTIVE)
            backlog.note_accepted(r.collector_id, -1)
    if ids:
        _publish(ids)


def _publish(ids) -> None:
    try:
        from . import relay
    except ImportError:
        return  # no relay yet: the sweeper publishes accepted rows
    for capture_id in ids:
        try:
            relay.enqueue_publish(capture_id)
        except Exception:
            log.exception("publishing capture %s failed; the sweeper will pick it up", capture_id)
