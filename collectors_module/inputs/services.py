"""Writers for inputs: create (one or a batch), delete (one or many).

Image bytes go to the default storage (blob storage) under a content-addressed name inside the
app's folder; the row keeps the name. An image given only as a URL is stored as that URL and
never fetched here. Everything else in `Data` (concepts, regions, metadata, ...) is kept as
JSON in `Input.data` and restored by `convert.input_to_pb`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from clarifai_grpc.grpc.api import resources_pb2
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from google.protobuf import json_format

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.ids import new_hex_id, validate_id
from collectors_module.core.images import validate_image
from collectors_module.core.patching import (
    apply_to_dict,
    check_fields,
    check_metadata,
    merge_dict,
    patch_action,
    remove_keys,
)
from collectors_module.core.protojson import to_dict

from . import conf, fingerprints
from .convert import ANNOTATION_DATA_FIELDS, collected_annotations
from .fingerprints import (  # noqa: F401  (public: the capture engine's near-duplicate check)
    Fingerprint,
    Match,
    compare,
    find_duplicate,
    fingerprint_of,
)
from .models import Annotation, Input, input_blob_path

log = logging.getLogger("collectors.inputs")

CONFLICT_NOT_SET = resources_pb2.INPUT_ID_CONFLICT_RESOLUTION_NOT_SET
CONFLICT_SKIP = resources_pb2.SKIP
CONFLICT_SUFFIX = resources_pb2.SUFFIX
MAX_URL_LENGTH = 2048


@dataclass
class _Prepared:
    public_id: str
    data_json: dict
    text: str
    image_bytes: bytes | None
    image_url: str
    content_hash: str
    annotations: list


def _sha256(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _check_url(url: str, field: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise ApiError(
            SC.INPUT_INVALID_URL, f"{field} is longer than {MAX_URL_LENGTH} characters", field=field
        )
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise ApiError(
            SC.INPUT_INVALID_URL, f"{field} contains spaces or control characters", field=field
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ApiError(SC.INPUT_INVALID_URL, f"{field} is not a valid URL", field=field) from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ApiError(
            SC.INPUT_INVALID_URL, f"{field} must be an http(s) URL with a host", field=field
        )
    return url


def _prepare(
    input_pb: resources_pb2.Input,
    image_bytes: bytes | None,
    annotations: list | None,
    extra_metadata: dict | None,
) -> _Prepared:
    """Validate one input and split it into columns, blob bytes and the JSON rest (no writes)."""
    public_id = input_pb.id or new_hex_id()
    validate_id(public_id, "input id", SC.INPUT_INVALID_ARGUMENT, field="id")
    data = resources_pb2.Data()
    data.CopyFrom(input_pb.data)

    if data.video.base64 or data.audio.base64 or data.frames:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            "only image and text inputs are supported (no video or audio bytes)",
            field="data",
        )
    if image_bytes is None and data.image.base64:
        image_bytes = bytes(data.image.base64)
    image_url = data.image.url
    if image_url:
        _check_url(image_url, "data.image.url")
    if image_bytes is not None:
        info = validate_image(image_bytes)
        data.image.image_info.width = info.width
        data.image.image_info.height = info.height
        data.image.image_info.format = info.format
    text = data.text.raw
    if len(text.encode("utf-8", "surrogatepass")) > conf.max_text_bytes():
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"data.text.raw is longer than {conf.max_text_bytes()} bytes",
            field="data.text.raw",
        )
    if "\x00" in text:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            "data.text.raw contains a NUL character",
            field="data.text.raw",
        )
    if data.text.url:
        _check_url(data.text.url, "data.text.url")
    if image_bytes is None and not image_url and not text and not data.text.url:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            "an input needs data.image (base64 bytes or url) or data.text",
            field="data",
        )
    if extra_metadata:
        try:
            data.metadata.update(extra_metadata)
        except (ValueError, TypeError) as exc:
            raise ApiError(
                SC.INPUT_INVALID_ARGUMENT,
                f"metadata cannot be stored: {exc}",
                field="data.metadata",
            ) from exc

    data.image.ClearField("base64")
    data.image.ClearField("url")
    data.text.ClearField("raw")
    if not data.image.ListFields():
        data.ClearField("image")
    if not data.text.ListFields():
        data.ClearField("text")
    data_json = to_dict(data, compact=True)
    encoded = json.dumps(data_json, ensure_ascii=False)
    if len(encoded.encode("utf-8", "surrogatepass")) > conf.max_data_bytes():
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"the input's data (without image and text) exceeds {conf.max_data_bytes()} bytes",
            field="data",
        )
    if "\\u0000" in encoded:
        # PostgreSQL jsonb refuses NUL; say so instead of failing on insert.
        raise ApiError(SC.INPUT_INVALID_ARGUMENT, "data contains a NUL character", field="data")

    if image_bytes is not None:
        content_hash = _sha256(image_bytes)
    elif image_url:
        content_hash = _sha256(image_url.encode("utf-8"))
    elif text:
        content_hash = _sha256(text.encode("utf-8", "surrogatepass"))
    else:
        content_hash = _sha256(encoded.encode("utf-8", "surrogatepass"))
    return _Prepared(
        public_id=public_id,
        data_json=data_json,
        text=text,
        image_bytes=image_bytes,
        image_url=image_url,
        content_hash=content_hash,
        annotations=list(annotations or []),
    )


def _duplicate(app, public_id: str) -> ApiError:
    return ApiError(
        SC.INPUT_DUPLICATE,
        f"Input '{public_id}' already exists in app '{app.public_id}'",
        field="id",
    )


def _save_blob(name: str, content: bytes) -> str:
    if default_storage.exists(name):
        return name  # content-addressed: the same bytes are already there
    return default_storage.save(name, ContentFile(content))


def _ensure_blob(name: str, content: bytes) -> None:
    # A concurrent delete of the last other input with the same bytes may have removed the blob
    # between our save and our commit; put it back.
    try:
        if not default_storage.exists(name):
            default_storage.save(name, ContentFile(content))
    except Exception:
        log.exception("could not re-check blob %s", name)


def _store(app, prepared: _Prepared) -> Input:
    if Input.objects.filter(app=app, public_id=prepared.public_id).exists():
        raise _duplicate(app, prepared.public_id)
    row = Input(
        app=app,
        public_id=prepared.public_id,
        data=prepared.data_json,
        image_url=prepared.image_url,
        text=prepared.text,
        annotations=prepared.annotations,
        content_hash=prepared.content_hash,
        status_code=SC.INPUT_SUCCESS,
    )
    row.annotations_pending = False  # its collected outputs become rows right here
    content = prepared.image_bytes
    if content is not None:
        row.image.name = _save_blob(input_blob_path(row, ""), content)
    try:
        with transaction.atomic():
            row.save()
            fingerprints.record([(row, content)])  # near-duplicate lookups (indexed)
            if prepared.annotations:
                _create_collected(app, [row])
            if content is not None:
                name = row.image.name
                transaction.on_commit(lambda: _ensure_blob(name, content))
    except IntegrityError as exc:
        raise _duplicate(app, prepared.public_id) from exc
    return row


def input_create(
    *,
    app,
    input_pb: resources_pb2.Input,
    image_bytes: bytes | None = None,
    annotations: list[dict] | None = None,
    extra_metadata: dict | None = None,
) -> Input:
    """Store one input (own transaction); INPUT_DUPLICATE (30100) if the id exists; ApiError on bad data."""
    prepared = _prepare(input_pb, image_bytes, annotations, extra_metadata)
    return _store(app, prepared)


@dataclass
class NewInput:
    """One input for `inputs_create_bulk` (the same arguments as `input_create`)."""

    input_pb: resources_pb2.Input
    image_bytes: bytes | None = None
    annotations: list[dict] | None = None
    extra_metadata: dict | None = None


def inputs_create_bulk(
    *, app, items: list[NewInput], one_by_one_on_conflict: bool = True
) -> list[Input | ApiError]:
    """Store many inputs of `app` with one existence check and one INSERT, in the caller's
    transaction. One result per item, in order: the new Input, or an ApiError (INPUT_DUPLICATE
    when the id exists, the validation error, INTERNAL_SERVER_ISSUE when blob storage failed).

    If another transaction inserts one of the ids meanwhile, the batch is redone one input at a
    time (each in its own savepoint) with `one_by_one_on_conflict`; otherwise the IntegrityError
    propagates and the caller rolls back."""
    results: list[Input | ApiError | None] = [None] * len(items)
    prepared: list[tuple[int, _Prepared]] = []
    for i, item in enumerate(items):
        try:
            prepared.append(
                (
                    i,
                    _prepare(
                        item.input_pb, item.image_bytes, item.annotations, item.extra_metadata
                    ),
                )
            )
        except ApiError as exc:
            results[i] = exc
    existing = set(
        Input.objects.filter(app=app, public_id__in=[p.public_id for _, p in prepared]).values_list(
            "public_id", flat=True
        )
    )
    rows: list[tuple[int, Input, bytes | None]] = []
    for i, p in prepared:
        if p.public_id in existing:
            results[i] = _duplicate(app, p.public_id)
            continue
        row = Input(
            app=app,
            public_id=p.public_id,
            data=p.data_json,
            image_url=p.image_url,
            text=p.text,
            annotations=p.annotations,
            content_hash=p.content_hash,
            status_code=SC.INPUT_SUCCESS,
        )
        row.annotations_pending = False  # its collected outputs become rows below
        try:
            if p.image_bytes is not None:
                row.image.name = _save_blob(input_blob_path(row, ""), p.image_bytes)
        except OSError as exc:
            results[i] = ApiError(SC.INTERNAL_SERVER_ISSUE, f"blob storage: {exc}")
            continue
        rows.append((i, row, p.image_bytes))
    try:
        with transaction.atomic():
            created = Input.objects.bulk_create([row for _, row, _ in rows])
            fingerprints.record([(row, content) for _, row, content in rows])
            _create_collected(app, [row for row in created if row.annotations])
    except IntegrityError:
        if not one_by_one_on_conflict:
            raise
        for i, _row, _content in rows:
            item = items[i]
            try:
                results[i] = input_create(
                    app=app,
                    input_pb=item.input_pb,
                    image_bytes=item.image_bytes,
                    annotations=item.annotations,
                    extra_metadata=item.extra_metadata,
                )
            except ApiError as exc:
                results[i] = exc
        return results  # type: ignore[return-value]
    for i, row, content in rows:
        results[i] = row
        if content is not None:
            name = row.image.name
            transaction.on_commit(lambda name=name, content=content: _ensure_blob(name, content))
    return results  # type: ignore[return-value]


def _suffixed(public_id: str) -> str:
    return f"{public_id[:119]}-{secrets.token_hex(4)}"


def inputs_post(
    *, app, inputs: list[resources_pb2.Input], id_conflict_resolution: int = CONFLICT_NOT_SET
) -> list[Input | ApiError]:
    """Create each input on its own (partial success); per-input ApiError in the result list.

    id_conflict_resolution: NOT_SET -> INPUT_DUPLICATE, SKIP -> the existing input is returned
    unchanged, SUFFIX -> a random suffix is appended to the id. Raises for > 128 inputs.
    """
    limit = conf.max_inputs_per_request()
    if len(inputs) > limit:
        raise ApiError(
            SC.INPUT_INVALID_REQUEST,
            f"{len(inputs)} inputs in one request; at most {limit} are allowed",
            field="inputs",
        )
    if id_conflict_resolution not in (CONFLICT_NOT_SET, CONFLICT_SKIP, CONFLICT_SUFFIX):
        raise ApiError(
            SC.INPUT_INVALID_REQUEST,
            "unknown input_id_conflict_resolution",
            field="input_id_conflict_resolution",
        )
    results: list[Input | ApiError] = []
    for pb in inputs:
        try:
            results.append(_post_one(app, pb, id_conflict_resolution))
        except ApiError as exc:
            results.append(exc)
    return results


def _post_one(app, pb: resources_pb2.Input, resolution: int) -> Input:
    prepared = _prepare(pb, None, None, None)
    for _attempt in range(5):
        try:
            return _store(app, prepared)
        except ApiError as exc:
            if exc.code != SC.INPUT_DUPLICATE or not pb.id or resolution == CONFLICT_NOT_SET:
                raise
            if resolution == CONFLICT_SKIP:
                existing = Input.objects.filter(app=app, public_id=prepared.public_id).first()
                if existing is not None:
                    return existing
            else:
                prepared.public_id = _suffixed(pb.id)
    raise _duplicate(app, prepared.public_id)


# Other holders of blob names (e.g. frozen dataset versions): fn(name) -> True while in use.
_BLOB_USERS: list = []


def register_blob_users(fn) -> None:
    """`fn(name) -> bool` says whether something besides an input still refers to a blob."""
    if fn not in _BLOB_USERS:
        _BLOB_USERS.append(fn)


def blobs_release_on_commit(names) -> None:
    """Call inside a transaction that drops references to blobs: after it commits, the blobs
    nothing refers to any more are deleted."""
    names = {n for n in names if n}
    if names:
        transaction.on_commit(lambda: _purge_blobs(names))


def _purge_blobs(names: set[str]) -> None:
    """Delete blobs nothing refers to any more (runs after commit; storage errors are logged)."""
    for name in names:
        try:
            in_use = Input.objects.filter(image=name).exists() or any(
                fn(name) for fn in _BLOB_USERS
            )
            if not in_use:
                default_storage.delete(name)
        except Exception:
            log.exception("could not delete blob %s", name)


def inputs_delete(*, app, ids: list[str]) -> int:
    """Delete the app's inputs with these ids, all or nothing (11101 naming any missing id)."""
    wanted = list(dict.fromkeys(i for i in ids if i))
    if not wanted:
        raise ApiError(SC.INPUT_INVALID_REQUEST, "ids must name at least one input", field="ids")
    limit = 1000
    if len(wanted) > limit:
        raise ApiError(SC.INPUT_INVALID_REQUEST, f"at most {limit} ids per request", field="ids")
    with transaction.atomic():
        rows = list(
            Input.objects.select_for_update()
            .filter(app=app, public_id__in=wanted)
            .values_list("pk", "public_id", "image")
        )
        missing = [i for i in wanted if i not in {r[1] for r in rows}]
        if missing:
            shown = ", ".join(f"'{m[:64]}'" for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            noun = "Input" if len(missing) == 1 else "Inputs"
            verb = "does" if len(missing) == 1 else "do"
            raise ApiError(SC.CONN_DOES_NOT_EXIST, f"{noun} {shown}{more} {verb} not exist")
        Input.objects.filter(pk__in=[r[0] for r in rows]).delete()
        blobs = {r[2] for r in rows if r[2]}
        if blobs:
            transaction.on_commit(lambda: _purge_blobs(blobs))
    return len(rows)


def input_delete(*, app, input_id: str) -> None:
    """Delete one input of the app (transactional); 11101 if it is not there."""
    if not input_id:
        raise ApiError(SC.INPUT_INVALID_REQUEST, "input_id is required", field="input_id")
    inputs_delete(app=app, ids=[input_id])


def app_blobs_purge_on_commit(*, app) -> None:
    """Call inside the transaction that deletes `app`: its image blobs go once that commits."""
    names = set(Input.objects.filter(app=app).exclude(image="").values_list("image", flat=True))
    if names:
        transaction.on_commit(lambda: _purge_blobs(names))


# --- annotations --------------------------------------------------------------------------------

MAX_ANNOTATIONS_PER_REQUEST = 128
MAX_ANNOTATION_IDS = 1000
ANNOTATION_ACTIONS = ("merge", "overwrite", "remove")


def _create_collected(app, inputs: list[Input]) -> int:
    """Annotation rows for the collected outputs of `inputs` (inside the caller's transaction).
    Ids derive from the input and the output's position, so importing twice creates nothing."""
    rows = [
        Annotation(app=app, input=inp, **fields)
        for inp in inputs
        for fields in collected_annotations(inp.annotations, inp.pk)
    ]
    if rows:
        Annotation.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def annotations_import_pending(*, app, batch: int = 500) -> int:
    """Turn the collected outputs of `app`'s inputs that a bulk writer left pending into
    Annotation rows (idempotent; concurrent callers skip each other's rows). Returns how many
    inputs were imported."""
    done = 0
    while True:
        with transaction.atomic():
            rows = list(
                Input.objects.select_for_update(skip_locked=True)
                .filter(app=app, annotations_pending=True)
                .only("pk", "app_id", "annotations")
                .order_by("pk")[:batch]
            )
            if not rows:
                return done
            _create_collected(app, [r for r in rows if r.annotations])
            Input.objects.filter(pk__in=[r.pk for r in rows]).update(annotations_pending=False)
        done += len(rows)
        if len(rows) < batch:
            return done


def _annotation_data(data: resources_pb2.Data, *, base: dict | None = None) -> dict:
    """Validate an annotation's `data` and return it as stored JSON (ANNOTATION_INVALID_ARGUMENT)."""
    for name in (f.name for f, _ in data.ListFields()):
        if name not in ANNOTATION_DATA_FIELDS:
            raise ApiError(
                SC.ANNOTATION_INVALID_ARGUMENT,
                f"data.{name} cannot be part of an annotation (media belong to the input); "
                f"annotations carry: {', '.join(ANNOTATION_DATA_FIELDS)}",
                field=f"data.{name}",
            )
    clean = resources_pb2.Data()
    clean.CopyFrom(data)
    for i, concept in enumerate(clean.concepts):
        if not concept.id:
            concept.id = concept.name
        validate_id(
            concept.id, "concept id", SC.ANNOTATION_INVALID_ARGUMENT, field=f"data.concepts[{i}]"
        )
        if not concept.name:
            concept.name = concept.id
        if not 0.0 <= concept.value <= 1.0:
            raise ApiError(
                SC.ANNOTATION_INVALID_ARGUMENT,
                f"data.concepts[{i}].value must be between 0 and 1",
                field=f"data.concepts[{i}].value",
            )
    for region in clean.regions:
        if not region.id:
            region.id = new_hex_id()
    stored = to_dict(clean, compact=True)
    encoded = json.dumps(stored, ensure_ascii=False)
    if len(encoded.encode("utf-8", "surrogatepass")) > conf.max_data_bytes():
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT,
            f"the annotation's data exceeds {conf.max_data_bytes()} bytes",
            field="data",
        )
    if "\\u0000" in encoded:
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT, "data contains a NUL character", field="data"
        )
    return stored


def _annotation_info(pb: resources_pb2.Annotation) -> dict:

    if not pb.annotation_info.fields:
        return {}
    info = json_format.MessageToDict(pb.annotation_info)
    return check_metadata(info, code=SC.ANNOTATION_INVALID_ARGUMENT, field="annotation_info")


def _too_many(items: list, what: str) -> None:
    if not items:
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT, f"{what} must hold at least one annotation", field=what
        )
    if len(items) > MAX_ANNOTATIONS_PER_REQUEST:
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT,
            f"{len(items)} annotations in one request; at most {MAX_ANNOTATIONS_PER_REQUEST}",
            field=what,
        )


def _inputs_by_id(app, input_ids: set[str]) -> dict[str, Input]:
    found = {
        i.public_id: i
        for i in Input.objects.filter(app=app, public_id__in=list(input_ids)).only(
            "pk", "public_id", "app_id"
        )
    }
    missing = sorted(input_ids - set(found))
    if missing:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Input '{missing[0][:128]}' does not exist")
    return found


def annotations_create(
    *, app, actor, annotation_pbs: list[resources_pb2.Annotation]
) -> list[Annotation]:
    """PostAnnotations: all or none. Each names an input of `app` (11101 otherwise); ids are
    generated when empty; DATABASE_DUPLICATE_KEY for an id the app already has or repeats."""
    _too_many(annotation_pbs, "annotations")
    prepared = []
    seen: set[str] = set()
    for i, pb in enumerate(annotation_pbs):
        if not pb.input_id:
            raise ApiError(
                SC.ANNOTATION_INVALID_ARGUMENT,
                f"annotations[{i}].input_id is required",
                field="input_id",
            )
        annotation_id = pb.id or new_hex_id()
        validate_id(annotation_id, "annotation id", SC.ANNOTATION_INVALID_ARGUMENT, field="id")
        if annotation_id in seen:
            raise ApiError(
                SC.DATABASE_DUPLICATE_KEY,
                f"Annotation id '{annotation_id}' appears twice in the request",
                field="id",
            )
        seen.add(annotation_id)
        if pb.model_version_id:
            validate_id(
                pb.model_version_id,
                "model_version_id",
                SC.ANNOTATION_INVALID_ARGUMENT,
                field="model_version_id",
            )
        if pb.user_id and pb.user_id != actor.username:
            raise ApiError(
                SC.ANNOTATION_INVALID_ARGUMENT,
                f"user_id '{pb.user_id[:64]}' is not you; annotations are made by the caller",
                field="user_id",
            )
        prepared.append((pb, annotation_id, _annotation_data(pb.data), _annotation_info(pb)))
    inputs = _inputs_by_id(app, {pb.input_id for pb, *_ in prepared})
    try:
        with transaction.atomic():
            taken = set(
                Annotation.objects.filter(app=app, public_id__in=list(seen)).values_list(
                    "public_id", flat=True
                )
            )
            if taken:
                raise ApiError(
                    SC.DATABASE_DUPLICATE_KEY,
                    f"Annotation '{sorted(taken)[0]}' already exists in app '{app.public_id}'",
                    field="id",
                )
            rows = [
                Annotation(
                    app=app,
                    input=inputs[pb.input_id],
                    public_id=annotation_id,
                    data=data,
                    annotation_info=info,
                    user=actor,
                    model_version_id=pb.model_version_id,
                    trusted=pb.trusted,
                )
                for pb, annotation_id, data, info in prepared
            ]
            Annotation.objects.bulk_create(rows)
    except IntegrityError as exc:  # a concurrent create of the same id
        raise ApiError(
            SC.DATABASE_DUPLICATE_KEY, "An annotation with one of these ids already exists"
        ) from exc
    return rows


def _merge_by_id(stored: list, given: list) -> list:
    out = [dict(x) for x in stored if isinstance(x, dict)]
    index = {x.get("id"): i for i, x in enumerate(out) if x.get("id")}
    for item in given:
        key = item.get("id")
        if key and key in index:
            out[index[key]] = item
        else:
            out.append(item)
    return out


def _patched_data(action: str, stored: dict, given: dict) -> dict:

    if action == "overwrite":
        return given
    out = dict(stored or {})
    if action == "merge":
        for key, value in given.items():
            if key in ("concepts", "regions"):
                out[key] = _merge_by_id(out.get(key) or [], value)
            elif key == "metadata":
                out[key] = merge_dict(out.get(key) or {}, value)
            else:
                out[key] = value
        return out
    # remove: concepts and regions by id, metadata by key, text when given
    for key, value in given.items():
        if key in ("concepts", "regions"):
            gone = {x.get("id") for x in value if isinstance(x, dict)}
            out[key] = [x for x in out.get(key) or [] if x.get("id") not in gone]
            if not out[key]:
                out.pop(key)
        elif key == "metadata":
            out[key] = remove_keys(out.get(key) or {}, value)
            if not out[key]:
                out.pop(key)
        else:
            out.pop(key, None)
    return out


def annotations_patch(
    *,
    app,
    annotation_pbs: list[resources_pb2.Annotation],
    action: str,
    delete_if_empty_data: bool = False,
) -> tuple[list[Annotation], list[str]]:
    """PatchAnnotations with action merge / overwrite / remove, all or none. Only `data` and
    `annotation_info` change; id, input_id, user_id and model_version_id name the annotation
    and cannot. Returns (patched rows, ids deleted because their data became empty)."""

    action = patch_action(
        action, code=SC.ANNOTATION_INVALID_ARGUMENT, allowed=ANNOTATION_ACTIONS, what="annotations"
    )
    _too_many(annotation_pbs, "annotations")
    wanted = []
    for i, pb in enumerate(annotation_pbs):
        if not pb.id:
            raise ApiError(
                SC.ANNOTATION_INVALID_ARGUMENT, f"annotations[{i}].id is required", field="id"
            )
        wanted.append(pb.id)
    if len(set(wanted)) != len(wanted):
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT, "an annotation id appears twice in the request"
        )
    patched: list[Annotation] = []
    deleted: list[str] = []
    with transaction.atomic():
        rows = {
            r.public_id: r
            for r in Annotation.objects.select_for_update(of=("self",))
            .select_related("input", "user")
            .filter(app=app, public_id__in=wanted)
        }
        for pb in annotation_pbs:
            row = rows.get(pb.id)
            if row is None:
                raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Annotation '{pb.id[:128]}' does not exist")
            given = check_fields(
                pb,
                code=SC.ANNOTATION_INVALID_ARGUMENT,
                what=f"annotation '{pb.id}'",
                patchable=("data", "annotation_info", "trusted"),
                identity={
                    "id": row.public_id,
                    "input_id": row.input.public_id,
                    "user_id": row.user.username if row.user_id else app.owner.username,
                    "model_version_id": row.model_version_id,
                },
                # read-only fields a client echoes back from a listing
                ignored=("status", "created_at", "modified_at", "input_level", "worker"),
            )
            if not given:
                raise ApiError(
                    SC.ANNOTATION_INVALID_ARGUMENT,
                    f"annotation '{pb.id}': nothing to patch (give data, annotation_info or "
                    "trusted)",
                )
            if "data" in given:
                data = _annotation_data(pb.data)
                row.data = _patched_data(action, row.data or {}, data)
            if "annotation_info" in given:
                info = json_format.MessageToDict(pb.annotation_info)
                row.annotation_info = check_metadata(
                    apply_to_dict(action, row.annotation_info or {}, info),
                    code=SC.ANNOTATION_INVALID_ARGUMENT,
                    field="annotation_info",
                )
            if "trusted" in given:
                row.trusted = action != "remove" and pb.trusted
            if delete_if_empty_data and not row.data:
                deleted.append(row.public_id)
                row.delete()
                continue
            row.save()
            patched.append(row)
    return patched, deleted


def annotations_delete(*, app, ids: list[str] = (), input_ids: list[str] = ()) -> int:
    """DeleteAnnotations: `ids` alone deletes those annotations; `input_ids` alone deletes every
    annotation of those inputs; both (same length) delete annotation ids[i] of input input_ids[i].
    All or nothing: 11101 names the first missing input or annotation."""
    ids = [i for i in ids if i]
    input_ids = [i for i in input_ids if i]
    if not ids and not input_ids:
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT, "give the annotation ids and/or the input ids"
        )
    if len(ids) > MAX_ANNOTATION_IDS or len(input_ids) > MAX_ANNOTATION_IDS:
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT, f"at most {MAX_ANNOTATION_IDS} ids per request"
        )
    if ids and input_ids and len(ids) != len(input_ids):
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT,
            "ids and input_ids name annotation ids[i] of input input_ids[i]: give as many of each",
        )
    with transaction.atomic():
        if input_ids:
            _inputs_by_id(app, set(input_ids))
        qs = Annotation.objects.select_for_update(of=("self",)).filter(app=app)
        if ids:
            rows = {
                r.public_id: r.input.public_id
                for r in qs.filter(public_id__in=ids).select_related("input")
            }
            for i, annotation_id in enumerate(ids):
                if annotation_id not in rows or (input_ids and rows[annotation_id] != input_ids[i]):
                    where = f" of input '{input_ids[i][:128]}'" if input_ids else ""
                    raise ApiError(
                        SC.CONN_DOES_NOT_EXIST,
                        f"Annotation '{annotation_id[:128]}'{where} does not exist",
                    )
            count, _ = Annotation.objects.filter(app=app, public_id__in=ids).delete()
        else:
            count, _ = qs.filter(input__public_id__in=input_ids).delete()
    return count


def annotation_delete(*, app, input_id: str, annotation_id: str) -> None:
    """DeleteAnnotation: one annotation of one input; 11101 when it is not there."""
    if not annotation_id or not input_id:
        raise ApiError(SC.ANNOTATION_INVALID_ARGUMENT, "input_id and annotation_id are required")
    annotations_delete(app=app, ids=[annotation_id], input_ids=[input_id])


def input_image_bytes(app_id: int, public_id: str, *, max_bytes: int) -> bytes | None:
    """The stored image bytes of an input (None: no such input, no image, or over `max_bytes`).
    A read for the collector preview, which re-evaluates rules on ingested captures."""
    row = Input.objects.filter(app_id=app_id, public_id=public_id).only("image").first()
    if row is None or not row.image:
        return None
    try:
        if row.image.size > max_bytes:
            return None
        with row.image.open("rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError:
        return None


def fingerprints_backfill(*, batch: int = 500, app_id: int | None = None, progress=None) -> int:
    """Fingerprint the inputs that have none (created before near-duplicate lookups existed), in
    batches: each batch reads its inputs' stored bytes one at a time (at most MAX_IMAGE_BYTES
    each) and inserts their fingerprints in one statement. Safe to stop and run again; inputs
    created meanwhile already have theirs. Returns how many were added; `progress(done)` is
    called after every batch."""
    done = 0
    last_pk = 0
    limit = conf.max_image_bytes()
    while True:
        rows = Input.objects.filter(fingerprint__isnull=True, pk__gt=last_pk)
        if app_id is not None:
            rows = rows.filter(app_id=app_id)
        chunk = list(rows.order_by("pk")[: max(1, batch)])
        if not chunk:
            return done
        last_pk = chunk[-1].pk
        pairs = []
        for row in chunk:
            content = None
            if row.image:
                try:
                    if row.image.size <= limit:
                        with row.image.open("rb") as fh:
                            content = fh.read(limit + 1)
                except OSError:
                    log.warning("input %s: its stored image could not be read", row.public_id)
            pairs.append((row, content))
        fingerprints.record(pairs)
        done += len(pairs)
        if progress is not None:
            progress(done)
