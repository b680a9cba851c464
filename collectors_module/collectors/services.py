"""Writers for collectors: create, overwrite, status, limits, flag, delete (with validation).

Every validation failure is an `ApiError` with a status, details a person understands and
`field=` naming the form field. Every write bumps `Collector.revision`; the change generation of
the collectors table (database triggers, `core.generations`) makes every process rebuild its
capture index within CACHE_CHECK_SECONDS, this process at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from collectors_module.accounts.models import Key
from collectors_module.accounts.selectors import has_active_grant, user_by_user_id
from collectors_module.api.descriptors import get_rpc
from collectors_module.capture.services import captures_discard_pending, pending_of_collectors
from collectors_module.core import generations
from collectors_module.core.auth import digest_secret
from collectors_module.core.errors import SC, ApiError, not_found
from collectors_module.core.fingerprints import MAX_DISTANCE
from collectors_module.core.ids import validate_id
from collectors_module.inference.selectors import model_version_for_user
from collectors_module.workflows.models import Workflow

from . import acting
from .models import COLLECTOR_ACTIVE, COLLECTOR_INACTIVE, Collector

log = logging.getLogger("collectors.services")

LIMIT_FIELDS = ("max_per_minute", "max_per_hour", "max_per_day", "max_pending")
MAX_LIMIT = 1_000_000_000
MAX_DESCRIPTION = 512


# ---------------------------------------------------------------------------------------------
# Validation helpers


def post_inputs_scopes() -> tuple[str, ...]:
    """What a key needs to post inputs and read the source model (or `All`)."""
    return tuple(dict.fromkeys((*get_rpc("PostInputs").scopes, "Models:Get", "Predict")))


def validate_limits(limits: dict | None) -> dict[str, int]:
    """Check the extension fields (0 = unlimited); returns only the fields that were given."""
    if not limits:
        return {}
    if not isinstance(limits, dict):
        raise ApiError(SC.CONN_INVALID_REQUEST, "limits must be an object", field="limits")
    unknown = sorted(set(limits) - set(LIMIT_FIELDS))
    if unknown:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"Unknown limit field(s): {', '.join(unknown[:5])}; known: {', '.join(LIMIT_FIELDS)}",
            field=unknown[0][:64],
        )
    out: dict[str, int] = {}
    for name, raw in limits.items():
        value = raw
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        elif isinstance(value, str) and not value.strip():
            value = 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
            raise ApiError(
                SC.CONN_INVALID_REQUEST,
                f"{name} must be a whole number from 0 (no limit) to {MAX_LIMIT}",
                field=name,
            )
        out[name] = value
    return out


def _resolve_post_inputs_key(*, owner, app, key_ref: str):
    """The owner's key named by public id or secret, usable for PostInputs into `app`."""
    field = "post_inputs_key_id"
    if not key_ref:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "post_inputs_key_id is required: the id (or secret) of one of your keys that may post "
            "inputs to this app",
            field=field,
        )
    keys = Key.objects.filter(owner=owner).select_related("app")
    key = keys.filter(public_id=key_ref).first() if len(key_ref) <= 32 else None
    by_secret = False
    if key is None and len(key_ref) <= 512:
        key = keys.filter(digest=digest_secret(key_ref)).first()
        by_secret = key is not None
    if key is None:
        # Never echo the value: it may be a secret (ours or someone else's).
        raise ApiError(
            SC.CONN_DOES_NOT_EXIST,
            "The post inputs key does not exist among your keys",
            field=field,
        )
    if key.revoked_at is not None:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, f"Key {key.display_name} has been revoked", field=field
        )
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise ApiError(SC.CONN_INVALID_REQUEST, f"Key {key.display_name} has expired", field=field)
    if key.app_id is not None and key.app_id != app.pk:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"Key {key.display_name} is an app key of another app; use a key of app "
            f"'{app.public_id}' or a personal access token",
            field=field,
        )
    missing = key.missing_scopes(post_inputs_scopes())
    if missing:
        raise ApiError(
            SC.CONN_INSUFFICIENT_SCOPES,
            f"Key {key.display_name} cannot post inputs and read the source model; it lacks the "
            f"scopes: {', '.join(missing)}",
            description="The post inputs key has insufficient scopes",
            field=field,
        )
    return key, by_secret


def _resolve_source(*, owner, app, src) -> object:
    model_user_id = src.model_user_id or owner.username
    if model_user_id == "me":
        model_user_id = owner.username
    model_app_id = src.model_app_id or app.public_id
    if not src.model_id:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "model_id is required: the source model whose predictions are collected",
            field="model_id",
        )
    for value, name in (
        (model_user_id, "model_user_id"),
        (model_app_id, "model_app_id"),
        (src.model_id, "model_id"),
    ):
        validate_id(value, name, field=name)
    if src.model_version_id:
        validate_id(src.model_version_id, "model_version_id", field="model_version_id")
    try:
        mv = model_version_for_user(
            owner,
            owner_user_id=model_user_id,
            app_id=model_app_id,
            model_id=src.model_id,
            version_id=src.model_version_id,
        )
    except ApiError as exc:
        field = (
            "model_version_id"
            if src.model_version_id and "version" in exc.details.lower()
            else "model_id"
        )
        raise ApiError(
            exc.code,
            f"Source model {model_user_id}/{model_app_id}/{src.model_id}"
            + (f" version {src.model_version_id}" if src.model_version_id else "")
            + " does not exist or you may not read it",
            field=field,
        ) from exc
    return mv


def _key_can_read_model(key, mv) -> None:
    model = mv.model
    if key.app_id is not None and model.app_id != key.app_id and not model.is_public:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"Key {key.display_name} is bound to app '{key.app.public_id}' and cannot read the source "
            f"model '{model.public_id}'; use a personal access token",
            field="post_inputs_key_id",
        )


def _resolve_caller(*, owner, mv, caller_user_id: str):
    field = "caller_user_id"
    if not caller_user_id:
        if mv.model.app.owner_id == owner.pk:
            return None  # any caller of the owner's own model
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "caller_user_id may be left blank only for your own models (it collects your own "
            "predictions, and every caller's only if the model opts in); name the caller whose "
            "predictions you want to collect",
            field=field,
        )
    if caller_user_id in ("me", owner.username):
        return owner
    caller = user_by_user_id(caller_user_id)
    if caller is None or not has_active_grant(grantor_id=caller.pk, grantee_id=owner.pk):
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"User '{caller_user_id[:64]}' does not exist or has not allowed you to collect their "
            "predictions (they can grant capture to you on their account's Capture grants page, "
            "/accounts/capture-grants/, or with PostCaptureGrants)",
            field=field,
        )
    return caller


def _resolve_workflow(app, workflow_id: str, field: str):
    if not workflow_id:
        return None
    validate_id(workflow_id, field, field=field)
    wf = Workflow.objects.filter(app=app, public_id=workflow_id).first()
    if wf is None:
        raise ApiError(
            SC.WORKFLOW_INVALID_ARGUMENT,
            f"Workflow '{workflow_id}' does not exist in app '{app.public_id}' (a collector's "
            "workflows live in its destination app)",
            field=field,
        )
    return wf


def _sample(value: float) -> float:
    if math.isnan(value) or math.isinf(value) or value < 0 or value > 1:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "pre_queue_random_sample must be a fraction above 0 and at most 1 (0 = not set)",
            field="pre_queue_random_sample",
        )
    # The message carries a float32: keep the decimal the client meant (0.001, not 0.0010000000475).
    return float(f"{value:.7g}")


def _status(collector_pb, default: int | None) -> int | None:
    code = collector_pb.status.code if collector_pb.HasField("status") else 0
    if code == 0:
        return default
    if code not in (COLLECTOR_ACTIVE, COLLECTOR_INACTIVE):
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "status.code must be COLLECTOR_ACTIVE (52001) or COLLECTOR_INACTIVE (52002)",
            field="status",
        )
    return code


@dataclass
class _Validated:
    fields: dict


def _validate(
    *, app, actor, collector_pb, existing: Collector | None, acting_key=None
) -> _Validated:
    owner = app.owner
    if actor is not None and actor.pk != owner.pk:
        raise not_found("App", app.public_id)
    if not getattr(owner, "can_use_collectors", False):
        raise ApiError(
            SC.CONN_ACCOUNT_ISSUES,
            "Collectors are available on the Professional and Enterprise plans; upgrade your plan "
            "to create or change collectors",
        )
    validate_id(collector_pb.id, "id", field="id")
    description = collector_pb.description or ""
    if len(description) > MAX_DESCRIPTION:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"description may hold at most {MAX_DESCRIPTION} characters",
            field="description",
        )
    sample = _sample(collector_pb.pre_queue_random_sample)
    pre = _resolve_workflow(app, collector_pb.pre_queue_workflow_id, "pre_queue_workflow_id")
    post = _resolve_workflow(app, collector_pb.post_queue_workflow_id, "post_queue_workflow_id")
    if pre is None and post is None and sample == 0:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "Set a pre-queue workflow, a post-queue workflow or a random-sample fraction: at least "
            "one of them is required",
            field="pre_queue_workflow_id",
        )
    src = collector_pb.collector_source.api_post_model_outputs_collector_source
    if not collector_pb.collector_source.HasField("api_post_model_outputs_collector_source"):
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "collector_source.api_post_model_outputs_collector_source is required (the source model, "
            "the caller and the post inputs key)",
            field="model_id",
        )
    mv = _resolve_source(owner=owner, app=app, src=src)
    acting.check_reads_source(acting_key, mv)
    if src.post_inputs_key_id or existing is None or existing.post_inputs_key_id is None:
        key, by_secret = _resolve_post_inputs_key(
            owner=owner, app=app, key_ref=src.post_inputs_key_id
        )
        acting.check_may_name_key(acting_key, key, by_secret=by_secret)
    else:
        # Overwrite without a key keeps the stored key, re-checked like a new one.
        key, _ = _resolve_post_inputs_key(
            owner=owner, app=app, key_ref=existing.post_inputs_key.public_id
        )
    _key_can_read_model(key, mv)
    caller = _resolve_caller(owner=owner, mv=mv, caller_user_id=src.caller_user_id)
    status = _status(collector_pb, COLLECTOR_ACTIVE if existing is None else None)
    fields = {
        "description": description,
        "pre_queue_workflow": pre,
        "post_queue_workflow": post,
        "pre_queue_random_sample": sample,
        "collect_outputs": bool(collector_pb.collect_outputs),
        "source_model_version": mv,
        "model_user_id": mv.model.app.owner.username,
        "model_app_id": mv.model.app.public_id,
        "model_id": mv.model.public_id,
        "model_version_id": mv.public_id,
        "post_inputs_key": key,
        "caller": caller,
    }
    if status is not None:
        fields["status"] = status
    return _Validated(fields=fields)


def _invalidate() -> None:
    generations.changed(Collector._meta.db_table)


# ---------------------------------------------------------------------------------------------
# Writers


def collector_create(
    *, app, actor, collector_pb, limits: dict | None = None, acting_key=None
) -> Collector:
    """Validate and create one collector in `app` (active unless status says otherwise).

    Transactional; raises ApiError (with `field`) on any invalid value or a duplicate id.
    """
    limit_values = validate_limits(limits)
    with transaction.atomic():
        if Collector.objects.filter(app=app, public_id=collector_pb.id).exists():
            raise ApiError(
                SC.DATABASE_DUPLICATE_KEY,
                f"A collector with id '{collector_pb.id}' already exists in app '{app.public_id}'",
                field="id",
            )
        v = _validate(
            app=app, actor=actor, collector_pb=collector_pb, existing=None, acting_key=acting_key
        )
        try:
            with transaction.atomic():
                collector = Collector.objects.create(
                    app=app, public_id=collector_pb.id, **v.fields, **limit_values
                )
        except IntegrityError as exc:
            raise ApiError(
                SC.DATABASE_DUPLICATE_KEY,
                f"A collector with id '{collector_pb.id}' already exists in app '{app.public_id}'",
                field="id",
            ) from exc
        _invalidate()
    return collector


def collectors_create(
    *, app, actor, collector_pbs, limits: dict | None = None, acting_key=None
) -> list[Collector]:
    """Create several collectors, all or none (PostCollectors). Raises like collector_create."""
    if not collector_pbs:
        raise ApiError(SC.CONN_INVALID_REQUEST, "collectors must hold at least one collector")
    with transaction.atomic():
        return [
            collector_create(
                app=app, actor=actor, collector_pb=pb, limits=limits, acting_key=acting_key
            )
            for pb in collector_pbs
        ]


def collector_overwrite(
    *, app, actor, collector_pb, limits: dict | None = None, acting_key=None
) -> Collector:
    """Replace every field of an existing collector with `collector_pb` (validated as on create).

    Status is kept unless given; limits are kept unless `limits` is given; an empty
    post_inputs_key_id keeps the stored key (re-checked). Transactional; raises ApiError.
    """
    limit_values = validate_limits(limits)
    validate_id(collector_pb.id, "id", field="id")
    with transaction.atomic():
        existing = (
            Collector.objects.select_for_update(of=("self",))
            .select_related("post_inputs_key")
            .filter(app=app, public_id=collector_pb.id)
            .first()
        )
        if existing is None:
            raise ApiError(
                SC.CONN_DOES_NOT_EXIST,
                f"Collector '{collector_pb.id}' does not exist in app '{app.public_id}'",
                field="id",
            )
        v = _validate(
            app=app,
            actor=actor,
            collector_pb=collector_pb,
            existing=existing,
            acting_key=acting_key,
        )
        was_active = existing.status == COLLECTOR_ACTIVE
        for name, value in {**v.fields, **limit_values}.items():
            setattr(existing, name, value)
        if existing.status == COLLECTOR_ACTIVE:
            existing.deactivated_at = None
        elif was_active or existing.deactivated_at is None:
            existing.deactivated_at = timezone.now()  # captures accepted until now are kept
        existing.flagged_reason = ""
        existing.flagged_at = None
        existing.revision = F("revision") + 1
        existing.save()
        existing.refresh_from_db()
        _invalidate()
    return existing


def collectors_overwrite(*, app, actor, collector_pbs, acting_key=None) -> list[Collector]:
    """Overwrite several collectors, all or none (PatchCollectors action=overwrite)."""
    if not collector_pbs:
        raise ApiError(SC.CONN_INVALID_REQUEST, "collectors must hold at least one collector")
    with transaction.atomic():
        return [
            collector_overwrite(app=app, actor=actor, collector_pb=pb, acting_key=acting_key)
            for pb in collector_pbs
        ]


def collector_set_status(*, app, collector_id: str, active: bool) -> Collector:
    """Activate or deactivate, keeping what was accepted (see `collector_deactivate`)."""
    if active:
        return collector_activate(app=app, collector_id=collector_id)
    return collector_deactivate(app=app, collector_id=collector_id)[0]


def _locked(app, collector_id: str) -> Collector:
    collector = (
        Collector.objects.select_for_update().filter(app=app, public_id=collector_id).first()
    )
    if collector is None:
        raise not_found("Collector", collector_id)
    return collector


_STATUS_FIELDS = [
    "status",
    "flagged_reason",
    "flagged_at",
    "deactivated_at",
    "discarded_before",
    "revision",
    "modified_at",
]


def collector_activate(*, app, collector_id: str) -> Collector:
    """Activate (idempotent); clears a flag set by the worker (e.g. after the user replaced a
    revoked key). Raises 11101 when the collector is not in `app`."""
    with transaction.atomic():
        collector = _locked(app, collector_id)
        collector.status = COLLECTOR_ACTIVE
        collector.flagged_reason = ""
        collector.flagged_at = None
        collector.deactivated_at = None
        collector.revision = F("revision") + 1
        collector.save(update_fields=_STATUS_FIELDS)
        collector.refresh_from_db()
        _invalidate()
    return collector


def collector_deactivate(
    *, app, collector_id: str, discard_pending: bool = False
) -> tuple[Collector, int]:
    """Deactivate (idempotent): no new captures. The captures accepted before it are still
    delivered, unless `discard_pending` ends them now (state `dropped`, reason `discarded`,
    counted), together with those still on their way from a serving host's spool.

    Returns (collector, captures discarded). Raises 11101 when the collector is not in `app`."""
    with transaction.atomic():
        collector = _locked(app, collector_id)
        now = timezone.now()
        if collector.status == COLLECTOR_ACTIVE or collector.deactivated_at is None:
            collector.deactivated_at = now
        collector.status = COLLECTOR_INACTIVE
        discarded = 0
        if discard_pending:
            collector.discarded_before = now
            discarded = captures_discard_pending(collector_id=collector.pk)
        collector.revision = F("revision") + 1
        collector.save(update_fields=_STATUS_FIELDS)
        collector.refresh_from_db()
        _invalidate()
    return collector, discarded


def collector_set_limits(*, app, collector_id: str, limits: dict) -> Collector:
    """Set some of max_per_minute/hour/day and max_pending (0 = none). Raises ApiError."""
    values = validate_limits(limits)
    with transaction.atomic():
        collector = (
            Collector.objects.select_for_update().filter(app=app, public_id=collector_id).first()
        )
        if collector is None:
            raise not_found("Collector", collector_id)
        for name, value in values.items():
            setattr(collector, name, value)
        collector.revision = F("revision") + 1
        collector.save(update_fields=[*values, "revision", "modified_at"])
        collector.refresh_from_db()
        _invalidate()
    return collector


def collector_flag(*, collector_id: int, reason: str, deactivate: bool = True) -> int:
    """Worker side: mark a collector unusable (e.g. its key was revoked), by pk; idempotent.

    Returns rows changed (0 when it was deleted meanwhile). Stops matching in every process.
    """
    now = timezone.now()
    changes: dict = {
        "flagged_reason": reason[:512],
        "flagged_at": now,
        "revision": F("revision") + 1,
        "modified_at": now,
    }
    n = 0
    if deactivate:
        n = Collector.objects.filter(pk=collector_id, status=COLLECTOR_ACTIVE).update(
            status=COLLECTOR_INACTIVE, deactivated_at=now, **changes
        )
    if not n:
        n = Collector.objects.filter(pk=collector_id).update(**changes)
    _invalidate()
    return n


def collectors_delete(
    *, app, ids: list[str] | None = None, delete_all: bool = False
) -> tuple[int, int]:
    """Delete the named collectors of `app` (or all of them) with their captures and counters.

    Their pending captures are discarded (and those still in a spool are dropped when the agent
    reaches them). All or nothing: an unknown id raises 11101 and deletes nothing. Returns
    (collectors deleted, pending captures discarded)."""
    ids = list(dict.fromkeys(i for i in (ids or []) if i))
    if not ids and not delete_all:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, "Give the collector ids to delete, or delete_all", field="ids"
        )
    if ids and delete_all:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, "Give either ids or delete_all, not both", field="ids"
        )
    with transaction.atomic():
        qs = Collector.objects.filter(app=app)
        if not delete_all:
            qs = qs.filter(public_id__in=ids)
            found = set(qs.values_list("public_id", flat=True))
            missing = [i for i in ids if i not in found]
            if missing:
                raise not_found("Collector", ", ".join(m[:64] for m in missing[:5]))
        pks = list(qs.values_list("pk", flat=True))
        discarded = pending_of_collectors(pks)
        # Captures and counters go with their collector (CASCADE): pending payloads are purged.
        Collector.objects.filter(pk__in=pks).delete()
        _invalidate()
    if discarded:
        log.info(
            "deleted %d collector(s) of app %s; %d pending capture(s) discarded",
            len(pks),
            app.public_id,
            discarded,
        )
    return len(pks), discarded


def validate_near_duplicate(enabled, max_distance) -> dict:
    """{near_duplicate, near_duplicate_max_distance} checked (max_distance 0..MAX_DISTANCE)."""
    out: dict = {}
    if enabled is not None:
        out["near_duplicate"] = bool(enabled)
    if max_distance is not None:
        if isinstance(max_distance, bool) or not isinstance(max_distance, int | float):
            raise ApiError(
                SC.CONN_INVALID_REQUEST, "max_distance must be a number", field="max_distance"
            )
        if not float(max_distance).is_integer() or not 0 <= max_distance <= MAX_DISTANCE:
            raise ApiError(
                SC.CONN_INVALID_REQUEST,
                f"max_distance must be a whole number from 0 to {MAX_DISTANCE}",
                field="max_distance",
            )
        out["near_duplicate_max_distance"] = int(max_distance)
    return out


def collector_set_near_duplicate(
    *, app, collector_id: str, enabled: bool | None = None, max_distance: int | None = None
) -> Collector:
    """Turn near-duplicate suppression on or off and set its pHash distance. Raises ApiError."""
    values = validate_near_duplicate(enabled, max_distance)
    with transaction.atomic():
        collector = _locked(app, collector_id)
        for name, value in values.items():
            setattr(collector, name, value)
        collector.revision = F("revision") + 1
        collector.save(update_fields=[*values, "revision", "modified_at"])
        collector.refresh_from_db()
        _invalidate()
    return collector


def collector_draft(
    *, app, actor, collector_pb, limits: dict | None = None, near_duplicate: dict | None = None
) -> Collector:
    """The collector `collector_pb` would make (create, or overwrite when its id exists), validated
    as on save and NOT saved: for the preview. Raises ApiError like collector_create."""
    existing = (
        Collector.objects.select_related("post_inputs_key")
        .filter(app=app, public_id=collector_pb.id)
        .first()
    )
    v = _validate(app=app, actor=actor, collector_pb=collector_pb, existing=existing)
    nd = near_duplicate or {}
    values = {
        **v.fields,
        **validate_limits(limits),
        **validate_near_duplicate(nd.get("enabled"), nd.get("max_distance")),
    }
    if existing is None:
        return Collector(app=app, public_id=collector_pb.id, **values)
    for name, value in values.items():
        setattr(existing, name, value)
    return existing
