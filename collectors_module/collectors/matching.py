"""In-process index of active collectors by source model version, and the caller rules.

`candidates(model_version_pk)` is a dict lookup. The index is rebuilt when this process changed a
collector (`invalidate()`), when a cheap change check (count, max pk and sum of revisions of the
collectors, plus the pre-queue workflows' change times) differs (at most once per
`COLLECTORS_INDEX_CHECK_SECONDS` per process), and at least every `COLLECTORS_INDEX_MAX_AGE_SECONDS`.
A prediction on a model with no collector costs one dict lookup (and the amortised check).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Sum

from . import conf

log = logging.getLogger("collectors.matching")


@dataclass(frozen=True)
class Entry:
    """What admission needs to know about one active collector (no ORM access at match time)."""

    pk: int
    public_id: str
    app_pk: int
    owner_id: int
    caller_id: int | None  # None = any caller (owner owns the source model)
    model_owner_id: int
    sample: float  # 0 = not set
    pre_queue_workflow: Any  # workflows.models.Workflow with nodes loaded, or None
    pre_queue_inline: bool
    max_per_minute: int
    max_per_hour: int
    max_per_day: int
    max_pending: int

    @property
    def has_rate_limits(self) -> bool:
        return bool(self.max_per_minute or self.max_per_hour or self.max_per_day)


@dataclass
class _State:
    by_mv: dict
    token: tuple | None = None
    checked_at: float = -1e9
    built_at: float = -1e9
    dirty: bool = True


_state = _State(by_mv={})
_lock = threading.Lock()
_grants: dict[tuple[int, int], tuple[bool, float]] = {}
_grants_lock = threading.Lock()


def invalidate() -> None:
    """Forget the index (this process); the next prediction rebuilds it. Cheap, never raises."""
    _state.dirty = True
    with _grants_lock:
        _grants.clear()


def candidates(model_version_pk: int) -> tuple[Entry, ...]:
    """Active collectors whose source is this model version (caller rules not applied yet)."""
    now = time.monotonic()
    st = _state
    if st.dirty or (st.token is None and now - st.checked_at >= conf.index_check_seconds()):
        _refresh(now)  # changed in this process (or never built): rebuild now
        _ensure_checker()
    elif not _ensure_checker() and (
        now - st.checked_at >= conf.index_check_seconds()
        or now - st.built_at >= conf.index_max_age_seconds()
    ):
        _refresh(now)  # no checker thread: check for other processes' changes here
    return _state.by_mv.get(model_version_pk, ())


class _Checker:
    thread: threading.Thread | None = None
    pid: int | None = None
    stop: threading.Event | None = None


_checker = _Checker()
_checker_lock = threading.Lock()


def _checker_running() -> bool:
    t = _checker.thread
    return t is not None and _checker.pid == os.getpid() and t.is_alive()


def _ensure_checker() -> bool:
    """Start this process's checker thread when enabled; True when it is running."""
    if _checker_running():
        return True
    if not conf.index_thread_enabled():
        return False
    with _checker_lock:
        if not _checker_running():
            _checker.stop = threading.Event()
            _checker.pid = os.getpid()
            _checker.thread = threading.Thread(
                target=_check_loop, args=(_checker.stop,), name="collector-index", daemon=True
            )
            _checker.thread.start()
    return True


def _check_loop(stop: threading.Event) -> None:
    from django.db import close_old_connections

    try:
        while not stop.wait(max(0.05, conf.index_check_seconds())):
            try:
                close_old_connections()
                now = time.monotonic()
                st = _state
                if (
                    now - st.checked_at >= conf.index_check_seconds()
                    or now - st.built_at >= conf.index_max_age_seconds()
                ):
                    _refresh(now)
            except Exception:  # pragma: no cover - keep checking
                log.exception("collector index checker")
    finally:
        connection.close()


def stop_checker(timeout: float = 5.0) -> None:
    """Stop this process's checker thread (tests; before the database goes away)."""
    with _checker_lock:
        thread, stop = _checker.thread, _checker.stop
        _checker.thread = _checker.stop = None
    if stop is not None:
        stop.set()
    if thread is not None and thread.is_alive():
        thread.join(timeout)


def _refresh(now: float) -> None:
    if not _lock.acquire(blocking=False):
        return  # another thread is refreshing: use the current index meanwhile
    try:
        st = _state
        dirty = st.dirty
        with _guard():
            token = _token()
            if dirty or token != st.token or now - st.built_at >= conf.index_max_age_seconds():
                st.dirty = False
                by_mv = _build()
                st.by_mv, st.token, st.built_at = by_mv, token, now
        st.checked_at = now
    except Exception:
        log.exception("collector index refresh failed; keeping the previous index")
        _state.checked_at = now
    finally:
        _lock.release()


class _guard:
    """Run the index queries in a savepoint when the caller is inside a transaction, so a failing
    query cannot break the caller's transaction."""

    def __enter__(self):
        self._atomic = transaction.atomic() if connection.in_atomic_block else None
        if self._atomic is not None:
            self._atomic.__enter__()

    def __exit__(self, *exc):
        if self._atomic is not None:
            return self._atomic.__exit__(*exc)
        return False


def _token() -> tuple:
    from collectors_module.workflows.models import Workflow

    from .models import COLLECTOR_ACTIVE, Collector

    agg = Collector.objects.aggregate(n=Count("pk"), m=Max("pk"), r=Sum("revision"))
    wf_ids = Collector.objects.filter(
        status=COLLECTOR_ACTIVE, pre_queue_workflow__isnull=False
    ).values("pre_queue_workflow_id")
    wf = Workflow.objects.filter(pk__in=wf_ids).aggregate(n=Count("pk"), m=Max("modified_at"))
    return (agg["n"], agg["m"], agg["r"], wf["n"], wf["m"])


def _is_inline(workflow, model_version) -> bool:
    try:
        from collectors_module.workflows.executor import is_inline
    except ImportError:
        return False  # no executor yet: the worker runs the pre-queue workflow
    try:
        return bool(is_inline(workflow, model_version))
    except Exception:
        log.exception("is_inline failed for workflow %s", getattr(workflow, "pk", None))
        return False


def _build() -> dict[int, tuple[Entry, ...]]:
    from django.db.models import Prefetch

    from collectors_module.workflows.models import WorkflowNode

    from .models import COLLECTOR_ACTIVE, Collector

    qs = (
        Collector.objects.filter(status=COLLECTOR_ACTIVE)
        .select_related(
            "app",
            "source_model_version",
            "source_model_version__model",
            "source_model_version__model__app",
            "pre_queue_workflow",
        )
        .prefetch_related(
            Prefetch(
                "pre_queue_workflow__nodes",
                queryset=WorkflowNode.objects.select_related(
                    "model_version", "model_version__model"
                ),
            )
        )
    )
    by_mv: dict[int, list[Entry]] = {}
    for c in qs:
        mv = c.source_model_version
        wf = c.pre_queue_workflow
        entry = Entry(
            pk=c.pk,
            public_id=c.public_id,
            app_pk=c.app_id,
            owner_id=c.app.owner_id,
            caller_id=c.caller_id,
            model_owner_id=mv.model.app.owner_id,
            sample=float(c.pre_queue_random_sample or 0.0),
            pre_queue_workflow=wf,
            pre_queue_inline=_is_inline(wf, mv) if wf is not None else False,
            max_per_minute=c.max_per_minute,
            max_per_hour=c.max_per_hour,
            max_per_day=c.max_per_day,
            max_pending=c.max_pending,
        )
        by_mv.setdefault(c.source_model_version_id, []).append(entry)
    return {k: tuple(v) for k, v in by_mv.items()}


def grant_active(*, grantor_id: int, grantee_id: int) -> bool:
    """Has `grantor` (the caller) an active capture grant to `grantee`? Cached for <= ~1 s."""
    now = time.monotonic()
    key = (grantor_id, grantee_id)
    hit = _grants.get(key)
    if hit is not None and now - hit[1] < conf.grant_cache_seconds():
        return hit[0]
    from collectors_module.accounts.models import CaptureGrant

    with _guard():
        ok = CaptureGrant.objects.filter(
            grantor_id=grantor_id, grantee_id=grantee_id, revoked_at__isnull=True
        ).exists()
    with _grants_lock:
        if len(_grants) > 10_000:
            _grants.clear()
        _grants[key] = (ok, now)
    return ok


def caller_allowed(entry: Entry, caller_id: int) -> bool:
    """The caller rules of DESIGN.md: the caller named by the collector, who is its owner or has
    granted capture to the owner; or any caller when the owner owns the source model."""
    if entry.caller_id is None:
        return entry.model_owner_id == entry.owner_id
    if entry.caller_id != caller_id:
        return False
    if caller_id == entry.owner_id:
        return True
    return grant_active(grantor_id=caller_id, grantee_id=entry.owner_id)


def match(model_version_pk: int, caller_id: int) -> list[Entry]:
    """Active collectors that may capture this caller's prediction on this model version."""
    entries = candidates(model_version_pk)
    if not entries:
        return []
    return [e for e in entries if caller_allowed(e, caller_id)]
