"""Writers for models and versions, and the predict path (prepare inputs, run, hook)."""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from django.db import IntegrityError, transaction
from django.utils import timezone
from google.protobuf import json_format

from collectors_module.applications.models import Visibility
from collectors_module.core import generations
from collectors_module.core.content import prune_empty
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.core.ids import is_valid_id, new_hex_id, validate_id
from collectors_module.core.images import max_image_bytes, max_request_pixels, validate_image
from collectors_module.core.safe_fetch import fetch, request_deadline
from collectors_module.core.sealed import reseal, seal
from collectors_module.workflows.model_types import OPERATOR_TYPES
from collectors_module.workflows.models import WorkflowNode

from . import conf, hooks
from .convert import CAPTURE_ALL_CALLERS, model_ref_pb
from .models import Model, ModelVersion
from .runners.builtin import BY_NAME as BUILTINS
from .runners.registry import get_runner, is_runnable
from .runners.remote import make_remote_runner

log = logging.getLogger("collectors.inference")

# Default model type for a remote runner when PostModels does not name one.
_REMOTE_DEFAULT_TYPES = {"openai-chat": "image-to-text", "kserve-v2": "visual-classifier"}
# output_config fields applied to concepts after any runner (Clarifai's OutputConfig names).
OUTPUT_CONFIG_KEYS = ("max_concepts", "min_value", "select_concepts")
_ECHO_BASE64 = b"true"  # what Clarifai echoes in output.input for uploaded bytes


def operator_types() -> frozenset[str]:
    """Operator model types (run by the workflow executor, not by PostModelOutputs)."""
    return frozenset(OPERATOR_TYPES)


def _struct_to_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _resolve_runner(model_type_id: str, metadata: dict) -> tuple[str, str, dict]:
    """(model_type_id, runner, runner_config) for a new version; raises MODEL_INVALID_ARGUMENT."""
    runner = str(metadata.get("runner", "") or "")
    config = {k: v for k, v in metadata.items() if k != "runner"}
    if model_type_id and model_type_id in operator_types():
        if runner and runner != f"operator:{model_type_id}":
            raise ApiError(
                SC.MODEL_INVALID_ARGUMENT,
                f"'{model_type_id}' is an operator type; it takes no runner",
                field="runner",
            )
        return model_type_id, f"operator:{model_type_id}", {}
    kind, _, name = runner.partition(":")
    if kind == "remote":
        if "api_key_sealed" in config:
            raise ApiError(
                SC.MODEL_INVALID_ARGUMENT, "api_key_sealed cannot be set", field="api_key_sealed"
            )
        make_remote_runner(name, dict(config))  # validates kind, url allow-list, model name
        api_key = config.pop("api_key", "")
        if api_key:
            # At rest the model's own key is sealed (core.sealed); it is never shown again.
            config["api_key_sealed"] = seal(api_key)
        return model_type_id or _REMOTE_DEFAULT_TYPES.get(name, ""), runner, config
    if kind == "builtin":
        spec = BUILTINS.get(name)
        if spec is None:
            raise ApiError(
                SC.MODEL_INVALID_ARGUMENT,
                f"Unknown built-in runner '{runner}'; known: "
                + ", ".join(f"builtin:{n}" for n in BUILTINS),
                field="runner",
            )
        if model_type_id and model_type_id != spec.model_type_id:
            raise ApiError(
                SC.MODEL_INVALID_ARGUMENT,
                f"'{runner}' produces '{spec.model_type_id}' outputs, not '{model_type_id}'",
                field="model_type_id",
            )
        return spec.model_type_id, runner, {}
    if runner:
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT,
            f"Unknown runner '{runner[:64]}': use 'builtin:<name>', 'remote:openai-chat' "
            "or 'remote:kserve-v2'",
            field="runner",
        )
    return model_type_id, "", {}


def _output_info_dict(pb: resources_pb2.OutputInfo) -> dict:
    info = json_format.MessageToDict(pb, preserving_proto_field_name=True)
    concepts = info.get("data", {}).get("concepts", [])
    seen = set()
    for c in concepts:
        cid = c.get("id", "")
        validate_id(cid, "concept id", SC.MODEL_INVALID_ARGUMENT, field="concepts")
        if cid in seen:
            raise ApiError(
                SC.CONCEPTS_INVALID_REQUEST, f"duplicate concept id '{cid}'", field="concepts"
            )
        seen.add(cid)
        c.setdefault("name", cid)
    return info


def _capture_flag(value) -> bool:
    if not isinstance(value, bool):
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT,
            f"metadata.{CAPTURE_ALL_CALLERS} must be true or false",
            field=f"metadata.{CAPTURE_ALL_CALLERS}",
        )
    return value


def model_set_capture_all_callers(*, app, model_id: str, value: bool) -> Model:
    """The owner's opt-in that collectors with a blank caller capture every caller's predictions
    on this model (off: only the owner's own). Callers see it in GetModel and predict outputs."""
    with transaction.atomic():
        model = Model.objects.select_for_update().filter(app=app, public_id=model_id).first()
        if model is None:
            raise ApiError(SC.MODEL_DOES_NOT_EXIST, f"Model '{model_id[:128]}' does not exist")
        model.capture_all_callers = bool(value)
        model.save(update_fields=["capture_all_callers", "modified_at"])
    # The capture index reads the flag: every process rebuilds it (generations of the table).
    generations.changed(Model._meta.db_table)
    return model


def reseal_model_secrets() -> int:
    """Re-seal every stored remote-model API key with the newest key of
    REMOTE_MODEL_SECRET_KEYS (key rotation); returns how many were re-sealed."""
    count = 0
    for mv in ModelVersion.objects.filter(runner__startswith="remote:").iterator():
        token = (mv.runner_config or {}).get("api_key_sealed")
        if not token:
            continue
        with transaction.atomic():
            mv.runner_config = {**mv.runner_config, "api_key_sealed": reseal(token)}
            mv.save(update_fields=["runner_config"])
        count += 1
    generations.changed(ModelVersion._meta.db_table)
    return count


def model_create(*, app, model_pb: resources_pb2.Model) -> Model:
    """Create a model and its first version in one transaction. Raises ApiError on bad ids,
    an unknown/not-allowed runner or a duplicate model id (MODEL_INVALID_REQUEST, 'duplicate')."""
    model_id = validate_id(model_pb.id, "model id", SC.MODEL_INVALID_ARGUMENT, field="id")
    # The runner comes from model.model_version.metadata (or, failing that, model.metadata).
    metadata = _struct_to_dict(model_pb.model_version.metadata)
    model_meta = _struct_to_dict(model_pb.metadata)
    capture_all_callers = _capture_flag(model_meta.pop(CAPTURE_ALL_CALLERS, False))
    if "runner" not in metadata and "runner" in model_meta:
        metadata = model_meta
    model_type_id, runner, config = _resolve_runner(model_pb.model_type_id, metadata)
    if not model_type_id:
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT, "model_type_id is required", field="model_type_id"
        )
    info_pb = (
        model_pb.model_version.output_info
        if model_pb.model_version.HasField("output_info")
        else model_pb.output_info
    )
    output_info = _output_info_dict(info_pb)
    visibility = model_pb.visibility.gettable or Visibility.PRIVATE
    if visibility not in Visibility.values:
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT, f"Unknown visibility {visibility}", field="visibility"
        )
    version_id = model_pb.model_version.id or new_hex_id()
    if not is_valid_id(version_id):
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT,
            f"Invalid model version id '{version_id[:64]}'",
            field="version_id",
        )
    try:
        with transaction.atomic():
            if Model.objects.filter(app=app, public_id=model_id).exists():
                raise ApiError(
                    SC.MODEL_INVALID_REQUEST,
                    f"Model '{model_id}' already exists (duplicate id)",
                    field="id",
                )
            model = Model.objects.create(
                app=app,
                public_id=model_id,
                name=model_pb.name[:256],
                description=model_pb.description,
                model_type_id=model_type_id,
                visibility=visibility,
                output_info=output_info,
                capture_all_callers=capture_all_callers,
            )
            ModelVersion.objects.create(
                model=model,
                public_id=version_id,
                description=model_pb.model_version.description[:512],
                output_info=output_info,
                runner=runner,
                runner_config=config,
            )
    except IntegrityError as exc:
        raise ApiError(
            SC.MODEL_INVALID_REQUEST, f"Model '{model_id}' already exists (duplicate id)"
        ) from exc
    return model


def model_version_create(*, model: Model, version_pb: resources_pb2.ModelVersion) -> ModelVersion:
    """Add a version to `model` (runner/config/output_info default to the latest version's).
    Transactional; raises ApiError on a bad runner or a duplicate version id."""
    latest = model.latest_version()
    metadata = _struct_to_dict(version_pb.metadata)
    if metadata.get("runner"):
        _, runner, config = _resolve_runner(model.model_type_id, metadata)
    elif latest is not None:
        runner, config = latest.runner, dict(latest.runner_config)
    else:
        _, runner, config = _resolve_runner(model.model_type_id, {})
    if version_pb.HasField("output_info"):
        output_info = _output_info_dict(version_pb.output_info)
    else:
        output_info = dict(latest.output_info) if latest else dict(model.output_info)
    version_id = version_pb.id or new_hex_id()
    if not is_valid_id(version_id):
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT,
            f"Invalid model version id '{version_id[:64]}'",
            field="version_id",
        )
    try:
        with transaction.atomic():
            if model.versions.filter(public_id=version_id).exists():
                raise ApiError(
                    SC.MODEL_INVALID_REQUEST,
                    f"Model version '{version_id}' already exists (duplicate id)",
                )
            version = ModelVersion.objects.create(
                model=model,
                public_id=version_id,
                description=version_pb.description[:512],
                output_info=output_info,
                runner=runner,
                runner_config=config,
            )
            Model.objects.filter(pk=model.pk).update(modified_at=timezone.now())
    except IntegrityError as exc:
        raise ApiError(
            SC.MODEL_INVALID_REQUEST, f"Model version '{version_id}' already exists (duplicate id)"
        ) from exc
    version.model = model
    return version


# --- deleting -----------------------------------------------------------------------------------

MAX_DELETE_IDS = 1000


def _uses_of(models: list[Model], owner) -> list[str]:
    """Who uses these models' versions: the owner's own workflows and collectors by name, other
    users' only by user id (their objects are none of the owner's business)."""
    versions = ModelVersion.objects.filter(model__in=models)
    uses: dict[str, set[str]] = {}
    nodes = (
        WorkflowNode.objects.filter(model_version__in=versions)
        .select_related("workflow__app__owner", "model_version__model")
        .order_by("workflow__app__owner__username", "workflow__public_id")[:200]
    )
    for node in nodes:
        model_id = node.model_version.model.public_id
        wf = node.workflow
        if wf.app.owner_id == owner.pk:
            what = f"workflow '{wf.public_id}' (app '{wf.app.public_id}')"
        else:
            what = f"a workflow of user '{wf.app.owner.username}'"
        uses.setdefault(model_id, set()).add(what)
    for model_id, what in hooks.model_users(versions, owner):
        uses.setdefault(model_id, set()).add(what)
    out = []
    for model_id in sorted(uses):
        users = sorted(uses[model_id])
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        out.append(f"model '{model_id}' is used by {shown}")
    return out


def models_delete(*, app, ids: list[str] | None = None, delete_all: bool = False) -> int:
    """DeleteModels: the named models of `app` (or all of them), with their versions; all or
    none. 11101 names a missing id. Refused (MODEL_INVALID_REQUEST, naming who uses them) while
    a workflow or a collector of anybody uses one of their versions, so nothing that relies on a
    model silently breaks or disappears."""
    if not delete_all:
        wanted = list(dict.fromkeys(i for i in ids or [] if i))
        if not wanted:
            raise ApiError(
                SC.MODEL_INVALID_REQUEST, "Give the model ids to delete, or delete_all", field="ids"
            )
        if len(wanted) > MAX_DELETE_IDS:
            raise ApiError(
                SC.MODEL_INVALID_REQUEST, f"at most {MAX_DELETE_IDS} ids per request", field="ids"
            )
    with transaction.atomic():
        qs = Model.objects.select_for_update().filter(app=app)
        if not delete_all:
            qs = qs.filter(public_id__in=wanted)
        models = list(qs)
        if not delete_all:
            found = {m.public_id for m in models}
            missing = [i for i in wanted if i not in found]
            if missing:
                raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Model '{missing[0][:128]}' does not exist")
        uses = _uses_of(models, app.owner)
        if uses:
            raise ApiError(
                SC.MODEL_INVALID_REQUEST,
                "Cannot delete: " + "; ".join(uses) + ". Change or delete those first.",
            )
        count = len(models)
        Model.objects.filter(pk__in=[m.pk for m in models]).delete()
    return count


def model_delete(*, app, model_id: str) -> None:
    """DeleteModel: one model of `app` (see `models_delete`)."""
    if not model_id:
        raise ApiError(SC.MODEL_INVALID_REQUEST, "model_id is required", field="model_id")
    models_delete(app=app, ids=[model_id])


# --- inputs ---------------------------------------------------------------------------------


def _prepare_one(inp: resources_pb2.Input, deadline: float) -> tuple[Any, int]:
    """(prepared Data or ApiError, pixels of its image)."""
    data = inp.data
    try:
        if data.image.base64:
            info = validate_image(data.image.base64)
            return data, info.width * info.height
        if data.image.url:
            result = fetch(data.image.url, max_bytes=max_image_bytes(), deadline=deadline)
            info = validate_image(result.content)
            prepared = resources_pb2.Data()
            prepared.CopyFrom(data)
            prepared.image.base64 = result.content
            return prepared, info.width * info.height
        if data.text.raw:
            if len(data.text.raw.encode("utf-8")) > conf.max_text_bytes():
                raise ApiError(
                    SC.INPUT_INVALID_ARGUMENT, f"text is longer than {conf.max_text_bytes()} bytes"
                )
            return data, 0
        if data.text.url:
            result = fetch(data.text.url, max_bytes=conf.max_text_bytes(), deadline=deadline)
            prepared = resources_pb2.Data()
            prepared.CopyFrom(data)
            prepared.text.raw = result.content.decode("utf-8", errors="replace")
            return prepared, 0
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            "The input has no data: send data.image.url, data.image.base64 or data.text.raw",
        )
    except ApiError as exc:
        return exc, 0


def _pixel_budget(results: list[tuple[Any, int]]) -> list[resources_pb2.Data | ApiError]:
    """Images past the request's pixel budget (IMAGE_MAX_PIXELS_PER_REQUEST, in input order)
    are refused, so one request cannot queue many full-size decodes."""
    budget, used, out = max_request_pixels(), 0, []
    for prepared, pixels in results:
        if pixels and used + pixels > budget:
            prepared = ApiError(
                SC.INPUT_INVALID_ARGUMENT,
                f"The images of this request exceed {budget} pixels together; send this one "
                "in another request, or smaller",
            )
        else:
            used += pixels
        out.append(prepared)
    return out


def prepare_inputs(inputs: list[resources_pb2.Input]) -> list[resources_pb2.Data | ApiError]:
    """Validate bytes, fetch URLs through the SSRF-safe fetcher (in parallel), pass text through.
    Never raises for one bad input: its slot holds the ApiError. All fetches of the request share
    one deadline (PREDICT_FETCH_DEADLINE_SECONDS): slow URLs cannot add up."""
    deadline = request_deadline(conf.fetch_deadline_seconds())
    prepare = functools.partial(_prepare_one, deadline=deadline)
    url_count = sum(
        1
        for i in inputs
        if not i.data.image.base64
        and (i.data.image.url or (not i.data.text.raw and i.data.text.url))
    )
    if url_count > 1:
        with ThreadPoolExecutor(max_workers=min(conf.fetch_workers(), url_count)) as pool:
            return _pixel_budget(list(pool.map(prepare, inputs)))
    return _pixel_budget([prepare(i) for i in inputs])


# --- running ----------------------------------------------------------------------------------


def _output_config(params: dict) -> tuple[set[str], float, int]:
    """(selected concept ids, min_value, max_concepts) from params; MODEL_INVALID_ARGUMENT if bad."""
    select = params.get("select_concepts") or []
    try:
        if not isinstance(select, list):
            raise TypeError("select_concepts must be a list of concepts")
        wanted = {str(c.get("id") or c.get("name") or "") for c in select if isinstance(c, dict)}
        min_value = float(params.get("min_value") or 0.0)
        max_concepts = int(params.get("max_concepts") or 0)
        if max_concepts < 0 or min_value != min_value:  # negative count or NaN
            raise ValueError("max_concepts must be >= 0 and min_value a number")
    except (TypeError, ValueError) as exc:
        raise ApiError(SC.MODEL_INVALID_ARGUMENT, f"Invalid output_config: {exc}") from exc
    wanted.discard("")
    return wanted, min_value, max_concepts


def _apply_output_config(data: resources_pb2.Data, config: tuple[set[str], float, int]) -> None:
    wanted, min_value, max_concepts = config
    if not (wanted or min_value or max_concepts) or not data.concepts:
        return
    kept = list(data.concepts)
    if wanted:
        kept = [c for c in kept if c.id in wanted or c.name in wanted]
    if min_value:
        kept = [c for c in kept if c.value >= min_value]
    if max_concepts:
        kept = kept[:max_concepts]
    del data.concepts[:]
    data.concepts.extend(kept)


def run_model_version(
    model_version: ModelVersion, data: list[resources_pb2.Data], params: dict | None = None
) -> list[resources_pb2.Data | ApiError]:
    """Run the version's runner on prepared data (no hooks, no ORM writes). One result per input.
    Raises ApiError(MODEL_INVALID_REQUEST) if the version has no runner (operators, bare models)."""
    if not data:
        return []
    if not is_runnable(model_version.runner):
        get_runner(model_version.runner, model_version.runner_config)  # raises the right ApiError
    runner = get_runner(model_version.runner, model_version.runner_config)
    merged: dict[str, Any] = dict((model_version.output_info or {}).get("params") or {})
    merged.update(params or {})
    output_config = _output_config(merged)
    try:
        results = runner.predict(list(data), merged)
    except ApiError as exc:
        results = [exc] * len(data)
    except Exception as exc:
        log.exception("runner %s failed", model_version.runner)
        results = [
            ApiError(SC.MODEL_PREDICTION_FAILED, f"The model failed: {type(exc).__name__}")
        ] * len(data)
    if len(results) != len(data):
        results = [
            ApiError(SC.MODEL_PREDICTION_FAILED, "The model returned a wrong number of outputs")
        ] * len(data)
    for result in results:
        if isinstance(result, resources_pb2.Data):
            _apply_output_config(result, output_config)
            prune_empty(result)  # no present-but-empty field (the post-queue rule)
    return results


def _echo_input(inp: resources_pb2.Input) -> resources_pb2.Input:
    echo = resources_pb2.Input(id=inp.id or new_hex_id())
    echo.data.CopyFrom(inp.data)
    if echo.data.image.base64:
        echo.data.image.base64 = _ECHO_BASE64
    return echo


def predict(
    *,
    caller,
    model_version: ModelVersion,
    inputs: list[resources_pb2.Input],
    params: dict | None = None,
    request_id: str,
) -> list[resources_pb2.Output]:
    """PostModelOutputs: prepare inputs, run the model, build one Output per input (each with its
    status), then run the after-predict hooks. Raises ApiError only for a non-runnable version."""
    if not is_runnable(model_version.runner):
        get_runner(
            model_version.runner, model_version.runner_config
        )  # raises MODEL_INVALID_REQUEST
    prepared = prepare_inputs(inputs)
    ok_idx = [i for i, p in enumerate(prepared) if not isinstance(p, ApiError)]
    results = run_model_version(model_version, [prepared[i] for i in ok_idx], params)
    by_index: dict[int, resources_pb2.Data | ApiError] = dict(zip(ok_idx, results, strict=True))
    model_pb = model_ref_pb(model_version)
    now = timezone.now()
    success = make_status(SC.SUCCESS)
    outputs: list[resources_pb2.Output] = []
    fetched: dict[int, bytes] = {}
    for i, inp in enumerate(inputs):
        result = by_index.get(i, prepared[i])
        out = resources_pb2.Output(id=new_hex_id(), model=model_pb, input=_echo_input(inp))
        out.created_at.FromDatetime(now)
        if isinstance(result, ApiError):
            out.status.CopyFrom(result.to_status())
        else:
            out.status.CopyFrom(success)
            out.data.CopyFrom(result)
            if not inp.data.image.base64 and inp.data.image.url and i in by_index:
                fetched[i] = prepared[i].image.base64
        outputs.append(out)
    started = time.perf_counter()
    hooks.run_after_predict(
        hooks.PredictionEvent(
            model_version=model_version,
            caller=caller,
            request_id=request_id,
            inputs=inputs,
            outputs=outputs,
            fetched=fetched,
        )
    )
    elapsed = (time.perf_counter() - started) * 1000
    if elapsed > 50:
        log.warning("after-predict hooks took %.1f ms (request %s)", elapsed, request_id)
    return outputs
