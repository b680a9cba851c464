"""In-process index of active collectors by source model version, and the caller rules.

`candidates(model_version_pk)` is a dict lookup. The index is rebuilt when a table it is built
from changed in any process (the change generations of `core.generations`: collectors,
workflows and their nodes, models and versions, apps, users), and at least every
`COLLECTORS_INDEX_MAX_AGE_SECONDS`. In servers the background thread rebuilds it; the prediction
only reads the current one. A prediction on a model with no collector costs one dict lookup.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Prefetch

from collectors_module.accounts.models import CaptureGrant, User
from collectors_module.applications.models import App
from collectors_module.collectors.models import COLLECTOR_ACTIVE, Collector
from collectors_module.core import generations
from collectors_module.inference.models import Model, ModelVersion
from collectors_module.workflows.executor import is_inline
from collectors_module.workflows.models import Workflow, WorkflowNode

from . import conf

log = logging.getLogger("collectors.matching")

INDEX_TABLES = generations.tables_of(
    Collector, Workflow, WorkflowNode, Model, ModelVersion, App, User
)
GRANT_TABLES = generations.tables_of(CaptureGrant)


@dataclass(frozen=True)
class Entry:
    """What admission needs to know about one active collector (no ORM access at match time)."""

    pk: int
    public_id: str
    app_pk: int
    owner_id: int
    caller_id: int | None  # None = blank: the owner's own, or every caller with the model's opt-in
    model_owner_id: int
    sample: float  # 0 = not set
    pre_queue_workflow: Any  # workflows.models.Workflow with nodes loaded, or None
    pre_queue_inline: bool
    max_per_minute: int
    max_per_hour: int
    max_per_day: int
    max_pending: int
    all_callers: bool = False  # the source model's capture_all_callers opt-in

    @property
    def has_rate_limits(self) -> bool:
        return bool(self.max_per_minute or self.max_per_hour or self.max_per_day)


class _State:
    by_mv: dict[int, tuple[Entry, ...]] | None = None
    built_at: float = float("-inf")
    dirty: bool = True
    epoch: int = 0


_state = _State()
_build_lock = threading.Lock()
_grants: generations.SyncedCache | None = None


def invalidate() -> None:
    """Mark the index stale (this process); cheap, never raises. In servers the background
    thread rebuilds it at once; the prediction keeps using the current one meanwhile."""
    _state.dirty = True
    _state.epoch += 1
    generations.poke()


def install() -> None:
    """Subscribe to the change generations (CaptureConfig.ready)."""
    global _grants
    generations.on_change(INDEX_TABLES, invalidate)
    generations.add_chore(refresh_if_stale)
    _grants = generations.SyncedCache("capture-grants", GRANT_TABLES)


def _stale() -> bool:
    st = _state
    return (
        st.by_mv is None
        or st.dirty
        or time.monotonic() - st.built_at >= conf.index_max_age_seconds()
    )


def refresh_if_stale() -> None:
    """Rebuild the index when it is stale (the background thread's chore)."""
    if _stale():
        _rebuild()


def candidates(model_version_pk: int) -> tuple[Entry, ...]:
    """Active collectors whose source is this model version (caller rules not applied yet)."""
    generations.ensure_fresh()
    st = _state
    if st.by_mv is None or (st.dirty and not conf.background_threads()):
        _rebuild()  # never built yet, or no background thread: build here
    elif not conf.background_threads() and _stale():
        _rebuild()
    by_mv = _state.by_mv
    return by_mv.get(model_version_pk, ()) if by_mv is not None else ()


def _rebuild() -> None:
    if not _build_lock.acquire(blocking=False):
        return  # another thread is building: use the current index meanwhile
    try:
        epoch = _state.epoch
        try:
            if connection.in_atomic_block:
                with transaction.atomic():  # a savepoint: a failing query cannot break the caller
                    by_mv = _build()
            else:
                by_mv = _build()
        except Exception:
            log.exception("collector index rebuild failed; keeping the previous index")
            _state.built_at = time.monotonic()  # retry after the max age, or the next change
            if _state.by_mv is None:
                _state.by_mv = {}
            return
        _state.by_mv, _state.built_at = by_mv, time.monotonic()
        if _state.epoch == epoch:
            _state.dirty = False  # else a change arrived while building: build again
    finally:
        _build_lock.release()


def _build() -> dict[int, tuple[Entry, ...]]:
    # Plain values for every active collector (no model instances: thousands of collectors cost
    # one light query), and the ORM only for the few with a pre-queue workflow.
    rows = Collector.objects.filter(status=COLLECTOR_ACTIVE).values_list(
        "pk", "public_id", "app_id", "app__owner_id", "caller_id",
        "source_model_version_id", "source_model_version__model__app__owner_id",
        "pre_queue_random_sample", "pre_queue_workflow_id", "max_per_minute", "max_per_hour",
        "max_per_day", "max_pending", "source_model_version__model__capture_all_callers",
    )  # fmt: skip
    rows = list(rows)
    with_workflow = [r[0] for r in rows if r[8] is not None]
    workflows: dict[int, tuple[Any, bool]] = {}
    if with_workflow:
        for c in (
            Collector.objects.filter(pk__in=with_workflow)
            .select_related("source_model_version__model", "pre_queue_workflow")
            .prefetch_related(
                Prefetch(
                    "pre_queue_workflow__nodes",
                    queryset=WorkflowNode.objects.select_related(
                        "model_version", "model_version__model"
                    ),
                )
            )
        ):
            wf = c.pre_queue_workflow
            workflows[c.pk] = (wf, _inline(wf, c.source_model_version) if wf else False)
    by_mv: dict[int, list[Entry]] = {}
    for (pk, public_id, app_id, owner_id, caller_id, mv_id, model_owner_id, sample, wf_id,
         per_minute, per_hour, per_day, pending, all_callers) in rows:  # fmt: skip
        wf, inline = workflows.get(pk, (None, False)) if wf_id is not None else (None, False)
        by_mv.setdefault(mv_id, []).append(
            Entry(
                pk=pk,
                public_id=public_id,
                app_pk=app_id,
                owner_id=owner_id,
                caller_id=caller_id,
                model_owner_id=model_owner_id,
                sample=float(sample or 0.0),
                pre_queue_workflow=wf,
                pre_queue_inline=inline,
                max_per_minute=per_minute,
                max_per_hour=per_hour,
                max_per_day=per_day,
                max_pending=pending,
                all_callers=bool(all_callers),
            )
        )
    return {k: tuple(v) for k, v in by_mv.items()}


def _inline(workflow, model_version) -> bool:
    try:
        return bool(is_inline(workflow, model_version))
    except Exception:  # a broken workflow is the worker's to report
        log.exception("is_inline failed for workflow %s", getattr(workflow, "pk", None))
        return False


def grant_active(*, grantor_id: int, grantee_id: int) -> bool:
    """Has `grantor` (the caller) an active capture grant to `grantee`? Cached until a grant
    changes anywhere (seen within CACHE_CHECK_SECONDS)."""

    def load() -> bool:
        return CaptureGrant.objects.filter(
            grantor_id=grantor_id, grantee_id=grantee_id, revoked_at__isnull=True
        ).exists()

    if _grants is None:
        return load()
    if connection.in_atomic_block:
        with transaction.atomic():
            return bool(_grants.get((grantor_id, grantee_id), load))
    return bool(_grants.get((grantor_id, grantee_id), load))


def caller_allowed(entry: Entry, caller_id: int) -> bool:
    """The caller rules (docs/security.md): the caller named by the collector, who is its owner
    or has granted capture to the owner; or, with a blank caller on the owner's own model, the
    owner's own predictions, and every caller's only when the model opts in
    (capture_all_callers)."""
    if entry.caller_id is None:
        if entry.model_owner_id != entry.owner_id:
            return False
        return caller_id == entry.owner_id or entry.all_callers
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
